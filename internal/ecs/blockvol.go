package ecs

import (
	"context"
	"strings"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// planBlockVolumes validates the configuredAtLaunch volumes of a launch.
func (a *API) planBlockVolumes(ctx context.Context, cluster string, def *spec.TaskDefinition, in *launch.Input) ([]placement.BlockVolume, error) {
	atLaunch := map[string]bool{}
	for _, v := range def.Volumes {
		if spec.Val(v.ConfiguredAtLaunch) {
			atLaunch[spec.Val(v.Name)] = true
		}
	}
	attach := map[string]string{}
	for _, t := range in.Tags {
		if name, ok := strings.CutPrefix(spec.Val(t.Key), launch.AttachVolumeTagPrefix); ok {
			if !atLaunch[name] {
				return nil, spec.InvalidParam("Tag %s names volume '%s', which is not configured at launch in the task definition.", spec.Val(t.Key), name)
			}
			attach[name] = spec.Val(t.Value)
		}
	}
	var plans []placement.BlockVolume
	seen := map[string]bool{}
	for _, vc := range in.VolumeConfigurations {
		name := spec.Val(vc.Name)
		if !atLaunch[name] {
			return nil, spec.InvalidParam("The volume '%s' in volumeConfigurations is not a volume configured at launch in the task definition.", name)
		}
		if seen[name] {
			return nil, spec.InvalidParam("Duplicate volume '%s' in volumeConfigurations.", name)
		}
		if _, ok := attach[name]; ok {
			return nil, spec.InvalidParam("Volume '%s' is given both in volumeConfigurations and as an existing volume to attach.", name)
		}
		seen[name] = true
		var snap *spec.SnapshotInfo
		if c := vc.ManagedEBSVolume; c != nil && spec.Val(c.SnapshotId) != "" {
			rec := &agentapi.Snapshot{}
			if _, err := a.Store.Get(ctx, state.SnapshotKey(cluster, *c.SnapshotId), rec); err == nil && rec.State == "completed" {
				snap = &spec.SnapshotInfo{SizeInGiB: rec.SizeInGiB, FilesystemType: rec.FilesystemType}
			} else if err != nil && !isNotFound(err) {
				return nil, err
			}
		}
		m, err := spec.ValidateManagedEBS(name, vc.ManagedEBSVolume, snap)
		if err != nil {
			return nil, err
		}
		plans = append(plans, placement.BlockVolume{Name: name, New: &agentapi.Volume{SizeInGiB: m.SizeInGiB, VolumeType: m.VolumeType,
			Iops: m.Iops, Throughput: m.Throughput, FilesystemType: m.FilesystemType, SnapshotID: m.SnapshotID,
			DeleteOnTermination: m.DeleteOnTermination, Tags: m.Tags}})
	}
	for name, id := range attach {
		if in.Count > 1 {
			return nil, spec.InvalidParam("An existing volume can be attached to one task only; count must be 1.")
		}
		v := &agentapi.Volume{}
		rev, err := a.Store.Get(ctx, state.VolumeKey(cluster, id), v)
		if isNotFound(err) {
			return nil, spec.InvalidParam("The volume '%s' does not exist.", id)
		} else if err != nil {
			return nil, err
		}
		if v.Attachment != nil {
			return nil, spec.InvalidParam("The volume '%s' is attached to task %s.", id, v.Attachment.TaskArn)
		}
		if v.State != "available" && v.State != "creating" {
			return nil, spec.InvalidParam("The volume '%s' is %s and cannot be attached.", id, v.State)
		}
		seen[name] = true
		plans = append(plans, placement.BlockVolume{Name: name, Existing: v, Rev: rev})
	}
	for name := range atLaunch {
		if !seen[name] {
			return nil, spec.InvalidParam("The task definition volume '%s' is configured at launch; specify it in volumeConfigurations (or attach an existing volume with the tag %s%s).", name, launch.AttachVolumeTagPrefix, name)
		}
	}
	return plans, nil
}
