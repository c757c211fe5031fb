// Package controller runs services: each pass reads a cluster's services
// and tasks, computes a plan per service with the pure service.Reconcile
// (service.PlanSlots for stateful services), and carries it out by
// launching through the ECS edge (Launcher) and stopping tasks through the
// plan applier's transitions. Only the elected leader runs passes.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Launcher is what the controller asks of the ECS edge (ecs.API): a
// service's tasks go through the same validation, placement and block
// volume handling as RunTask's.
type Launcher interface {
	// Check validates a launch completely and writes nothing.
	Check(ctx context.Context, in *launch.Input) error
	// Launch validates and places a launch.
	Launch(ctx context.Context, in *launch.Input) ([]*state.TaskRecord, []scheduler.Failure, error)
	// TaskDefinition returns a registered task definition.
	TaskDefinition(ctx context.Context, ref string) (*state.TaskDefRecord, error)
}

// Controller runs services.
type Controller struct {
	Store    *state.Store
	Cache    *state.Cache
	Applier  *placement.Applier
	Launcher Launcher
	// Snapshots takes stateful services' scheduled snapshots (volume.API).
	Snapshots interface {
		Snapshot(ctx context.Context, cluster, volumeID string) error
	}
	Log *slog.Logger
	Now func() time.Time
	// LostGrace is how long an instance may be without its agent before its
	// tasks are replaced elsewhere.
	LostGrace time.Duration

	mu      sync.Mutex
	lost    map[string]time.Time // cluster/instance -> first seen without agent
	backoff map[string]*backoff  // service ARN -> start back-off
}

// QuickExit: a service task that stops on its own within this time of
// starting (or never starts) failed to start, as far as the circuit
// breaker and the launch back-off are concerned; a task that has run this
// long resets the back-off.
const QuickExit = time.Minute

// failedEarly says whether a stopped task failed to start: it stopped on
// its own (its essential container exited, or it could not start), not by
// a user or the scheduler, before running QuickExit.
func failedEarly(t *state.TaskRecord) bool {
	switch spec.Val(t.StopCode) {
	case "EssentialContainerExited", "TaskFailedToStart":
	default:
		return false
	}
	return t.StartedAt == nil || t.StoppedAt == nil || t.StoppedAt.Sub(t.StartedAt.Time) < QuickExit
}

// backoff delays new tasks of a service whose tasks keep failing to start:
// 1 s after the first failure, doubling to at most 5 minutes; a task that
// runs past QuickExit resets it.
type backoff struct {
	failed int
	step   int
	until  time.Time
}

func (c *Controller) startAllowed(arn string, failed int, stable bool, now time.Time) (allowed bool, wait time.Duration, began bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backoff == nil {
		c.backoff = map[string]*backoff{}
	}
	b := c.backoff[arn]
	if b == nil {
		b = &backoff{failed: failed}
		c.backoff[arn] = b
	}
	if stable {
		b.step = 0
	}
	if failed < b.failed {
		b.failed = failed // stopped tasks were collected
	}
	if failed > b.failed {
		b.failed = failed
		b.step++
		b.until = now.Add(min(time.Second<<(b.step-1), 5*time.Minute))
		began = true
	}
	if now.Before(b.until) {
		return false, b.until.Sub(now), began
	}
	return true, 0, began
}

// Pass reconciles every service once.
func (c *Controller) Pass(ctx context.Context) error {
	var clusters []string
	err := c.Store.Range(ctx, state.ClustersPrefix(), "", func(key string, _ []byte, _ int64) (bool, error) {
		clusters = append(clusters, strings.TrimPrefix(key, state.ClustersPrefix()))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, cl := range clusters {
		if err := c.cluster(ctx, cl); err != nil {
			return fmt.Errorf("cluster %s: %w", cl, err)
		}
	}
	return nil
}

// lostFor returns how long an instance has been without its agent.
func (c *Controller) lostFor(cluster, id string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost == nil {
		c.lost = map[string]time.Time{}
	}
	key := cluster + "/" + id
	_, registered := c.Cache.Instance(cluster, id)
	if registered && c.Cache.Connected(cluster, id) {
		delete(c.lost, key)
		return 0
	}
	first, ok := c.lost[key]
	if !ok {
		c.lost[key] = now
		return time.Nanosecond
	}
	return max(now.Sub(first), time.Nanosecond)
}

func (c *Controller) cluster(ctx context.Context, cluster string) error {
	var services []*state.ServiceRecord
	err := c.Store.Range(ctx, state.ServicePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		s := &state.ServiceRecord{}
		if err := json.Unmarshal(val, s); err != nil {
			return false, err
		}
		if st := spec.Val(s.Status); st == "ACTIVE" || st == "DRAINING" {
			services = append(services, s)
		}
		return true, nil
	})
	if err != nil || len(services) == 0 {
		return err
	}
	byGroup := map[string][]*state.TaskRecord{}
	err = c.Store.Range(ctx, state.TaskPrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		t := &state.TaskRecord{}
		if err := json.Unmarshal(val, t); err != nil {
			return false, err
		}
		if g := spec.Val(t.Group); strings.HasPrefix(g, "service:") {
			byGroup[g] = append(byGroup[g], t)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, s := range services {
		if err := c.service(ctx, cluster, s, byGroup["service:"+spec.Val(s.ServiceName)]); err != nil {
			c.Log.Warn("service controller", "service", spec.Val(s.ServiceArn), "err", err)
		}
	}
	return nil
}

func (c *Controller) service(ctx context.Context, cluster string, s *state.ServiceRecord, tasks []*state.TaskRecord) error {
	if isStateful(s) {
		return c.statefulService(ctx, cluster, s, tasks)
	}
	if spec.Val(s.SchedulingStrategy) == "DAEMON" {
		return c.daemonService(ctx, cluster, s, tasks)
	}
	now := c.Now()
	primary := s.Deployments[0]
	dc := s.DeploymentConfiguration
	in := service.Input{Desired: int(spec.Val(s.DesiredCount)), Primary: spec.Val(primary.TaskDefinition),
		MaximumPercent: int(spec.Val(dc.MaximumPercent)), MinHealthyPercent: int(spec.Val(dc.MinimumHealthyPercent)),
		LostGrace: c.LostGrace, Draining: spec.Val(s.Status) == "DRAINING"}
	if cb := dc.DeploymentCircuitBreaker; cb != nil && spec.Val(cb.Enable) && spec.Val(primary.RolloutState) == "IN_PROGRESS" {
		in.CircuitBreaker = true
	}
	byID := map[string]*state.TaskRecord{}
	defs := map[string]*state.TaskDefRecord{}
	stable := false // a primary task has run long enough to count as started
	for _, t := range tasks {
		if spec.Val(t.LastStatus) == "STOPPED" {
			if spec.Val(t.TaskDefinitionArn) == in.Primary && failedEarly(t) && primary.CreatedAt != nil && !t.CreatedAt.Before(primary.CreatedAt.Time) {
				in.FailedPrimary++
			}
			continue
		}
		if spec.Val(t.DesiredStatus) != "RUNNING" {
			continue
		}
		byID[t.ID] = t
		running := spec.Val(t.LastStatus) == "RUNNING"
		if running && spec.Val(t.TaskDefinitionArn) == in.Primary && t.StartedAt != nil && now.Sub(t.StartedAt.Time) >= QuickExit {
			stable = true
		}
		st := service.Task{ID: t.ID, TaskDefinition: spec.Val(t.TaskDefinitionArn), Running: running,
			Healthy:   running && spec.Val(t.HealthStatus) != "UNHEALTHY" && (spec.Val(t.HealthStatus) != "UNKNOWN" || !hasHealthCheck(t)),
			CreatedAt: t.CreatedAt.Time, LostFor: c.lostFor(cluster, t.InstanceID, now)}
		arn := spec.Val(t.TaskDefinitionArn)
		if _, ok := defs[arn]; !ok {
			if rec, err := c.Launcher.TaskDefinition(ctx, arn); err == nil {
				defs[arn] = rec
			}
		}
		if d := defs[arn]; len(t.BlockVolumes) > 0 || (d != nil && len(spec.DataKeys(&d.TaskDefinition, d.Tags)) > 0) {
			st.DataPinned = true
		}
		in.Tasks = append(in.Tasks, st)
	}
	plan := service.Reconcile(in)
	ts := spec.TS(now)
	var events []string
	ok, wait, began := c.startAllowed(spec.Val(s.ServiceArn), in.FailedPrimary, stable, now)
	if began {
		events = append(events, fmt.Sprintf("is backing off for %s after %d tasks failed to start.", wait.Round(time.Second), in.FailedPrimary))
	}
	if !ok {
		plan.Start = 0
	}

	if len(plan.Lost) > 0 {
		for _, id := range plan.Lost {
			t := byID[id]
			_, err := c.Applier.Transition(ctx, cluster, id, func(tr *state.TaskRecord) (bool, error) {
				if spec.Val(tr.LastStatus) == "STOPPED" {
					return false, nil
				}
				launch.MarkStopping(tr, now, "ServiceSchedulerInitiated", fmt.Sprintf("Task stopped: its container instance %s lost contact for more than %s", t.InstanceID, c.LostGrace))
				launch.MarkStopped(tr, now)
				return true, nil
			})
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("stopping task %s of a lost instance: %w", id, err) // the next pass tries again
			}
		}
		events = append(events, fmt.Sprintf("has stopped %d running tasks on lost container instances: %s.", len(plan.Lost), taskList(plan.Lost)))
	}
	for _, id := range plan.Waiting {
		events = append(events, fmt.Sprintf("is waiting for container instance %s, which holds the data of (task %s); the task is not replaced elsewhere.", byID[id].InstanceID, id))
	}
	if len(plan.Stop) > 0 {
		for _, id := range plan.Stop {
			if err := c.stopTask(ctx, cluster, byID[id], "Scaling activity initiated by (deployment "+spec.Val(primary.Id)+")"); err != nil {
				c.Log.Warn("service controller", "service", spec.Val(s.ServiceArn), "err", err) // the next pass tries again
			}
		}
		events = append(events, fmt.Sprintf("has stopped %d running tasks: %s.", len(plan.Stop), taskList(plan.Stop)))
	}
	started, placeErr := 0, ""
	for left := plan.Start; left > 0; {
		n := min(left, 10)
		vcs, _ := spec.ServiceVolumes(primary.VolumeConfigurations)
		placed, fails, err := c.Launcher.Launch(ctx, &launch.Input{Cluster: &cluster, TaskDefinition: primary.TaskDefinition, Group: spec.Str("service:" + spec.Val(s.ServiceName)),
			StartedBy: primary.Id, LaunchType: s.LaunchType, Constraints: s.PlacementConstraints, Strategies: s.PlacementStrategy,
			VolumeConfigurations: vcs, Count: n, Tags: propagated(s),
			Network: networkOf(s, &primary), CapacityProviderStrategy: s.CapacityProviderStrategy, PlatformVersion: s.PlatformVersion})
		if err != nil {
			placeErr = err.Error()
			break
		}
		var ids []string
		for _, t := range placed {
			ids = append(ids, t.ID)
		}
		if len(ids) > 0 {
			events = append(events, fmt.Sprintf("has started %d tasks: %s.", len(ids), taskList(ids)))
		}
		started += len(placed)
		left -= n
		if len(placed) < n {
			placeErr = "no container instance met all of its requirements." + failureSummary(fails)
			break
		}
	}
	if placeErr != "" {
		events = append(events, "was unable to place a task because "+placeErr)
	}
	_, err := state.Update(ctx, c.Store, state.ServiceKey(cluster, spec.Val(s.ServiceName)), func(rec *state.ServiceRecord) error {
		for _, e := range events {
			service.AddEvent(&rec.Service, ts, "%s", e)
		}
		if len(rec.Deployments) == 0 || spec.Val(rec.Deployments[0].Id) != spec.Val(primary.Id) {
			return nil // changed under us; the next pass sees it
		}
		d := &rec.Deployments[0]
		d.FailedTasks = spec.I32(int32(in.FailedPrimary))
		if plan.Tripped && spec.Val(d.RolloutState) == "IN_PROGRESS" {
			d.RolloutState = spec.Str("FAILED")
			d.RolloutStateReason = spec.Str("ECS deployment circuit breaker: tasks failed to start.")
			d.UpdatedAt = ts
			service.AddEvent(&rec.Service, ts, "(deployment %s) deployment failed: tasks failed to start.", spec.Val(d.Id))
			if cb := rec.DeploymentConfiguration.DeploymentCircuitBreaker; cb != nil && spec.Val(cb.Rollback) && rec.PreviousTaskDefinition != "" {
				back := service.NewDeployment(rec.PreviousTaskDefinition, spec.Val(rec.DesiredCount), ts, spec.Val(rec.LaunchType))
				d.Status = spec.Str("ACTIVE")
				rec.Deployments = append([]spec.Deployment{back}, rec.Deployments...)
				rec.TaskDefinition = spec.Str(rec.PreviousTaskDefinition)
				rec.PreviousTaskDefinition = ""
				service.AddEvent(&rec.Service, ts, "(deployment %s) rolling back to task definition %s.", spec.Val(back.Id), spec.Val(back.TaskDefinition))
			}
			return nil
		}
		healthy, others := 0, 0
		for _, t := range in.Tasks {
			if t.TaskDefinition == in.Primary && t.Healthy && t.LostFor == 0 {
				healthy++
			} else if t.TaskDefinition != in.Primary {
				others++
			}
		}
		if spec.Val(rec.Status) == "DRAINING" && len(in.Tasks) == len(plan.Stop)+len(plan.Lost) {
			rec.Status = spec.Str("INACTIVE")
			service.AddEvent(&rec.Service, ts, "has been deleted.")
			return nil
		}
		markSteady(rec, ts, healthy == in.Desired && others == 0 && plan.Start == 0 && len(plan.Stop) == 0 && len(plan.Lost) == 0 && len(plan.Waiting) == 0)
		return nil
	})
	return err
}

// markSteady completes the primary deployment, drops the older ones and
// records the steady-state event once, when steady; otherwise it re-arms
// that event.
func markSteady(rec *state.ServiceRecord, ts *spec.Timestamp, steady bool) {
	if !steady {
		rec.SteadyReported = false
		return
	}
	d := &rec.Deployments[0]
	if spec.Val(d.RolloutState) == "IN_PROGRESS" {
		d.RolloutState = spec.Str("COMPLETED")
		d.RolloutStateReason = spec.Str("ECS deployment " + spec.Val(d.Id) + " completed.")
		d.UpdatedAt = ts
		if len(rec.Deployments) > 1 {
			service.AddEvent(&rec.Service, ts, "(deployment %s) deployment completed.", spec.Val(d.Id))
		}
	}
	rec.Deployments = rec.Deployments[:1]
	if !rec.SteadyReported {
		rec.SteadyReported = true
		service.AddEvent(&rec.Service, ts, "has reached a steady state.")
	}
}

func hasHealthCheck(t *state.TaskRecord) bool {
	for _, c := range t.Containers {
		if c.HealthStatus != nil {
			return true
		}
	}
	return false
}

func propagated(s *state.ServiceRecord) []spec.Tag {
	if spec.Val(s.PropagateTags) == "SERVICE" {
		return s.Tags
	}
	return nil
}

func taskList(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "(task " + id + ")"
	}
	return strings.Join(parts, " ")
}

func failureSummary(fs []scheduler.Failure) string {
	count := map[string]int{}
	for _, f := range fs {
		count[f.Reason]++
	}
	var keys []string
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s on %d instances", k, count[k]))
	}
	if len(parts) == 0 {
		return ""
	}
	return " Reasons: " + strings.Join(parts, ", ") + "."
}

// networkOf is the network configuration a service's tasks launch with:
// the primary deployment's, or the service's.
func networkOf(s *state.ServiceRecord, primary *spec.Deployment) *spec.NetworkConfiguration {
	if primary != nil && primary.NetworkConfiguration != nil {
		return primary.NetworkConfiguration
	}
	return s.NetworkConfiguration
}
