package ecs

import (
	"context"
	"fmt"

	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// daemonService keeps one task of the service on every ACTIVE instance
// whose agent is connected and which satisfies the service's constraints.
func (c *Controller) daemonService(ctx context.Context, cluster string, s *state.ServiceRecord, tasks []*state.TaskRecord) error {
	a := c.API
	now := a.Now()
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
		ci, ok := a.Cache.Instance(cluster, t.InstanceID)
		gone := !ok || spec.Val(ci.Record.Status) != "ACTIVE"
		if draining || gone || onInstance[t.InstanceID] != nil || spec.Val(t.TaskDefinitionArn) != spec.Val(primary.TaskDefinition) {
			c.stopTask(ctx, cluster, t, "Scaling activity initiated by (deployment "+spec.Val(primary.Id)+")")
			events = append(events, fmt.Sprintf("has stopped 1 running tasks: (task %s).", t.ID))
			continue
		}
		onInstance[t.InstanceID] = t
	}
	eligible := 0
	for _, ci := range a.Cache.Instances(cluster) {
		id := ci.Record.ID
		if draining || spec.Val(ci.Record.Status) != "ACTIVE" || !a.Cache.Connected(cluster, id) {
			continue
		}
		ls, err := a.prepare(ctx, &launchInput{Cluster: &cluster, TaskDefinition: primary.TaskDefinition, Group: spec.Str("service:" + name),
			StartedBy: primary.Id, LaunchType: s.LaunchType, Constraints: s.PlacementConstraints, Count: 1, Tags: propagated(s)})
		if err != nil {
			events = append(events, "was unable to place a task because "+err.Error())
			break
		}
		ls.request.Candidates = []string{id}
		if onInstance[id] != nil {
			eligible++
			continue
		}
		placed, fails, err := a.Applier.Run(ctx, &placement.Job{Cluster: cluster, ClusterRev: ls.cluster.CreatedRev, Request: ls.request,
			NewTask: func(_ int, inst *state.InstanceRecord) *state.TaskRecord { return a.newTask(ls, inst, now) }})
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
	_, err := state.Update(ctx, a.Store, state.ServiceKey(cluster, name), func(rec *state.ServiceRecord) error {
		for _, e := range events {
			addEvent(rec, ts, "%s", e)
		}
		rec.DesiredCount = spec.I32(int32(eligible))
		if len(rec.Deployments) > 0 {
			rec.Deployments[0].DesiredCount = rec.DesiredCount
		}
		if draining && len(onInstance) == 0 {
			rec.Status = spec.Str("INACTIVE")
			addEvent(rec, ts, "has been deleted.")
		}
		return nil
	})
	return err
}
