package service

import (
	"fmt"
	"math/rand"
	"testing"
	"testing/quick"
	"time"
)

// TestPlanSlotsProperties: over random stateful services, a plan never
// gives one volume to two slots or two tasks, never starts a slot that has
// a task, never uses an attached volume, and never uses another slot's volume.
func TestPlanSlotsProperties(t *testing.T) {
	prop := func(seed int64) bool {
		r := rand.New(rand.NewSource(seed))
		in := SlotInput{Desired: r.Intn(6), Primary: "v2", LostGrace: 15 * time.Second}
		for i, n := 0, r.Intn(8); i < n; i++ {
			def := []string{"v1", "v2"}[r.Intn(2)]
			in.Tasks = append(in.Tasks, SlotTask{ID: fmt.Sprint("t", i), Slot: r.Intn(7), TaskDefinition: def, Running: r.Intn(3) > 0,
				CreatedAt: time.Unix(int64(r.Intn(50)), 0), LostFor: time.Duration(r.Intn(3)) * 10 * time.Second})
		}
		for i, n := 0, r.Intn(8); i < n; i++ {
			in.Volumes = append(in.Volumes, SlotVolume{ID: fmt.Sprint("v", i), Slot: r.Intn(7), Attached: r.Intn(3) == 0})
		}
		p := PlanSlots(in)
		vol := map[string]SlotVolume{}
		for _, v := range in.Volumes {
			vol[v.ID] = v
		}
		stopped := map[string]bool{}
		for _, id := range p.Stop {
			stopped[id] = true
		}
		live := map[int]bool{}
		for _, tk := range in.Tasks {
			if !stopped[tk.ID] {
				if live[tk.Slot] {
					return false // two tasks kept for one slot
				}
				live[tk.Slot] = true
			}
		}
		used := map[string]bool{}
		for _, s := range p.Start {
			if s.Slot < 0 || s.Slot >= in.Desired || live[s.Slot] {
				return false
			}
			if s.VolumeID != "" {
				v := vol[s.VolumeID]
				if used[s.VolumeID] || v.Attached || v.Slot != s.Slot {
					return false
				}
				used[s.VolumeID] = true
			} else {
				for _, v := range in.Volumes {
					if v.Slot == s.Slot {
						return false // a new volume although the slot has one
					}
				}
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 5000}); err != nil {
		t.Fatal(err)
	}
}

func TestPlanSlotsCases(t *testing.T) {
	p := PlanSlots(SlotInput{Desired: 2, Primary: "v1", Volumes: []SlotVolume{{ID: "a", Slot: 1}}})
	if fmt.Sprint(p.Start) != "[{0 } {1 a}]" {
		t.Fatalf("start: %+v", p.Start)
	}
	// Scale down keeps volumes: the task of slot 1 stops, the volume stays.
	p = PlanSlots(SlotInput{Desired: 1, Primary: "v1", Tasks: []SlotTask{{ID: "x", Slot: 0, TaskDefinition: "v1", Running: true}, {ID: "y", Slot: 1, TaskDefinition: "v1", Running: true}}})
	if fmt.Sprint(p.Stop) != "[y]" || len(p.Start) != 0 {
		t.Fatalf("scale down: %+v", p)
	}
	// An update replaces one slot at a time.
	p = PlanSlots(SlotInput{Desired: 2, Primary: "v2", Tasks: []SlotTask{{ID: "x", Slot: 0, TaskDefinition: "v1", Running: true}, {ID: "y", Slot: 1, TaskDefinition: "v1", Running: true}}})
	if fmt.Sprint(p.Stop) != "[x]" {
		t.Fatalf("update: %+v", p)
	}
	// A lost instance's slot waits; its still-attached volume is not reused.
	p = PlanSlots(SlotInput{Desired: 1, Primary: "v1", LostGrace: time.Second, Tasks: []SlotTask{{ID: "x", Slot: 0, TaskDefinition: "v1", Running: true, LostFor: time.Minute}},
		Volumes: []SlotVolume{{ID: "a", Slot: 0, Attached: true}}})
	if fmt.Sprint(p.Waiting) != "[0]" || len(p.Start) != 0 || len(p.Stop) != 0 {
		t.Fatalf("lost: %+v", p)
	}
}

// Slots on a shared file system move: a lost slot's task is stopped and
// the slot starts again elsewhere at once; with block volumes it waits.
func TestMovableSlotsRestartElsewhere(t *testing.T) {
	in := SlotInput{Desired: 2, Primary: "td:1", LostGrace: time.Second, Movable: true,
		Tasks: []SlotTask{{ID: "a", Slot: 0, TaskDefinition: "td:1", Running: true, LostFor: 5 * time.Second},
			{ID: "b", Slot: 1, TaskDefinition: "td:1", Running: true}}}
	p := PlanSlots(in)
	if len(p.Stop) != 1 || p.Stop[0] != "a" || len(p.Start) != 1 || p.Start[0].Slot != 0 || len(p.Waiting) != 0 {
		t.Fatalf("movable: %+v", p)
	}
	in.Movable = false
	p = PlanSlots(in)
	if len(p.Stop) != 0 || len(p.Start) != 0 || len(p.Waiting) != 1 || p.Waiting[0] != 0 {
		t.Fatalf("on block volumes: %+v", p)
	}
}
