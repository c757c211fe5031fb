// Package service decides what a service's controller does next. Reconcile
// is a pure function of the service's desired state and its tasks' actual
// state: no I/O, and time comes in as durations already measured, so it can
// be tested exhaustively. The controller in package server applies its
// plans through the same placement path as RunTask.
package service

import (
	"sort"
	"time"
)

// Task is one non-stopped task of a service, as the controller sees it.
type Task struct {
	ID             string
	TaskDefinition string
	Running        bool      // lastStatus RUNNING
	Healthy        bool      // running, and its health checks (if any) pass
	CreatedAt      time.Time // newer tasks are stopped first
	// LostFor is how long its instance has been without an agent (0: connected).
	LostFor time.Duration
	// DataPinned: its data can only live on its instance, so it is not
	// replaced elsewhere when that instance is lost.
	DataPinned bool
}

// Input is everything Reconcile needs.
type Input struct {
	Desired           int
	Primary           string // the task definition of the primary deployment
	MaximumPercent    int    // 0 means ECS's default, 200
	MinHealthyPercent int    // as given (ECS's default, 100, is applied by the caller)
	Tasks             []Task
	LostGrace         time.Duration
	Draining          bool // the service is being deleted
	// FailedPrimary counts tasks of the primary deployment that stopped
	// without running; with CircuitBreaker, reaching the threshold trips it.
	FailedPrimary  int
	CircuitBreaker bool
}

// Plan is what to do now.
type Plan struct {
	Start   int      // tasks of the primary deployment to start
	Stop    []string // tasks to stop (surplus, or of older deployments)
	Lost    []string // tasks to mark STOPPED: their instance is lost past the grace
	Waiting []string // tasks whose lost instance holds their data: wait for it
	Tripped bool     // the circuit breaker tripped: start nothing more
}

// BreakerThreshold is ECS's failed-task threshold: half the desired count,
// at least 3 and at most 200.
func BreakerThreshold(desired int) int {
	return min(max(3, (desired+1)/2), 200)
}

// Bounds returns the most tasks that may exist and the fewest healthy
// tasks that must remain, from the deployment configuration.
func Bounds(in Input) (maxTotal, minHealthy int) {
	maxPct, minPct := in.MaximumPercent, in.MinHealthyPercent
	if maxPct == 0 {
		maxPct = 200
	}
	maxTotal = in.Desired * maxPct / 100
	if maxTotal < in.Desired {
		maxTotal = in.Desired
	}
	minHealthy = (in.Desired*minPct + 99) / 100
	return maxTotal, minHealthy
}

// Reconcile computes the next step toward Desired tasks of Primary.
func Reconcile(in Input) Plan {
	var p Plan
	var active []Task
	for _, t := range in.Tasks {
		if t.LostFor > in.LostGrace && t.LostFor > 0 {
			if t.DataPinned {
				p.Waiting = append(p.Waiting, t.ID)
				active = append(active, Task{ID: t.ID, TaskDefinition: t.TaskDefinition, CreatedAt: t.CreatedAt, DataPinned: true, LostFor: t.LostFor})
				continue
			}
			p.Lost = append(p.Lost, t.ID)
			continue
		}
		active = append(active, t)
	}
	if in.Draining {
		for _, t := range active {
			if !(t.DataPinned && t.LostFor > 0) {
				p.Stop = append(p.Stop, t.ID)
			}
		}
		return p
	}
	maxTotal, minHealthy := Bounds(in)
	var current, old []Task
	healthy := 0
	for _, t := range active {
		if t.TaskDefinition == in.Primary {
			current = append(current, t)
		} else {
			old = append(old, t)
		}
		if t.Healthy {
			healthy++
		}
	}
	// Surplus of the primary deployment: stop the least useful first.
	if len(current) > in.Desired {
		sort.SliceStable(current, func(i, j int) bool { return worse(current[i], current[j]) })
		for _, t := range current[:len(current)-in.Desired] {
			p.Stop = append(p.Stop, t.ID)
			if t.Healthy {
				healthy--
			}
		}
		current = current[len(current)-in.Desired:]
	}
	if in.CircuitBreaker && in.FailedPrimary >= BreakerThreshold(in.Desired) {
		// The rollout failed: keep what runs, start nothing more.
		p.Tripped = true
		return p
	}
	// Older deployments: unhealthy tasks go at once; healthy ones only while
	// enough healthy tasks remain.
	sort.SliceStable(old, func(i, j int) bool { return worse(old[i], old[j]) })
	for _, t := range old {
		if t.DataPinned && t.LostFor > 0 {
			continue
		}
		if t.Healthy {
			if healthy-1 < minHealthy {
				continue
			}
			healthy--
		}
		p.Stop = append(p.Stop, t.ID)
	}
	total := len(active) - len(p.Stop)
	p.Start = max(0, min(in.Desired-len(current), maxTotal-total))
	return p
}

// worse orders tasks for stopping: not running before running, unhealthy
// before healthy, newer before older.
func worse(a, b Task) bool {
	if a.Running != b.Running {
		return !a.Running
	}
	if a.Healthy != b.Healthy {
		return !a.Healthy
	}
	return a.CreatedAt.After(b.CreatedAt)
}
