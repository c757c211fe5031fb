package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/volume/block"
)

// volumeWork tracks block-volume operations in progress, so a poll that
// repeats them does not start them twice.
type volumeWork struct {
	mu   sync.Mutex
	busy map[string]bool
}

func (w *volumeWork) start(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy == nil {
		w.busy = map[string]bool{}
	}
	if w.busy[id] {
		return false
	}
	w.busy[id] = true
	return true
}

func (w *volumeWork) done(id string) {
	w.mu.Lock()
	delete(w.busy, id)
	w.mu.Unlock()
}

// imageLocks serialises work on one volume's image. Making it: the poll
// that creates a volume and a task placed on it may both reach it first,
// and the second must wait for the first's image, not start its own or use
// a half-made one. Reading it for a snapshot: the image must not be
// mounted, unmounted or written by a task starting on it until it is read.
type imageLocks struct {
	mu    sync.Mutex
	locks map[string]*imageLock
}

type imageLock struct {
	sync.Mutex
	users int
}

func (l *imageLocks) lock(id string) (unlock func()) {
	il := l.get(id)
	il.Lock()
	return func() { il.Unlock(); l.put(id, il) }
}

// tryLock is lock for a caller that must not wait.
func (l *imageLocks) tryLock(id string) (unlock func(), ok bool) {
	il := l.get(id)
	if !il.TryLock() {
		l.put(id, il)
		return nil, false
	}
	return func() { il.Unlock(); l.put(id, il) }, true
}

func (l *imageLocks) get(id string) *imageLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks == nil {
		l.locks = map[string]*imageLock{}
	}
	il := l.locks[id]
	if il == nil {
		il = &imageLock{}
		l.locks[id] = il
	}
	il.users++
	return il
}

func (l *imageLocks) put(id string, il *imageLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if il.users--; il.users == 0 {
		delete(l.locks, id)
	}
}

func (a *Agent) volumePaths(id string) block.Volume { return block.Paths(a.cfg.DataDir, id) }

// ensureVolume creates the volume's image on first use: empty and formatted,
// or restored from its snapshot.
func (a *Agent) ensureVolume(ctx context.Context, v *agentapi.Volume) error {
	defer a.images.lock(v.VolumeID)()
	p := a.volumePaths(v.VolumeID)
	if p.Exists() {
		return nil
	}
	if v.Initialized {
		return fmt.Errorf("volume %s should hold data on this instance, but its image %s is missing", v.VolumeID, p.Image)
	}
	size := int64(v.SizeInGiB) << 30
	if v.SnapshotID != "" {
		var out agentapi.SnapshotsResponse
		if err := a.api.Post(ctx, "/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{Cluster: a.cfg.Cluster, SnapshotIDs: []string{v.SnapshotID}}, &out); err != nil {
			return fmt.Errorf("snapshot %s: %w", v.SnapshotID, err)
		}
		start := time.Now()
		last := time.Now()
		var st block.Stats
		err := p.Provision(func(image string) (err error) {
			st, err = block.Restore(ctx, Blobs{a.api}, out.Snapshots[0].Manifest, image, size, func(done, total int64) {
				if time.Since(last) > time.Second && total > 0 {
					last = time.Now()
					progress := fmt.Sprintf("restoring from %s: %d%% (%d of %d MiB)", v.SnapshotID, 100*done/total, done>>20, total>>20)
					a.log.Info("restoring volume", "volume", v.VolumeID, "progress", progress)
					a.volumeEvent(ctx, v, "progress", progress, 0)
				}
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("restore %s from %s: %w", v.VolumeID, v.SnapshotID, err)
		}
		a.log.Info("volume restored", "volume", v.VolumeID, "snapshot", v.SnapshotID, "chunks", st.Chunks, "took", time.Since(start))
		return nil
	}
	return p.Provision(func(image string) error {
		img := block.Volume{Image: image}
		if err := img.Create(size); err != nil {
			return err
		}
		return img.Format(v.FilesystemType)
	})
}

// volumeEvent reports a volume's progress; a report that fails is logged
// (the volume's state on the server then stays as it was, and the next
// poll hands the work over again).
func (a *Agent) volumeEvent(ctx context.Context, v *agentapi.Volume, event, reason string, epoch int64) error {
	err := a.api.Post(ctx, "/berth/v1/agent/volume-event", &agentapi.VolumeEventRequest{Cluster: a.cfg.Cluster, ContainerInstance: a.arn,
		VolumeID: v.VolumeID, Event: event, Reason: reason, Epoch: epoch}, nil)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("volume report failed", "volume", v.VolumeID, "event", event, "err", err)
	}
	return err
}

// attachBlockVolumes prepares and mounts the task's block volumes, checking
// that each attachment is the task's and current (fencing).
func (r *runner) attachBlockVolumes(ctx context.Context, mounts map[string]mount.Mount) error {
	if len(r.blockVols) > 0 && r.a.fenced.Load() {
		return &taskFailure{code: "TaskFailedToStart", reason: "CannotAttachVolumeError: the container instance has not renewed its lease"}
	}
	r.limits = container.Resources{}
	for _, bv := range r.blockVols {
		var v *agentapi.Volume
		for i := range r.volumes {
			if r.volumes[i].VolumeID == bv.VolumeID {
				v = &r.volumes[i]
			}
		}
		if v == nil || v.CheckEpoch(r.arn, bv.Epoch) != nil {
			return &taskFailure{code: "TaskFailedToStart", reason: fmt.Sprintf("CannotAttachVolumeError: volume %s is not attached to this task (stale attachment epoch %d)", bv.VolumeID, bv.Epoch)}
		}
		if err := r.a.ensureVolume(ctx, v); err != nil {
			r.a.volumeEvent(ctx, v, "error", err.Error(), bv.Epoch)
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotCreateVolumeError: " + err.Error()}
		}
		p := r.a.volumePaths(v.VolumeID)
		unlock := r.a.images.lock(v.VolumeID)
		dev, err := p.Mount(v.FilesystemType)
		unlock()
		if err != nil {
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotAttachVolumeError: " + err.Error()}
		}
		r.limitIO(dev, v)
		if err := r.a.volumeEvent(ctx, v, "created", "", bv.Epoch); err != nil {
			unlock := r.a.images.lock(v.VolumeID)
			p.Unmount()
			unlock()
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotAttachVolumeError: " + err.Error()}
		}
		mounts[bv.Name] = mount.Mount{Type: mount.TypeBind, Source: p.MountPoint}
	}
	return nil
}

// thawVolumes resumes writes to block volumes a snapshot of an earlier
// run of the agent froze and did not thaw: the agent died in between.
func (a *Agent) thawVolumes() {
	entries, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "mounts"))
	for _, e := range entries {
		if thawed, err := a.volumePaths(e.Name()).ThawIfFrozen(); err != nil {
			a.log.Warn("thaw block volume", "volume", e.Name(), "err", err)
		} else if thawed {
			a.log.Info("resumed writes to a block volume left frozen by an interrupted snapshot", "volume", e.Name())
		}
	}
}

// limitIO limits the containers' I/O to the volume's loop device to its
// provisioned IOPS and throughput, as EBS does: reads and writes each (the
// kernel's throttle counts them apart), large requests counting as several
// operations.
func (r *runner) limitIO(dev string, v *agentapi.Volume) {
	l := &r.limits
	if v.Iops > 0 {
		l.BlkioDeviceReadIOps = append(l.BlkioDeviceReadIOps, &blkiodev.ThrottleDevice{Path: dev, Rate: uint64(v.Iops)})
		l.BlkioDeviceWriteIOps = append(l.BlkioDeviceWriteIOps, &blkiodev.ThrottleDevice{Path: dev, Rate: uint64(v.Iops)})
	}
	if v.Throughput > 0 {
		bps := uint64(v.Throughput) << 20
		l.BlkioDeviceReadBps = append(l.BlkioDeviceReadBps, &blkiodev.ThrottleDevice{Path: dev, Rate: bps})
		l.BlkioDeviceWriteBps = append(l.BlkioDeviceWriteBps, &blkiodev.ThrottleDevice{Path: dev, Rate: bps})
	}
}

// unmountStale unmounts block volumes that no live task of this agent uses
// (their task was stopped while the agent was away).
func (a *Agent) unmountStale(live map[string]bool) {
	entries, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "mounts"))
	for _, e := range entries {
		id := e.Name()
		if live[id] || !a.volumePaths(id).Mounted() {
			continue
		}
		unlock, ok := a.images.tryLock(id)
		if !ok {
			continue // being made, deleted or read for a snapshot; the next poll will see
		}
		a.log.Info("unmounting a block volume no task uses", "volume", id)
		if err := a.volumePaths(id).Unmount(); err != nil {
			a.log.Warn("unmount stale volume", "volume", id, "err", err)
		}
		unlock()
	}
}

// detachBlockVolumes unmounts the task's block volumes (idempotent).
func (r *runner) detachBlockVolumes() {
	for _, bv := range r.blockVols {
		unlock := r.a.images.lock(bv.VolumeID)
		if err := r.a.volumePaths(bv.VolumeID).Unmount(); err != nil {
			r.a.log.Warn("unmount block volume", "volume", bv.VolumeID, "err", err)
		}
		unlock()
	}
}

// volumeOps creates and deletes the block volumes this instance holds that
// no task is using, and takes pending snapshots.
func (a *Agent) volumeOps(ctx context.Context, out *agentapi.TasksResponse) {
	for _, v := range out.Volumes {
		v := v
		if !a.work.start(v.VolumeID) {
			continue
		}
		go func() {
			defer a.work.done(v.VolumeID)
			switch v.State {
			case "creating":
				if err := a.ensureVolume(ctx, &v); err != nil {
					a.volumeEvent(ctx, &v, "error", err.Error(), 0)
					return
				}
				a.volumeEvent(ctx, &v, "created", "", 0)
			case "deleting":
				unlock := a.images.lock(v.VolumeID)
				err := a.volumePaths(v.VolumeID).Remove()
				unlock()
				if err != nil {
					a.log.Warn("delete volume", "volume", v.VolumeID, "err", err)
					return
				}
				a.volumeEvent(ctx, &v, "deleted", "", 0)
			}
		}()
	}
	for _, sn := range out.Snapshots {
		sn := sn
		if !a.work.start(sn.SnapshotID) {
			continue
		}
		go func() {
			defer a.work.done(sn.SnapshotID)
			req := &agentapi.SnapshotDoneRequest{Cluster: a.cfg.Cluster, SnapshotID: sn.SnapshotID}
			var prev *block.Manifest
			if sn.PreviousManifest != "" {
				// Without it the snapshot is still whole, only slower.
				m, err := block.ReadManifest(ctx, Blobs{a.api}, sn.PreviousManifest)
				if err != nil {
					a.log.Warn("previous snapshot's manifest", "snapshot", sn.SnapshotID, "err", err)
				}
				prev = m
			}
			p := a.volumePaths(sn.VolumeID)
			// The image stays as it is (mounted or not) until it is read.
			release := sync.OnceFunc(a.images.lock(sn.VolumeID))
			defer release()
			if !p.Exists() {
				req.Error = "the volume has no data on its instance yet"
			} else {
				// Crash-consistent: writes are suspended while the image is read.
				start := time.Now()
				var frozen time.Duration
				key, st, err := block.Snapshot(ctx, p.Image, Blobs{a.api}, prev, p.Freeze, func() error {
					frozen = time.Since(start)
					defer release()
					return p.Thaw()
				})
				if err != nil {
					req.Error = err.Error()
				} else {
					req.Manifest, req.UploadedBytes = key, st.UploadedBytes
					a.log.Info("snapshot taken", "snapshot", sn.SnapshotID, "volume", sn.VolumeID, "uploadedMiB", st.UploadedBytes>>20,
						"writesSuspended", frozen, "took", time.Since(start))
				}
			}
			if err := a.api.Post(ctx, "/berth/v1/agent/snapshot-done", req, nil); err != nil {
				// The snapshot stays pending on the server, which hands it
				// over again on a later poll.
				a.log.Warn("snapshot report failed", "snapshot", sn.SnapshotID, "err", err)
			}
		}()
	}
}
