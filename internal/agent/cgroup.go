package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/spec"
)

// Task-level cpu and memory are limits on the whole task, as the ECS
// agent enforces them: every container of the task (and an awsvpc
// task's pause container) runs in the task's own cgroup, whose memory
// limit is the task's memory and whose CPU quota is the task's cpu
// (1024 units = one CPU). A container that pushes the task past its
// memory is OOM-killed and reported so.

// cgroupRoot is where cgroup file systems are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// cgroupMode is how the engine places containers in cgroups: "v1" or
// "v2" (the cgroupfs driver), or "" when Berth cannot make task cgroups
// (the systemd driver), in which case task limits fall on each
// container.
func (a *Agent) cgroupMode(ctx context.Context) string {
	a.cgOnce.Do(func() {
		info, err := a.docker.Info(ctx)
		if err != nil {
			a.log.Warn("docker info: task-level limits fall on each container", "err", err)
			return
		}
		if info.CgroupDriver != "cgroupfs" {
			a.log.Warn("the engine's cgroup driver is not cgroupfs: task-level cpu and memory limit each container, not the task as a whole", "driver", info.CgroupDriver)
			return
		}
		a.cgMode = "v" + info.CgroupVersion
		if a.cgMode == "v" {
			a.cgMode = "v1"
		}
	})
	return a.cgMode
}

// taskLimits are the task-level cpu units and memory MiB (0: none).
func (r *runner) taskLimits() (cpu, mem int) {
	if r.def.Cpu != nil {
		cpu, _ = spec.ParseCPU(*r.def.Cpu)
	}
	if r.def.Memory != nil {
		mem, _ = spec.ParseMemory(*r.def.Memory)
	}
	return cpu, mem
}

// setupCgroup makes the task's cgroup with its limits.
func (r *runner) setupCgroup(ctx context.Context) error {
	cpu, mem := r.taskLimits()
	if cpu == 0 && mem == 0 {
		return nil
	}
	mode := r.a.cgroupMode(ctx)
	if mode == "" {
		r.perContainerLimits = true
		return nil
	}
	parent := "/berth/" + r.id
	quota := strconv.Itoa(cpu * 100000 / 1024)
	fail := func(err error) error {
		return &taskFailure{code: "TaskFailedToStart", reason: "ResourceInitializationError: set the task's cpu and memory limits: " + err.Error()}
	}
	switch mode {
	case "v1":
		if mem > 0 {
			if err := writeCgroup(filepath.Join(cgroupRoot, "memory", parent), "memory.limit_in_bytes", strconv.Itoa(mem<<20)); err != nil {
				return fail(err)
			}
		}
		if cpu > 0 {
			dir := filepath.Join(cgroupRoot, "cpu", parent)
			if err := writeCgroup(dir, "cpu.cfs_period_us", "100000"); err != nil {
				return fail(err)
			}
			if err := writeCgroup(dir, "cpu.cfs_quota_us", quota); err != nil {
				return fail(err)
			}
		}
	case "v2":
		for _, d := range []string{cgroupRoot, filepath.Join(cgroupRoot, "berth")} {
			if err := writeCgroup(d, "cgroup.subtree_control", "+cpu +memory"); err != nil {
				return fail(err)
			}
		}
		dir := filepath.Join(cgroupRoot, parent)
		if mem > 0 {
			if err := writeCgroup(dir, "memory.max", strconv.Itoa(mem<<20)); err != nil {
				return fail(err)
			}
		}
		if cpu > 0 {
			if err := writeCgroup(dir, "cpu.max", quota+" 100000"); err != nil {
				return fail(err)
			}
		}
		if err := writeCgroup(dir, "cgroup.subtree_control", "+cpu +memory"); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown cgroup mode %s", mode))
	}
	r.cgroupParent = parent
	return nil
}

func writeCgroup(dir, file, val string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, file), []byte(val), 0o644)
}

// removeCgroup removes the task's cgroup once its containers are gone
// (the engine removes theirs when they stop); one still in use stays.
func (r *runner) removeCgroup() {
	if r.cgroupParent == "" {
		return
	}
	for _, d := range []string{"memory", "cpu", ""} {
		os.Remove(filepath.Join(cgroupRoot, d, r.cgroupParent))
	}
}

// taskOOM reports whether the task's cgroup ran out of memory (v1
// counts kills in memory.oom_control, v2 in memory.events).
func (r *runner) taskOOM() bool {
	if r.cgroupParent == "" {
		return false
	}
	for _, f := range []string{filepath.Join(cgroupRoot, "memory", r.cgroupParent, "memory.oom_control"), filepath.Join(cgroupRoot, r.cgroupParent, "memory.events")} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var k string
			var n int
			if _, err := fmt.Sscanf(line, "%s %d", &k, &n); err == nil && k == "oom_kill" && n > 0 {
				return true
			}
		}
	}
	return false
}
