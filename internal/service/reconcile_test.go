package service

import (
	"fmt"
	"math/rand"
	"testing"
	"testing/quick"
	"time"
)

func tasks(def string, n int, healthy bool) []Task {
	var out []Task
	for i := 0; i < n; i++ {
		out = append(out, Task{ID: fmt.Sprintf("%s-%d", def, i), TaskDefinition: def, Running: healthy, Healthy: healthy, CreatedAt: time.Unix(int64(i), 0)})
	}
	return out
}

func TestReconcileCases(t *testing.T) {
	cases := []struct {
		name  string
		in    Input
		start int
		stop  int
		lost  int
		wait  int
	}{
		{"scale from zero", Input{Desired: 3, Primary: "v1"}, 3, 0, 0, 0},
		{"steady", Input{Desired: 3, Primary: "v1", Tasks: tasks("v1", 3, true)}, 0, 0, 0, 0},
		{"scale down", Input{Desired: 1, Primary: "v1", Tasks: tasks("v1", 3, true)}, 0, 2, 0, 0},
		{"replace a failed task", Input{Desired: 3, Primary: "v1", Tasks: tasks("v1", 2, true)}, 1, 0, 0, 0},
		{"rolling update starts new within max", Input{Desired: 4, Primary: "v2", MaximumPercent: 150, MinHealthyPercent: 100, Tasks: tasks("v1", 4, true)}, 2, 0, 0, 0},
		{"rolling update stops old once new are healthy", Input{Desired: 4, Primary: "v2", MaximumPercent: 150, MinHealthyPercent: 100,
			Tasks: append(tasks("v1", 4, true), tasks("v2", 2, true)...)}, 2, 2, 0, 0},
		{"min 50 percent frees room", Input{Desired: 4, Primary: "v2", MaximumPercent: 100, MinHealthyPercent: 50, Tasks: tasks("v1", 4, true)}, 2, 2, 0, 0},
		{"lost instance past grace", Input{Desired: 2, Primary: "v1", LostGrace: 15 * time.Second,
			Tasks: []Task{{ID: "a", TaskDefinition: "v1", Running: true, Healthy: true, LostFor: 20 * time.Second}, {ID: "b", TaskDefinition: "v1", Running: true, Healthy: true}}}, 1, 0, 1, 0},
		{"lost within grace", Input{Desired: 2, Primary: "v1", LostGrace: 15 * time.Second,
			Tasks: []Task{{ID: "a", TaskDefinition: "v1", Running: true, Healthy: true, LostFor: 5 * time.Second}, {ID: "b", TaskDefinition: "v1", Running: true, Healthy: true}}}, 0, 0, 0, 0},
		{"data pinned waits", Input{Desired: 2, Primary: "v1", LostGrace: 15 * time.Second,
			Tasks: []Task{{ID: "a", TaskDefinition: "v1", Running: true, Healthy: true, LostFor: time.Minute, DataPinned: true}, {ID: "b", TaskDefinition: "v1", Running: true, Healthy: true}}}, 0, 0, 0, 1},
		{"draining", Input{Desired: 2, Primary: "v1", Draining: true, Tasks: tasks("v1", 2, true)}, 0, 2, 0, 0},
		{"breaker", Input{Desired: 2, Primary: "v2", MinHealthyPercent: 50, CircuitBreaker: true, FailedPrimary: 3, Tasks: tasks("v1", 2, true)}, 0, 0, 0, 0},
	}
	for _, c := range cases {
		p := Reconcile(c.in)
		if p.Start != c.start || len(p.Stop) != c.stop || len(p.Lost) != c.lost || len(p.Waiting) != c.wait {
			t.Errorf("%s: plan %+v, want start %d stop %d lost %d wait %d", c.name, p, c.start, c.stop, c.lost, c.wait)
		}
	}
}

// TestReconcileBounds is a property test: a plan never takes the service
// above maximumPercent, and never stops healthy tasks below
// minimumHealthyPercent.
func TestReconcileBounds(t *testing.T) {
	prop := func(seed int64) bool {
		r := rand.New(rand.NewSource(seed))
		in := Input{Desired: r.Intn(10), Primary: "v2", MaximumPercent: 100 + r.Intn(3)*50, MinHealthyPercent: r.Intn(3) * 50}
		for i, n := 0, r.Intn(15); i < n; i++ {
			def := "v1"
			if r.Intn(2) == 0 {
				def = "v2"
			}
			h := r.Intn(3) > 0
			in.Tasks = append(in.Tasks, Task{ID: fmt.Sprint(i), TaskDefinition: def, Running: h, Healthy: h, CreatedAt: time.Unix(int64(r.Intn(100)), 0)})
		}
		maxTotal, minHealthy := Bounds(in)
		p := Reconcile(in)
		stopped := map[string]bool{}
		for _, id := range p.Stop {
			if stopped[id] {
				return false // stopped twice
			}
			stopped[id] = true
		}
		healthyBefore, healthyAfter := 0, 0
		for _, tk := range in.Tasks {
			if tk.Healthy {
				healthyBefore++
				if !stopped[tk.ID] {
					healthyAfter++
				}
			}
		}
		total := len(in.Tasks) - len(p.Stop) + p.Start
		if len(in.Tasks) <= maxTotal && total > maxTotal {
			return false
		}
		if healthyAfter < minHealthy && healthyAfter < healthyBefore {
			// Only surplus of the primary deployment may go below the floor,
			// and then only down to the desired count.
			cur := 0
			for _, tk := range in.Tasks {
				if tk.TaskDefinition == in.Primary && !stopped[tk.ID] {
					cur++
				}
			}
			if cur < in.Desired {
				return false
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 5000}); err != nil {
		t.Fatal(err)
	}
}
