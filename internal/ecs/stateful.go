package ecs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Stateful services (beyond ECS): a service tagged berth:stateful=true
// gives each task slot a stable identity, SERVICE-N, and its own block
// volume, created from the service's volumeConfigurations on the slot's
// first start and kept when the task stops or the service scales down. A
// replacement for slot N gets slot N's volume, on the instance (and so in
// the zone) that holds it; while that instance is lost, the slot waits.
const (
	StatefulTag = "berth:stateful"
	SlotTag     = "berth:slot"
	ServiceTag  = "berth:service"
	// SlotEnv is set in every container of a stateful service's task.
	SlotEnv = "BERTH_SERVICE_SLOT"
)

func isStateful(s *state.ServiceRecord) bool {
	for _, t := range s.Tags {
		if spec.Val(t.Key) == StatefulTag && spec.Val(t.Value) == "true" {
			return true
		}
	}
	return false
}

func tagValue(tags []spec.Tag, key string) (string, bool) {
	for _, t := range tags {
		if spec.Val(t.Key) == key {
			return spec.Val(t.Value), true
		}
	}
	return "", false
}

// statefulService reconciles slot by slot with the pure service.PlanSlots.
func (c *Controller) statefulService(ctx context.Context, cluster string, s *state.ServiceRecord, tasks []*state.TaskRecord) error {
	a := c.API
	now := a.Now()
	ts := spec.TS(now)
	name := spec.Val(s.ServiceName)
	primary := s.Deployments[0]
	in := service.SlotInput{Desired: int(spec.Val(s.DesiredCount)), Primary: spec.Val(primary.TaskDefinition), LostGrace: c.LostGrace}
	if spec.Val(s.Status) == "DRAINING" {
		in.Desired = 0
	}
	a.Store.Range(ctx, state.VolumePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		v := state.VolumeRecord{}
		if json.Unmarshal(val, &v) != nil || v.State == "deleting" {
			return true, nil
		}
		if svc, _ := tagValue(v.Tags, ServiceTag); svc == name {
			slot, _ := tagValue(v.Tags, SlotTag)
			if n, err := strconv.Atoi(slot); err == nil {
				in.Volumes = append(in.Volumes, service.SlotVolume{ID: v.VolumeID, Slot: n, Attached: v.Attachment != nil})
			}
		}
		return true, nil
	})
	byID := map[string]*state.TaskRecord{}
	for _, t := range tasks {
		if spec.Val(t.LastStatus) == "STOPPED" || spec.Val(t.DesiredStatus) != "RUNNING" {
			continue
		}
		slot, _ := tagValue(t.Tags, SlotTag)
		n, err := strconv.Atoi(slot)
		if err != nil {
			n = -1 // not a slot task: stopped
		}
		byID[t.ID] = t
		in.Tasks = append(in.Tasks, service.SlotTask{ID: t.ID, Slot: n, TaskDefinition: spec.Val(t.TaskDefinitionArn),
			Running: spec.Val(t.LastStatus) == "RUNNING", CreatedAt: t.CreatedAt.Time, LostFor: c.lostFor(cluster, t.InstanceID, now)})
	}
	plan := service.PlanSlots(in)
	var events []string
	for _, slot := range plan.Waiting {
		for _, t := range in.Tasks {
			if t.Slot == slot {
				events = append(events, fmt.Sprintf("is waiting for container instance %s, which holds the volume of slot %s-%d; the slot is not moved elsewhere.", byID[t.ID].InstanceID, name, slot))
			}
		}
	}
	for _, id := range plan.Stop {
		c.stopTask(ctx, cluster, byID[id], "Scaling activity initiated by (deployment "+spec.Val(primary.Id)+")")
		events = append(events, fmt.Sprintf("has stopped 1 running tasks: (task %s).", id))
	}
	for _, st := range plan.Start {
		slot := fmt.Sprintf("%s-%d", name, st.Slot)
		in := &launchInput{Cluster: &cluster, TaskDefinition: primary.TaskDefinition, Group: spec.Str("service:" + name), StartedBy: primary.Id,
			LaunchType: s.LaunchType, Constraints: s.PlacementConstraints, Strategies: s.PlacementStrategy, Count: 1,
			Tags: append(propagated(s), spec.Tag{Key: spec.Str(SlotTag), Value: spec.Str(strconv.Itoa(st.Slot))})}
		vcs, _ := serviceVolumes(primary.VolumeConfigurations)
		if st.VolumeID != "" {
			for _, vc := range vcs {
				in.Tags = append(in.Tags, spec.Tag{Key: spec.Str(AttachVolumeTagPrefix + spec.Val(vc.Name)), Value: spec.Str(st.VolumeID)})
			}
		} else {
			for i := range vcs {
				if m := vcs[i].ManagedEBSVolume; m != nil {
					m.TerminationPolicy = &spec.TaskManagedEBSVolumeTerminationPolicy{DeleteOnTermination: spec.Bool(false)}
					m.TagSpecifications = append(m.TagSpecifications, spec.EBSTagSpecification{ResourceType: spec.Str("volume"), Tags: []spec.Tag{
						{Key: spec.Str(ServiceTag), Value: spec.Str(name)}, {Key: spec.Str(SlotTag), Value: spec.Str(strconv.Itoa(st.Slot))}}})
				}
			}
			in.VolumeConfigurations = vcs
		}
		ls, err := a.prepare(ctx, in)
		if err != nil {
			events = append(events, fmt.Sprintf("was unable to start slot %s: %s", slot, err.Error()))
			continue
		}
		ls.overrides = slotOverrides(&ls.td.TaskDefinition, slot)
		placed, fails, err := a.Applier.Run(ctx, &placement.Job{Cluster: cluster, ClusterRev: ls.cluster.CreatedRev, Request: ls.request,
			NewTask: func(_ int, inst *state.InstanceRecord) *state.TaskRecord { return a.newTask(ls, inst, now) },
			Extra:   a.blockExtra(ls, now)})
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
	_, err := state.Update(ctx, a.Store, state.ServiceKey(cluster, name), func(rec *state.ServiceRecord) error {
		for _, e := range events {
			addEvent(rec, ts, "%s", e)
		}
		if spec.Val(rec.Status) == "DRAINING" && len(in.Tasks) == len(plan.Stop) {
			rec.Status = spec.Str("INACTIVE")
			addEvent(rec, ts, "has been deleted; the slots' volumes are kept.")
			return nil
		}
		if running == in.Desired && live == in.Desired && len(events) == 0 {
			rec.Deployments = rec.Deployments[:1]
			rec.Deployments[0].RolloutState = spec.Str("COMPLETED")
			if !rec.SteadyReported {
				rec.SteadyReported = true
				addEvent(rec, ts, "has reached a steady state.")
			}
		} else {
			rec.SteadyReported = false
		}
		return nil
	})
	return err
}

// slotOverrides sets the slot identity in every container's environment.
func slotOverrides(td *spec.TaskDefinition, slot string) *spec.TaskOverride {
	o := &spec.TaskOverride{}
	for _, c := range td.ContainerDefinitions {
		o.ContainerOverrides = append(o.ContainerOverrides, spec.ContainerOverride{Name: c.Name,
			Environment: []spec.KeyValuePair{{Name: spec.Str(SlotEnv), Value: spec.Str(slot)}}})
	}
	return o
}

// stopTask asks a task to stop (at once if its agent is away).
func (c *Controller) stopTask(ctx context.Context, cluster string, t *state.TaskRecord, reason string) {
	a := c.API
	now := a.Now()
	connected := a.Cache.Connected(cluster, t.InstanceID)
	a.Applier.Transition(ctx, cluster, t.ID, func(tr *state.TaskRecord) (bool, error) {
		if spec.Val(tr.DesiredStatus) == "STOPPED" {
			return false, nil
		}
		stopTask(tr, now, "ServiceSchedulerInitiated", reason)
		if !connected {
			markStopped(tr, now)
		}
		return true, nil
	})
}
