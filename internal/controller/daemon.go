package controller

import (
	"context"
	"fmt"

	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// daemonService keeps one task of the service on every ACTIVE instance
// whose agent is connected and which satisfies the service's constraints.
func (c *Controller) daemonService(ctx context.Context, cluster string, s *state.ServiceRecord, tasks []*state.TaskRecord) error {
	now := c.Now()
	ts := spec.TS(now)
	name := spec.Val(s.ServiceName)
	primary := s.Deployments[0]
	draining := spec.Val(s.Status) == "DRAINING"
	onInstance := map[string]*state.TaskRecord{}
	var events []string
	for _, t := range tasks {
		if spec.Val(t.LastStatus) == "STOPPED" || spec.Val(t.DesiredStatus) != "RUNNING" {
			continue
		}
		ci, ok := c.Cache.Instance(cluster, t.InstanceID)
		gone := !ok || spec.Val(ci.Record.Status) != "ACTIVE"
		if draining || gone || onInstance[t.InstanceID] != nil || spec.Val(t.TaskDefinitionArn) != spec.Val(primary.TaskDefinition) {
			if err := c.stopTask(ctx, cluster, t, "Scaling activity initiated by (deployment "+spec.Val(primary.Id)+")"); err != nil {
				c.Log.Warn("service controller", "service", spec.Val(s.ServiceArn), "err", err) // the next pass tries again
			}
			events = append(events, fmt.Sprintf("has stopped 1 running tasks: (task %s).", t.ID))
			continue
		}
		onInstance[t.InstanceID] = t
	}
	eligible := 0
	for _, ci := range c.Cache.Instances(cluster) {
		id := ci.Record.ID
		if draining || spec.Val(ci.Record.Status) != "ACTIVE" || !c.Cache.Connected(cluster, id) {
			continue
		}
		in := &launch.Input{Cluster: &cluster, TaskDefinition: primary.TaskDefinition, Group: spec.Str("service:" + name),
			StartedBy: primary.Id, LaunchType: s.LaunchType, Constraints: s.PlacementConstraints, Count: 1, Tags: propagated(s),
			Candidates: []string{id}, Network: networkOf(s, &primary)}
		if err := c.Launcher.Check(ctx, in); err != nil {
			events = append(events, "was unable to place a task because "+err.Error())
			break
		}
		if onInstance[id] != nil {
			eligible++
			continue
		}
		placed, fails, err := c.Launcher.Launch(ctx, in)
		switch {
		case err != nil:
			events = append(events, fmt.Sprintf("was unable to place a task on container instance %s: %v", id, err))
		case len(placed) == 1:
			eligible++
			events = append(events, fmt.Sprintf("has started 1 tasks: (task %s) on container instance %s.", placed[0].ID, id))
		default:
			// The instance does not qualify (constraints or resources): not a daemon host.
			if len(fails) > 0 && fails[0].Reason != "ATTRIBUTE" {
				events = append(events, fmt.Sprintf("was unable to place a task on container instance %s:%s", id, failureSummary(fails)))
			}
		}
	}
	_, err := state.Update(ctx, c.Store, state.ServiceKey(cluster, name), func(rec *state.ServiceRecord) error {
		for _, e := range events {
			service.AddEvent(&rec.Service, ts, "%s", e)
		}
		rec.DesiredCount = spec.I32(int32(eligible))
		if len(rec.Deployments) > 0 {
			rec.Deployments[0].DesiredCount = rec.DesiredCount
		}
		if draining && len(onInstance) == 0 {
			rec.Status = spec.Str("INACTIVE")
			service.AddEvent(&rec.Service, ts, "has been deleted.")
		}
		return nil
	})
	return err
}
