package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/volume/block"
	"github.com/docker/go-units"
)

// A Fargate task's ephemeral storage (20 GiB unless its definition says
// 21–200) bounds what it writes outside its persistent volumes:
//
//   - Its task-scoped volumes live on a file system of their own, a
//     sparse image of that size on a loop device under the agent's data
//     directory: a write past it fails with ENOSPC, as on Fargate.
//   - Its containers' writable layers are Docker's. No storage driver
//     bounds a group of containers together, and fuse-overlayfs bounds
//     none, so the agent measures them (with the scratch file system's
//     use) every Config.EphemeralCheckInterval and stops a task past
//     its storage, saying so in its stop reason.

// ephemeralBytes is the task's ephemeral storage limit, or 0.
func (r *runner) ephemeralBytes() int64 {
	if es := r.task.EphemeralStorage; es != nil && spec.Val(es.SizeInGiB) > 0 {
		return int64(spec.Val(es.SizeInGiB)) * r.a.cfg.EphemeralUnit
	}
	return 0
}

func (r *runner) scratch() block.Volume {
	return block.Paths(filepath.Join(r.a.cfg.DataDir, "ephemeral"), r.id)
}

// scratchDir returns the directory on the task's scratch file system for
// one of its task-scoped volumes, making the file system the first time.
func (r *runner) scratchDir(name string) (string, error) {
	v := r.scratch()
	if !v.Mounted() {
		if !v.Exists() {
			err := v.Provision(func(image string) error {
				p := block.Volume{Image: image}
				if err := os.MkdirAll(filepath.Dir(image), 0o700); err != nil {
					return err
				}
				f, err := os.OpenFile(image, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				err = f.Truncate(r.ephemeralBytes())
				f.Close()
				if err != nil {
					return err
				}
				return p.Format("ext4")
			})
			if err != nil {
				return "", volumeError("make the task's ephemeral storage (%s): %v", r.ephemeralSize(), err)
			}
		}
		if _, err := v.Mount("ext4"); err != nil {
			return "", volumeError("mount the task's ephemeral storage: %v", err)
		}
	}
	dir := filepath.Join(v.MountPoint, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", volumeError("ephemeral storage for volume '%s': %v", name, err)
	}
	return dir, nil
}

// removeScratch deletes the task's scratch file system (at cleanup,
// once its containers are gone).
func (a *Agent) removeScratch(taskID string) {
	v := block.Paths(filepath.Join(a.cfg.DataDir, "ephemeral"), taskID)
	if !v.Exists() && !v.Mounted() {
		return
	}
	if err := v.Remove(); err != nil {
		a.log.Warn("remove a task's ephemeral storage", "task", taskID, "err", err)
	}
}

// ephemeralUse is what the task holds against its ephemeral storage:
// its containers' writable layers and its scratch file system's use.
func (r *runner) ephemeralUse(ctx context.Context) (int64, error) {
	var total int64
	for _, id := range r.ids {
		info, _, err := r.a.docker.ContainerInspectWithRaw(ctx, id, true)
		if err != nil {
			return 0, err
		}
		if info.SizeRw != nil {
			total += *info.SizeRw
		}
	}
	if v := r.scratch(); v.Mounted() {
		var st unix.Statfs_t
		if err := unix.Statfs(v.MountPoint, &st); err == nil {
			total += int64(st.Blocks-st.Bfree) * st.Bsize
		}
	}
	return total, nil
}

// overEphemeral reports, with the stop reason, whether the task holds
// more than its ephemeral storage.
func (r *runner) overEphemeral(ctx context.Context) (bool, string) {
	limit := r.ephemeralBytes()
	if limit == 0 {
		return false, ""
	}
	used, err := r.ephemeralUse(ctx)
	if err != nil || used <= limit {
		return false, ""
	}
	return true, fmt.Sprintf("Ephemeral storage exceeded: the task's writable layers and volumes hold %s, over its %s", units.BytesSize(float64(used)), r.ephemeralSize())
}

func (r *runner) ephemeralSize() string { return units.BytesSize(float64(r.ephemeralBytes())) }
