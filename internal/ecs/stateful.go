package ecs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/berth-project/berth/internal/placement"
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

// statefulService reconciles slot by slot.
func (c *Controller) statefulService(ctx context.Context, cluster string, s *state.ServiceRecord, tasks []*state.TaskRecord) error {
	a := c.API
	now := a.Now()
	ts := spec.TS(now)
	name := spec.Val(s.ServiceName)
	primary := s.Deployments[0]
	desired := int(spec.Val(s.DesiredCount))
	if spec.Val(s.Status) == "DRAINING" {
		desired = 0
	}
	// The slots' volumes, by slot.
	volumes := map[int]state.VolumeRecord{}
	a.Store.Range(ctx, state.VolumePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		v := state.VolumeRecord{}
		if json.Unmarshal(val, &v) == nil {
			if svc, _ := tagValue(v.Tags, ServiceTag); svc == name {
				if n, err := strconv.Atoi(func() string { x, _ := tagValue(v.Tags, SlotTag); return x }()); err == nil && v.State != "deleting" {
					volumes[n] = v
				}
			}
		}
		return true, nil
	})
	active := map[int]*state.TaskRecord{}
	var events []string
	for _, t := range tasks {
		if spec.Val(t.LastStatus) == "STOPPED" || spec.Val(t.DesiredStatus) != "RUNNING" {
			continue
		}
		n, err := strconv.Atoi(func() string { x, _ := tagValue(t.Tags, SlotTag); return x }())
		if err != nil {
			continue
		}
		if c.lostFor(cluster, t.InstanceID, now) > c.LostGrace {
			events = append(events, fmt.Sprintf("is waiting for container instance %s, which holds the volume of slot %s-%d; the slot is not moved elsewhere.", t.InstanceID, name, n))
		}
		if _, dup := active[n]; dup || n >= desired || spec.Val(t.TaskDefinitionArn) != spec.Val(primary.TaskDefinition) && allRunning(active, tasks, desired) {
			c.stopTask(ctx, cluster, t, "Scaling activity initiated by (deployment "+spec.Val(primary.Id)+")")
			events = append(events, fmt.Sprintf("has stopped 1 running tasks: (task %s) of slot %s-%d.", t.ID, name, n))
			continue
		}
		active[n] = t
	}
	for n := 0; n < desired; n++ {
		if _, ok := active[n]; ok {
			continue
		}
		slot := fmt.Sprintf("%s-%d", name, n)
		in := &launchInput{Cluster: &cluster, TaskDefinition: primary.TaskDefinition, Group: spec.Str("service:" + name), StartedBy: primary.Id,
			LaunchType: s.LaunchType, Constraints: s.PlacementConstraints, Strategies: s.PlacementStrategy, Count: 1,
			Tags: append(propagated(s), spec.Tag{Key: spec.Str(SlotTag), Value: spec.Str(strconv.Itoa(n))})}
		vcs, _ := serviceVolumes(primary.VolumeConfigurations)
		if v, ok := volumes[n]; ok {
			if v.Attachment != nil {
				continue // still attached to a stopping task
			}
			for _, vc := range vcs {
				in.Tags = append(in.Tags, spec.Tag{Key: spec.Str(AttachVolumeTagPrefix + spec.Val(vc.Name)), Value: spec.Str(v.VolumeID)})
			}
		} else {
			for i := range vcs {
				if m := vcs[i].ManagedEBSVolume; m != nil {
					m.TerminationPolicy = &spec.TaskManagedEBSVolumeTerminationPolicy{DeleteOnTermination: spec.Bool(false)}
					m.TagSpecifications = append(m.TagSpecifications, spec.EBSTagSpecification{ResourceType: spec.Str("volume"), Tags: []spec.Tag{
						{Key: spec.Str(ServiceTag), Value: spec.Str(name)}, {Key: spec.Str(SlotTag), Value: spec.Str(strconv.Itoa(n))}}})
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
	running := 0
	for _, t := range active {
		if spec.Val(t.LastStatus) == "RUNNING" {
			running++
		}
	}
	_, err := state.Update(ctx, a.Store, state.ServiceKey(cluster, name), func(rec *state.ServiceRecord) error {
		for _, e := range events {
			addEvent(rec, ts, "%s", e)
		}
		if spec.Val(rec.Status) == "DRAINING" && len(active) == 0 {
			rec.Status = spec.Str("INACTIVE")
			addEvent(rec, ts, "has been deleted; the slots' volumes are kept.")
			return nil
		}
		if running == desired && len(active) == desired && len(events) == 0 {
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

// allRunning reports whether every slot below desired has a running task,
// so an outdated slot may be replaced (one at a time).
func allRunning(active map[int]*state.TaskRecord, tasks []*state.TaskRecord, desired int) bool {
	for n := 0; n < desired; n++ {
		t, ok := active[n]
		if !ok || spec.Val(t.LastStatus) != "RUNNING" {
			return false
		}
	}
	return true
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
