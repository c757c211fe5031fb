package ecs

import (
	"context"

	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
)

// efsZones lists, for each EFS volume of a task definition, the zones in
// which its file system has a mount target: only there can it be mounted.
func (a *API) efsZones(ctx context.Context, def *spec.TaskDefinition) ([]scheduler.ZoneRequirement, error) {
	var out []scheduler.ZoneRequirement
	for _, v := range def.Volumes {
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
