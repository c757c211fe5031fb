package service

import (
	"sort"
	"time"
)

// SlotTask is a non-stopped task of a stateful service.
type SlotTask struct {
	ID             string
	Slot           int
	TaskDefinition string
	Running        bool
	CreatedAt      time.Time
	LostFor        time.Duration
}

// SlotVolume is a volume that belongs to a slot.
type SlotVolume struct {
	ID       string
	Slot     int
	Attached bool
}

// SlotInput is everything PlanSlots needs.
type SlotInput struct {
	Desired   int
	Primary   string
	Tasks     []SlotTask
	Volumes   []SlotVolume
	LostGrace time.Duration
	// Movable: the slots keep their data on a shared file system, not on
	// block volumes, so a slot whose instance is lost starts elsewhere.
	Movable bool
}

// SlotStart starts a task for Slot, attaching VolumeID ("" creates the
// slot's volume).
type SlotStart struct {
	Slot     int
	VolumeID string
}

// SlotPlan is what to do now for a stateful service.
type SlotPlan struct {
	Start   []SlotStart
	Stop    []string
	Waiting []int // slots whose instance is lost: they wait for it
}

// PlanSlots keeps one task per slot below Desired, each on its slot's own
// volume. A slot's volume is never given to another slot, never to two
// tasks, and never while still attached; outdated slots are replaced one
// at a time, only while every slot runs.
func PlanSlots(in SlotInput) SlotPlan {
	var p SlotPlan
	tasks := append([]SlotTask(nil), in.Tasks...)
	sort.SliceStable(tasks, func(i, j int) bool {
		if tasks[i].Running != tasks[j].Running {
			return tasks[i].Running
		}
		return tasks[i].CreatedAt.Before(tasks[j].CreatedAt)
	})
	active := map[int]SlotTask{}
	for _, t := range tasks {
		if _, dup := active[t.Slot]; dup || t.Slot < 0 || t.Slot >= in.Desired {
			p.Stop = append(p.Stop, t.ID)
			continue
		}
		if in.Movable && t.LostFor > 0 && t.LostFor > in.LostGrace {
			p.Stop = append(p.Stop, t.ID) // its slot starts again below
			continue
		}
		active[t.Slot] = t
	}
	allRunning := len(active) == in.Desired
	for slot, t := range active {
		if t.LostFor > 0 && t.LostFor > in.LostGrace {
			p.Waiting = append(p.Waiting, slot)
		}
		if !t.Running || t.LostFor > 0 {
			allRunning = false
		}
	}
	if allRunning {
		slots := make([]int, 0, len(active))
		for s := range active {
			slots = append(slots, s)
		}
		sort.Ints(slots)
		for _, s := range slots {
			if active[s].TaskDefinition != in.Primary {
				p.Stop = append(p.Stop, active[s].ID)
				break
			}
		}
	}
	volumes := map[int][]SlotVolume{}
	for _, v := range in.Volumes {
		volumes[v.Slot] = append(volumes[v.Slot], v)
	}
	for slot := 0; slot < in.Desired; slot++ {
		if _, ok := active[slot]; ok {
			continue
		}
		vs := volumes[slot]
		sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
		switch {
		case len(vs) == 0:
			p.Start = append(p.Start, SlotStart{Slot: slot})
		case vs[0].Attached:
			// Its last task is still letting go of it.
		default:
			p.Start = append(p.Start, SlotStart{Slot: slot, VolumeID: vs[0].ID})
		}
	}
	sort.Ints(p.Waiting)
	return p
}
