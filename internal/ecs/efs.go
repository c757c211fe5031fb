package ecs

import (
	"context"
	"errors"

	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/fsx"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
)

// efsZones lists, for each EFS volume of a task definition, the zones in
// which its file system has a mount target, and for each FSx volume the
// zones of its file system's subnets: only there can they be mounted.
func (a *API) efsZones(ctx context.Context, def *spec.TaskDefinition) ([]scheduler.ZoneRequirement, error) {
	var out []scheduler.ZoneRequirement
	for _, v := range def.Volumes {
		if f := v.FsxWindowsFileServerVolumeConfiguration; f != nil {
			id := spec.Val(f.FileSystemId)
			zones, err := fsx.Zones(ctx, a.Store.Client, id)
			var ae *awsjson.Error
			if errors.As(err, &ae) && ae.Code == "FileSystemNotFound" {
				return nil, spec.ClientErr("The FSx for Windows File Server file system %s of volume '%s' does not exist.", id, spec.Val(v.Name))
			} else if err != nil {
				return nil, err
			}
			out = append(out, scheduler.ZoneRequirement{Volume: spec.Val(v.Name), FileSystem: id, Zones: zones})
		}
		e := v.EfsVolumeConfiguration
		if e == nil {
			continue
		}
		fs := spec.Val(e.FileSystemId)
		zones, err := efs.MountTargetZones(ctx, a.Store.Client, fs)
		if err != nil {
			return nil, err
		}
		out = append(out, scheduler.ZoneRequirement{Volume: spec.Val(v.Name), FileSystem: fs, Zones: zones})
	}
	return out, nil
}
