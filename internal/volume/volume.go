// Package volume serves Berth's block-volume and snapshot API (JSON on
// /berth/v1/volumes/ and /berth/v1/snapshots/; AWS's EC2 API is out of
// scope) and the agent reports that move a volume or snapshot along its
// lifecycle. Volumes are created and attached in placement transactions
// (placement.BlockVolume); the data lives on the holding instance, made
// and snapshotted there by package volume/block.
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/agentauth"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Resolver resolves clusters and instances as the ECS API does; ecs.API
// is one.
type Resolver interface {
	ResolveCluster(ctx context.Context, ref string) (string, error)
	// ResolveInstance also checks that the caller may act for the instance.
	ResolveInstance(ctx context.Context, clusterRef, ref string) (cluster, id string, err error)
}

// API serves the volume and snapshot endpoints.
type API struct {
	Store    *state.Store
	Cache    *state.Cache
	Applier  *placement.Applier
	Resolver Resolver
	Now      func() time.Time
}

// Berth's own block-volume API (AWS's EC2 API is out of scope): JSON
// requests on /berth/v1/volumes/* and /berth/v1/snapshots/*.

// CreateVolume validates fully, chooses an instance in the zone to hold the
// data, and records the volume; that instance's agent creates it.
func (a *API) CreateVolume(ctx context.Context, r *agentapi.CreateVolumeRequest) (*agentapi.VolumesResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	if r.Zone == "" {
		return nil, spec.InvalidParam("availabilityZone is required.")
	}
	var snap *spec.SnapshotInfo
	if r.SnapshotID != "" {
		rec := &agentapi.Snapshot{}
		if _, err := a.Store.Get(ctx, state.SnapshotKey(cluster, r.SnapshotID), rec); err == nil && rec.State == "completed" {
			snap = &spec.SnapshotInfo{SizeInGiB: rec.SizeInGiB, FilesystemType: rec.FilesystemType}
		} else if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	cfg := &spec.TaskManagedEBSVolumeConfiguration{SizeInGiB: r.SizeInGiB, VolumeType: strPtr(r.VolumeType), Iops: r.Iops, Throughput: r.Throughput,
		FilesystemType: strPtr(r.FilesystemType), SnapshotId: strPtr(r.SnapshotID), RoleArn: spec.Str("berth"),
		TerminationPolicy: &spec.TaskManagedEBSVolumeTerminationPolicy{DeleteOnTermination: spec.Bool(false)}}
	if len(r.Tags) > 0 {
		cfg.TagSpecifications = []spec.EBSTagSpecification{{ResourceType: spec.Str("volume"), Tags: r.Tags}}
	}
	m, verr := spec.ValidateManagedEBS("volume", cfg, snap)
	if verr != nil {
		return nil, verr
	}
	// The instance in the zone holding the fewest volumes keeps the data.
	count := map[string]int{}
	err = a.Store.Range(ctx, state.VolumePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		v := agentapi.Volume{}
		if json.Unmarshal(val, &v) == nil {
			count[v.InstanceID]++
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ci := range a.Cache.Instances(cluster) {
		if spec.Val(ci.Record.Status) != "ACTIVE" || !a.Cache.Connected(cluster, ci.Record.ID) {
			continue
		}
		for _, at := range ci.Record.Attributes {
			if spec.Val(at.Name) == "ecs.availability-zone" && spec.Val(at.Value) == r.Zone {
				ids = append(ids, ci.Record.ID)
			}
		}
	}
	if len(ids) == 0 {
		return nil, spec.InvalidParam("There are no connected container instances in availability zone '%s'.", r.Zone)
	}
	sort.Slice(ids, func(i, j int) bool {
		return count[ids[i]] < count[ids[j]] || (count[ids[i]] == count[ids[j]] && ids[i] < ids[j])
	})
	v := &agentapi.Volume{VolumeID: spec.VolumeID(newID()), Cluster: cluster, Zone: r.Zone, SizeInGiB: m.SizeInGiB, VolumeType: m.VolumeType,
		Iops: m.Iops, Throughput: m.Throughput, FilesystemType: m.FilesystemType, State: "creating", InstanceID: ids[0],
		SnapshotID: m.SnapshotID, Tags: m.Tags, CreatedAt: spec.TS(a.Now())}
	key := state.VolumeKey(cluster, v.VolumeID)
	resp, err := a.Store.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(
		clientv3.OpPut(key, state.Marshal(v)),
		clientv3.OpPut(state.ResidencyKey(cluster, "block-volume/"+v.VolumeID), v.InstanceID),
	).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, spec.Exception("ServerException", "Volume id collision; try again.")
	}
	return &agentapi.VolumesResponse{Volumes: []agentapi.Volume{*v}}, nil
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// DescribeVolumes lists volumes.
func (a *API) DescribeVolumes(ctx context.Context, r *agentapi.VolumesRequest) (*agentapi.VolumesResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	out := &agentapi.VolumesResponse{Volumes: []agentapi.Volume{}}
	if len(r.VolumeIDs) > 0 {
		for _, id := range r.VolumeIDs {
			v := agentapi.Volume{}
			if _, err := a.Store.Get(ctx, state.VolumeKey(cluster, id), &v); isNotFound(err) {
				return nil, spec.InvalidParam("The volume '%s' does not exist.", id)
			} else if err != nil {
				return nil, err
			}
			a.markImpaired(ctx, cluster, &v)
			out.Volumes = append(out.Volumes, v)
		}
		return out, nil
	}
	err = a.Store.Range(ctx, state.VolumePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		v := agentapi.Volume{}
		if err := json.Unmarshal(val, &v); err != nil {
			return false, err
		}
		out.Volumes = append(out.Volumes, v)
		return true, nil
	})
	for i := range out.Volumes {
		a.markImpaired(ctx, cluster, &out.Volumes[i])
	}
	return out, err
}

// markImpaired shows a volume whose data lives on an instance that is
// gone or disconnected as impaired, with the reason; its data can be moved
// only by restoring a snapshot elsewhere, explicitly.
func (a *API) markImpaired(ctx context.Context, cluster string, v *agentapi.Volume) {
	if v.State != "available" && v.State != "in-use" && v.State != "creating" {
		return
	}
	if _, ok := a.Cache.Instance(cluster, v.InstanceID); !ok {
		v.State, v.StateReason = "impaired", "The container instance "+v.InstanceID+" that holds the volume's data is deregistered; restore a snapshot elsewhere."
	} else if !a.Cache.Connected(cluster, v.InstanceID) {
		v.State, v.StateReason = "impaired", "The container instance "+v.InstanceID+" that holds the volume's data is not connected."
	}
}

// DeleteVolume deletes a detached volume (its agent removes the data).
func (a *API) DeleteVolume(ctx context.Context, r *agentapi.VolumesRequest) (*agentapi.VolumesResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	if len(r.VolumeIDs) != 1 {
		return nil, spec.InvalidParam("Name exactly one volume to delete.")
	}
	v, err := state.Update(ctx, a.Store, state.VolumeKey(cluster, r.VolumeIDs[0]), func(v *agentapi.Volume) error {
		if v.Attachment != nil {
			return spec.Exception("VolumeInUse", "The volume '%s' is attached to task %s.", v.VolumeID, v.Attachment.TaskArn)
		}
		v.State = "deleting"
		return nil
	})
	if isNotFound(err) {
		return nil, spec.InvalidParam("The volume '%s' does not exist.", r.VolumeIDs[0])
	} else if err != nil {
		return nil, err
	}
	return &agentapi.VolumesResponse{Volumes: []agentapi.Volume{*v}}, nil
}

// CreateSnapshot asks the agent holding a volume to snapshot it.
func (a *API) CreateSnapshot(ctx context.Context, r *agentapi.SnapshotsRequest) (*agentapi.SnapshotsResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	v := agentapi.Volume{}
	if _, err := a.Store.Get(ctx, state.VolumeKey(cluster, r.VolumeID), &v); isNotFound(err) {
		return nil, spec.InvalidParam("The volume '%s' does not exist.", r.VolumeID)
	} else if err != nil {
		return nil, err
	}
	if v.State == "deleting" || v.State == "error" {
		return nil, spec.InvalidParam("The volume '%s' is %s.", v.VolumeID, v.State)
	}
	sn := &agentapi.Snapshot{SnapshotID: spec.SnapshotID(newID()), Cluster: cluster, VolumeID: v.VolumeID, InstanceID: v.InstanceID,
		SizeInGiB: v.SizeInGiB, FilesystemType: v.FilesystemType, State: "pending", CreatedAt: spec.TS(a.Now())}
	if err := a.Store.Create(ctx, state.SnapshotKey(cluster, sn.SnapshotID), sn); err != nil {
		return nil, err
	}
	return &agentapi.SnapshotsResponse{Snapshots: []agentapi.Snapshot{*sn}}, nil
}

// DescribeSnapshots lists snapshots.
func (a *API) DescribeSnapshots(ctx context.Context, r *agentapi.SnapshotsRequest) (*agentapi.SnapshotsResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	out := &agentapi.SnapshotsResponse{Snapshots: []agentapi.Snapshot{}}
	want := map[string]bool{}
	for _, id := range r.SnapshotIDs {
		want[id] = true
	}
	if err := a.agentMayRestore(ctx, cluster, r.SnapshotIDs); err != nil {
		return nil, err
	}
	err = a.Store.Range(ctx, state.SnapshotPrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		sn := agentapi.Snapshot{}
		if err := json.Unmarshal(val, &sn); err != nil {
			return false, err
		}
		if len(want) == 0 || want[sn.SnapshotID] {
			out.Snapshots = append(out.Snapshots, sn)
		}
		return true, nil
	})
	if err == nil && len(want) > 0 && len(out.Snapshots) != len(want) {
		return nil, spec.InvalidParam("A snapshot named does not exist.")
	}
	return out, err
}

// DeleteSnapshot forgets a snapshot; chunks stay for the snapshots that
// share them (chunks no snapshot references are collected by fsck later).
func (a *API) DeleteSnapshot(ctx context.Context, r *agentapi.SnapshotsRequest) (*agentapi.SnapshotsResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	if len(r.SnapshotIDs) != 1 {
		return nil, spec.InvalidParam("Name exactly one snapshot to delete.")
	}
	sn := agentapi.Snapshot{}
	key := state.SnapshotKey(cluster, r.SnapshotIDs[0])
	if _, err := a.Store.Get(ctx, key, &sn); isNotFound(err) {
		return nil, spec.InvalidParam("The snapshot '%s' does not exist.", r.SnapshotIDs[0])
	} else if err != nil {
		return nil, err
	}
	if _, err := a.Store.Client.Delete(ctx, key); err != nil {
		return nil, err
	}
	sn.State = "deleted"
	return &agentapi.SnapshotsResponse{Snapshots: []agentapi.Snapshot{sn}}, nil
}

// VolumeEvent records an agent's report about a volume.
func (a *API) VolumeEvent(ctx context.Context, r *agentapi.VolumeEventRequest) (*agentapi.VolumesResponse, error) {
	cluster, id, err := a.Resolver.ResolveInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	key := state.VolumeKey(cluster, r.VolumeID)
	if r.Event == "deleted" {
		v := agentapi.Volume{}
		rev, err := a.Store.Get(ctx, key, &v)
		if isNotFound(err) {
			return &agentapi.VolumesResponse{}, nil
		} else if err != nil {
			return nil, err
		}
		if v.InstanceID != id || v.State != "deleting" {
			return nil, spec.InvalidParam("The volume '%s' is not being deleted on this instance.", r.VolumeID)
		}
		_, err = a.Store.Client.Txn(ctx).If(modRevIs(key, rev)).Then(clientv3.OpDelete(key),
			clientv3.OpDelete(state.ResidencyKey(cluster, "block-volume/"+r.VolumeID))).Commit()
		return &agentapi.VolumesResponse{}, err
	}
	v, err := state.Update(ctx, a.Store, key, func(v *agentapi.Volume) error {
		if v.InstanceID != id {
			return spec.InvalidParam("The volume '%s' is not held by this instance.", r.VolumeID)
		}
		if err := v.CheckEpoch("", r.Epoch); err != nil {
			return spec.Exception("StaleAttachmentException", "%s", err.Error())
		}
		switch r.Event {
		case "created":
			v.Initialized = true
			v.StateReason = ""
			if v.State == "creating" {
				v.State = "available"
			}
			if v.Attachment != nil {
				v.State = "in-use"
				v.Attachment.Status = "ATTACHED"
			}
		case "error":
			v.State, v.StateReason = "error", r.Reason
		case "progress":
			if v.State == "creating" || v.State == "in-use" {
				v.StateReason = r.Reason
			}
		default:
			return spec.InvalidParam("Unknown volume event '%s'.", r.Event)
		}
		return nil
	})
	if isNotFound(err) {
		return nil, spec.InvalidParam("The volume '%s' does not exist.", r.VolumeID)
	} else if err != nil {
		return nil, err
	}
	if r.Event == "created" && v.Attachment != nil {
		taskID := v.Attachment.TaskArn[strings.LastIndex(v.Attachment.TaskArn, "/")+1:]
		_, err := state.Update(ctx, a.Store, state.TaskKey(cluster, taskID), func(t *state.TaskRecord) error {
			for i := range t.Attachments {
				for _, d := range t.Attachments[i].Details {
					if spec.Val(d.Name) == "volumeId" && spec.Val(d.Value) == v.VolumeID && spec.Val(t.Attachments[i].Status) == "ATTACHING" {
						t.Attachments[i].Status = spec.Str("ATTACHED")
					}
				}
			}
			return nil
		})
		if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	return &agentapi.VolumesResponse{Volumes: []agentapi.Volume{*v}}, nil
}

// SnapshotDone completes (or fails) a pending snapshot.
func (a *API) SnapshotDone(ctx context.Context, r *agentapi.SnapshotDoneRequest) (*agentapi.SnapshotsResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	sn, err := state.Update(ctx, a.Store, state.SnapshotKey(cluster, r.SnapshotID), func(sn *agentapi.Snapshot) error {
		if err := agentauth.MayAct(ctx, a.Store, cluster, sn.InstanceID); err != nil {
			return err
		}
		if sn.State != "pending" {
			return spec.InvalidParam("The snapshot '%s' is %s.", sn.SnapshotID, sn.State)
		}
		if r.Error != "" {
			sn.State, sn.StateReason = "error", r.Error
			return nil
		}
		sn.State, sn.Manifest, sn.UploadedBytes, sn.CompletedAt = "completed", r.Manifest, r.UploadedBytes, spec.TS(a.Now())
		return nil
	})
	if isNotFound(err) {
		return nil, spec.InvalidParam("The snapshot '%s' does not exist.", r.SnapshotID)
	} else if err != nil {
		return nil, err
	}
	if sn.State == "completed" {
		snapshotBytes.Add(float64(sn.UploadedBytes))
		if sn.CreatedAt != nil && sn.CompletedAt != nil {
			snapshotSeconds.Observe(sn.CompletedAt.Sub(sn.CreatedAt.Time).Seconds())
		}
	} else {
		snapshotErrors.Inc()
	}
	return &agentapi.SnapshotsResponse{Snapshots: []agentapi.Snapshot{*sn}}, nil
}

var (
	snapshotBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_snapshot_bytes_total",
		Help: "Bytes of chunks snapshots uploaded (only what changed since the volume's last snapshot)."})
	snapshotSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_snapshot_duration_seconds",
		Help: "Time from a snapshot's request to its completion.", Buckets: prometheus.ExponentialBuckets(0.25, 2, 14)})
	snapshotErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_snapshot_errors_total", Help: "Snapshots that failed."})
)

// Collectors are the volume API's metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{snapshotBytes, snapshotSeconds, snapshotErrors}
}

// DetachVolume releases a volume whose task's instance has lost its lease:
// the task is marked STOPPED and the attachment goes. While the instance
// still holds its lease the task must be stopped instead, so that its agent
// unmounts first.
func (a *API) DetachVolume(ctx context.Context, r *agentapi.VolumesRequest) (*agentapi.VolumesResponse, error) {
	cluster, err := a.Resolver.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	if len(r.VolumeIDs) != 1 {
		return nil, spec.InvalidParam("Name exactly one volume to detach.")
	}
	v := agentapi.Volume{}
	if _, err := a.Store.Get(ctx, state.VolumeKey(cluster, r.VolumeIDs[0]), &v); isNotFound(err) {
		return nil, spec.InvalidParam("The volume '%s' does not exist.", r.VolumeIDs[0])
	} else if err != nil {
		return nil, err
	}
	if v.Attachment == nil {
		return &agentapi.VolumesResponse{Volumes: []agentapi.Volume{v}}, nil
	}
	if connected, err := a.Store.Exists(ctx, state.ConnKey(cluster, v.Attachment.InstanceID)); err != nil {
		return nil, err
	} else if connected {
		return nil, spec.Exception("VolumeInUse", "The volume '%s' is attached to task %s on a connected instance; stop the task to detach it.", v.VolumeID, v.Attachment.TaskArn)
	}
	taskID := v.Attachment.TaskArn[strings.LastIndex(v.Attachment.TaskArn, "/")+1:]
	now := a.Now()
	if _, err := a.Applier.Transition(ctx, cluster, taskID, func(t *state.TaskRecord) (bool, error) {
		if spec.Val(t.LastStatus) == "STOPPED" {
			return false, nil
		}
		launch.MarkStopping(t, now, "TerminationNotice", "Block volume "+v.VolumeID+" was detached: the container instance lost its lease")
		launch.MarkStopped(t, now)
		return true, nil
	}); err != nil && !isNotFound(err) {
		return nil, err
	}
	after := agentapi.Volume{}
	if _, err := a.Store.Get(ctx, state.VolumeKey(cluster, v.VolumeID), &after); err != nil {
		return nil, err
	}
	return &agentapi.VolumesResponse{Volumes: []agentapi.Volume{after}}, nil
}

// agentMayRestore lets an agent's key describe only the snapshots that
// volumes being made on its own instances restore from.
func (a *API) agentMayRestore(ctx context.Context, cluster string, snapshots []string) error {
	key := agentauth.KeyOf(ctx)
	if key == "" {
		return nil
	}
	denied := &spec.Error{Code: "AccessDeniedException", Message: "An agent may describe only the snapshots its own volumes restore from."}
	if len(snapshots) == 0 {
		return denied
	}
	need := map[string]bool{}
	for _, id := range snapshots {
		need[id] = true
	}
	owners := map[string]bool{}
	err := a.Store.Range(ctx, state.VolumePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		v := agentapi.Volume{}
		if err := json.Unmarshal(val, &v); err != nil {
			return false, err
		}
		if !need[v.SnapshotID] {
			return true, nil
		}
		mine, seen := owners[v.InstanceID]
		if !seen {
			mine = agentauth.Owns(ctx, a.Store, cluster, v.InstanceID) == nil
			owners[v.InstanceID] = mine
		}
		if mine {
			delete(need, v.SnapshotID)
		}
		return len(need) > 0, nil
	})
	if err != nil {
		return err
	}
	if len(need) > 0 {
		return denied
	}
	return nil
}

// Snapshot starts a snapshot of a block volume, as CreateSnapshot (the
// service controller's scheduled snapshots).
func (a *API) Snapshot(ctx context.Context, cluster, volumeID string) error {
	_, err := a.CreateSnapshot(ctx, &agentapi.SnapshotsRequest{Cluster: cluster, VolumeID: volumeID})
	return err
}

func isNotFound(err error) bool { return errors.Is(err, state.ErrNotFound) }

func modRevIs(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
