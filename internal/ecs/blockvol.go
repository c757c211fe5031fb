package ecs

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// planBlockVolumes validates the configuredAtLaunch volumes of a launch.
func (a *API) planBlockVolumes(ctx context.Context, cluster string, def *spec.TaskDefinition, in *launch.Input) ([]blockPlan, error) {
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
	var plans []blockPlan
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
		plans = append(plans, blockPlan{name: name, managed: m})
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
		plans = append(plans, blockPlan{name: name, existing: v, rev: rev})
	}
	for name := range atLaunch {
		if !seen[name] {
			return nil, spec.InvalidParam("The task definition volume '%s' is configured at launch; specify it in volumeConfigurations (or attach an existing volume with the tag %s%s).", name, launch.AttachVolumeTagPrefix, name)
		}
	}
	return plans, nil
}

// blockExtra creates or attaches the launch's block volumes in the
// placement transaction, one new volume per task for managed ones.
func (a *API) blockExtra(ls *launchSpec, now time.Time) func([]*state.TaskRecord, map[string]*state.InstanceRecord) ([]clientv3.Cmp, []clientv3.Op, error) {
	if len(ls.block) == 0 {
		return nil
	}
	cluster := spec.Val(ls.cluster.ClusterName)
	return func(tasks []*state.TaskRecord, insts map[string]*state.InstanceRecord) ([]clientv3.Cmp, []clientv3.Op, error) {
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, t := range tasks {
			inst := insts[t.InstanceID]
			zone := ""
			for _, at := range inst.Attributes {
				if spec.Val(at.Name) == "ecs.availability-zone" {
					zone = spec.Val(at.Value)
				}
			}
			for _, b := range ls.block {
				var v *agentapi.Volume
				key := ""
				if b.managed != nil {
					m := b.managed
					v = &agentapi.Volume{VolumeID: spec.VolumeID(newID()), Cluster: cluster, Zone: zone, SizeInGiB: m.SizeInGiB,
						VolumeType: m.VolumeType, Iops: m.Iops, Throughput: m.Throughput, FilesystemType: m.FilesystemType,
						State: "creating", InstanceID: t.InstanceID, SnapshotID: m.SnapshotID, DeleteOnTermination: m.DeleteOnTermination,
						Managed: true, Tags: m.Tags, CreatedAt: spec.TS(now)}
					key = state.VolumeKey(cluster, v.VolumeID)
					cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
					ops = append(ops, clientv3.OpPut(state.ResidencyKey(cluster, "block-volume/"+v.VolumeID), t.InstanceID))
				} else {
					cp := *b.existing
					v = &cp
					key = state.VolumeKey(cluster, v.VolumeID)
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", b.rev))
					if v.State == "available" {
						v.State = "in-use"
					}
				}
				epoch := v.Attach(spec.Val(t.TaskArn), t.InstanceID)
				ops = append(ops, clientv3.OpPut(key, state.Marshal(v)))
				t.BlockVolumes = append(t.BlockVolumes, agentapi.TaskBlockVolume{Name: b.name, VolumeID: v.VolumeID, Epoch: epoch})
				t.Attachments = append(t.Attachments, spec.Attachment{Id: spec.Str(newID()[:8] + "-" + v.VolumeID), Type: spec.Str("AmazonElasticBlockStorage"),
					Status: spec.Str("ATTACHING"), Details: []spec.KeyValuePair{
						{Name: spec.Str("volumeId"), Value: spec.Str(v.VolumeID)},
						{Name: spec.Str("volumeName"), Value: spec.Str(b.name)},
						{Name: spec.Str("sizeInGiB"), Value: spec.Str(itoa(v.SizeInGiB))},
						{Name: spec.Str("filesystemType"), Value: spec.Str(v.FilesystemType)},
						{Name: spec.Str("deleteOnTermination"), Value: spec.Str(boolStr(v.DeleteOnTermination))},
					}})
			}
		}
		return cmps, ops, nil
	}
}
