package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// slotSnapshots takes scheduled snapshots of the slots' volumes and returns
// each volume's latest completed snapshot.
func (c *Controller) slotSnapshots(ctx context.Context, cluster string, s *state.ServiceRecord, volumes []service.SlotVolume) (map[string]agentapi.Snapshot, error) {
	latest := map[string]agentapi.Snapshot{}
	pending := map[string]bool{}
	ids := map[string]bool{}
	for _, v := range volumes {
		ids[v.ID] = true
	}
	err := c.Store.Range(ctx, state.SnapshotPrefix(cluster), "", func(key string, val []byte, _ int64) (bool, error) {
		sn := agentapi.Snapshot{}
		if err := json.Unmarshal(val, &sn); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		if !ids[sn.VolumeID] {
			return true, nil
		}
		switch sn.State {
		case "pending":
			pending[sn.VolumeID] = true
		case "completed":
			if l, ok := latest[sn.VolumeID]; !ok || sn.CreatedAt.After(l.CreatedAt.Time) {
				latest[sn.VolumeID] = sn
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	every, _ := service.TagValue(s.Tags, service.SnapshotIntervalTag)
	interval, err := time.ParseDuration(every)
	if err != nil || interval <= 0 {
		return latest, nil
	}
	for _, v := range volumes {
		l, ok := latest[v.ID]
		if pending[v.ID] || (ok && c.Now().Sub(l.CreatedAt.Time) < interval) {
			continue
		}
		if err := c.Snapshots.Snapshot(ctx, cluster, v.ID); err != nil {
			c.Log.Warn("scheduled snapshot", "volume", v.ID, "err", err)
		}
	}
	return latest, nil
}

// restoreSlot moves a slot whose instance is lost: its task is stopped,
// its volume retired from the slot (the data stays on the lost instance),
// and the slot starts elsewhere on a volume restored from snapshot.
func (c *Controller) restoreSlot(ctx context.Context, cluster string, t *state.TaskRecord, volumeID string, snap agentapi.Snapshot) (*service.SlotStart, error) {
	now := c.Now()
	if _, err := c.Applier.Transition(ctx, cluster, t.ID, func(tr *state.TaskRecord) (bool, error) {
		if spec.Val(tr.LastStatus) == "STOPPED" {
			return false, nil
		}
		launch.MarkStopping(tr, now, "ServiceSchedulerInitiated", "Task stopped: its container instance "+t.InstanceID+" was lost; its slot is restored elsewhere from snapshot "+snap.SnapshotID)
		launch.MarkStopped(tr, now)
		return true, nil
	}); err != nil {
		return nil, err
	}
	_, err := state.Update(ctx, c.Store, state.VolumeKey(cluster, volumeID), func(v *agentapi.Volume) error {
		for i := range v.Tags {
			if spec.Val(v.Tags[i].Key) == service.SlotTag {
				v.Tags[i].Key = spec.Str(service.FormerSlotTag)
			}
		}
		return nil
	})
	return &service.SlotStart{}, err
}

func isStateful(s *state.ServiceRecord) bool {
	for _, t := range s.Tags {
		if spec.Val(t.Key) == service.StatefulTag && spec.Val(t.Value) == "true" {
			return true
		}
	}
	return false
}

// statefulService reconciles slot by slot with the pure service.PlanSlots.
func (c *Controller) statefulService(ctx context.Context, cluster string, s *state.ServiceRecord, tasks []*state.TaskRecord) error {
	now := c.Now()
	ts := spec.TS(now)
	name := spec.Val(s.ServiceName)
	primary := s.Deployments[0]
	in := service.SlotInput{Desired: int(spec.Val(s.DesiredCount)), Primary: spec.Val(primary.TaskDefinition), LostGrace: c.LostGrace,
		Movable: len(primary.VolumeConfigurations) == 0}
	if spec.Val(s.Status) == "DRAINING" {
		in.Desired = 0
	}
	// A failed read must stop the pass: a slot whose volume was not seen
	// would be given a new, empty one.
	err := c.Store.Range(ctx, state.VolumePrefix(cluster), "", func(key string, val []byte, _ int64) (bool, error) {
		v := agentapi.Volume{}
		if err := json.Unmarshal(val, &v); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		if v.State == "deleting" {
			return true, nil
		}
		if svc, _ := service.TagValue(v.Tags, service.ServiceTag); svc == name {
			slot, _ := service.TagValue(v.Tags, service.SlotTag)
			if n, err := strconv.Atoi(slot); err == nil {
				in.Volumes = append(in.Volumes, service.SlotVolume{ID: v.VolumeID, Slot: n, Attached: v.Attachment != nil})
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("service %s: read volumes: %w", name, err)
	}
	byID := map[string]*state.TaskRecord{}
	for _, t := range tasks {
		if spec.Val(t.LastStatus) == "STOPPED" || spec.Val(t.DesiredStatus) != "RUNNING" {
			continue
		}
		slot, _ := service.TagValue(t.Tags, service.SlotTag)
		n, err := strconv.Atoi(slot)
		if err != nil {
			n = -1 // not a slot task: stopped
		}
		byID[t.ID] = t
		in.Tasks = append(in.Tasks, service.SlotTask{ID: t.ID, Slot: n, TaskDefinition: spec.Val(t.TaskDefinitionArn),
			Running: spec.Val(t.LastStatus) == "RUNNING", CreatedAt: t.CreatedAt.Time, LostFor: c.lostFor(cluster, t.InstanceID, now)})
	}
	plan := service.PlanSlots(in)
	latest, err := c.slotSnapshots(ctx, cluster, s, in.Volumes)
	if err != nil {
		return fmt.Errorf("service %s: read snapshots: %w", name, err)
	}
	restore, _ := service.TagValue(s.Tags, service.RestoreLostSlotsTag)
	restoreFrom := map[int]agentapi.Snapshot{}
	var events []string
	for _, slot := range plan.Waiting {
		for _, t := range in.Tasks {
			if t.Slot != slot {
				continue
			}
			tr := byID[t.ID]
			var vol string
			for _, v := range in.Volumes {
				if v.Slot == slot {
					vol = v.ID
				}
			}
			if snap, ok := latest[vol]; restore == "true" && ok {
				if _, err := c.restoreSlot(ctx, cluster, tr, vol, snap); err != nil {
					events = append(events, fmt.Sprintf("was unable to restore slot %s-%d: %v", name, slot, err))
					continue
				}
				restoreFrom[slot] = snap
				plan.Start = append(plan.Start, service.SlotStart{Slot: slot})
				events = append(events, fmt.Sprintf("is restoring slot %s-%d elsewhere from snapshot %s (taken %s): container instance %s, which held volume %s, was lost.",
					name, slot, snap.SnapshotID, snap.CreatedAt.Format(time.RFC3339), tr.InstanceID, vol))
				continue
			}
			events = append(events, fmt.Sprintf("is waiting for container instance %s, which holds the volume of slot %s-%d; the slot is not moved elsewhere.", tr.InstanceID, name, slot))
		}
	}
	for _, id := range plan.Stop {
		if err := c.stopTask(ctx, cluster, byID[id], "Scaling activity initiated by (deployment "+spec.Val(primary.Id)+")"); err != nil {
			// A slot starts again only once its old task is stopped (and
			// its mounts fenced): the next pass tries again.
			return fmt.Errorf("service %s: %w", name, err)
		}
		events = append(events, fmt.Sprintf("has stopped 1 running tasks: (task %s).", id))
	}
	for _, st := range plan.Start {
		slot := fmt.Sprintf("%s-%d", name, st.Slot)
		in := &launch.Input{Cluster: &cluster, TaskDefinition: primary.TaskDefinition, Group: spec.Str("service:" + name), StartedBy: primary.Id,
			LaunchType: s.LaunchType, Constraints: s.PlacementConstraints, Strategies: s.PlacementStrategy, Count: 1,
			Network: networkOf(s, &primary), CapacityProviderStrategy: s.CapacityProviderStrategy, PlatformVersion: s.PlatformVersion,
			Tags: append(propagated(s), spec.Tag{Key: spec.Str(service.SlotTag), Value: spec.Str(strconv.Itoa(st.Slot))})}
		vcs, _ := spec.ServiceVolumes(primary.VolumeConfigurations)
		if st.VolumeID != "" {
			for _, vc := range vcs {
				in.Tags = append(in.Tags, spec.Tag{Key: spec.Str(launch.AttachVolumeTagPrefix + spec.Val(vc.Name)), Value: spec.Str(st.VolumeID)})
			}
		} else {
			for i := range vcs {
				if m := vcs[i].ManagedEBSVolume; m != nil {
					if snap, ok := restoreFrom[st.Slot]; ok {
						m.SnapshotId = spec.Str(snap.SnapshotID)
						m.FilesystemType = spec.Str(snap.FilesystemType)
						if spec.Val(m.SizeInGiB) < int32(snap.SizeInGiB) {
							m.SizeInGiB = spec.I32(int32(snap.SizeInGiB))
						}
					}
					m.TerminationPolicy = &spec.TaskManagedEBSVolumeTerminationPolicy{DeleteOnTermination: spec.Bool(false)}
					m.TagSpecifications = append(m.TagSpecifications, spec.EBSTagSpecification{ResourceType: spec.Str("volume"), Tags: []spec.Tag{
						{Key: spec.Str(service.ServiceTag), Value: spec.Str(name)}, {Key: spec.Str(service.SlotTag), Value: spec.Str(strconv.Itoa(st.Slot))}}})
				}
			}
			in.VolumeConfigurations = vcs
		}
		td, err := c.Launcher.TaskDefinition(ctx, spec.Val(primary.TaskDefinition))
		if err != nil {
			events = append(events, fmt.Sprintf("was unable to start slot %s: %s", slot, err.Error()))
			continue
		}
		in.Overrides = slotOverrides(&td.TaskDefinition, slot)
		placed, fails, err := c.Launcher.Launch(ctx, in)
		switch {
		case err != nil:
			events = append(events, fmt.Sprintf("was unable to start slot %s: %v", slot, err))
		case len(placed) == 0:
			events = append(events, fmt.Sprintf("was unable to place slot %s because no container instance met all of its requirements.%s", slot, failureSummary(fails)))
		default:
			events = append(events, fmt.Sprintf("has started 1 tasks: (task %s) for slot %s.", placed[0].ID, slot))
		}
	}
	running, live := 0, 0
	for _, t := range in.Tasks {
		if t.Slot >= 0 && t.Slot < in.Desired {
			live++
			if t.Running && t.LostFor == 0 {
				running++
			}
		}
	}
	_, err = state.Update(ctx, c.Store, state.ServiceKey(cluster, name), func(rec *state.ServiceRecord) error {
		for _, e := range events {
			service.AddEvent(&rec.Service, ts, "%s", e)
		}
		if spec.Val(rec.Status) == "DRAINING" && len(in.Tasks) == len(plan.Stop) {
			rec.Status = spec.Str("INACTIVE")
			service.AddEvent(&rec.Service, ts, "has been deleted; the slots' volumes are kept.")
			return nil
		}
		markSteady(rec, ts, running == in.Desired && live == in.Desired && len(events) == 0)
		return nil
	})
	return err
}

// slotOverrides sets the slot identity in every container's environment.
func slotOverrides(td *spec.TaskDefinition, slot string) *spec.TaskOverride {
	o := &spec.TaskOverride{}
	for _, c := range td.ContainerDefinitions {
		o.ContainerOverrides = append(o.ContainerOverrides, spec.ContainerOverride{Name: c.Name,
			Environment: []spec.KeyValuePair{{Name: spec.Str(service.SlotEnv), Value: spec.Str(slot)}}})
	}
	return o
}

// stopTask asks a task to stop (at once if its agent is away: the
// transition to STOPPED also ends the task's file system sessions).
func (c *Controller) stopTask(ctx context.Context, cluster string, t *state.TaskRecord, reason string) error {
	now := c.Now()
	connected := c.Cache.Connected(cluster, t.InstanceID)
	_, err := c.Applier.Transition(ctx, cluster, t.ID, func(tr *state.TaskRecord) (bool, error) {
		if spec.Val(tr.DesiredStatus) == "STOPPED" {
			return false, nil
		}
		launch.MarkStopping(tr, now, "ServiceSchedulerInitiated", reason)
		if !connected {
			launch.MarkStopped(tr, now)
		}
		return true, nil
	})
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("stopping task %s: %w", t.ID, err)
	}
	return nil
}
