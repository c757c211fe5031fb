package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// AgentTasks is Berth's agent endpoint: the desired state of one instance,
// long-polled.
func (a *API) AgentTasks(ctx context.Context, r *agentapi.TasksRequest) (*agentapi.TasksResponse, error) {
	cluster, id, err := a.clusterInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	resp, changed, err := a.instanceTasks(ctx, cluster, id, r.AfterRevision)
	if err != nil {
		return nil, err
	}
	if r.AfterRevision > 0 && !changed {
		// Watch from the revision just read: a watch that starts at the
		// current revision is delivered at once, where one that starts in
		// the past waits for etcd's catch-up loop.
		wait := time.Duration(min(max(r.WaitSeconds, 0), 60)) * time.Second
		wctx, cancel := context.WithTimeout(ctx, wait)
		ch := a.Store.Client.Watch(clientv3.WithRequireLeader(wctx), state.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	wait:
		for wr := range ch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if concernsInstance(cluster, id, string(ev.Kv.Key), ev.Kv.Value) {
					break wait
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if resp, _, err = a.instanceTasks(ctx, cluster, id, 0); err != nil {
			return nil, err
		}
	}
	out := &agentapi.TasksResponse{Tasks: []agentapi.Task{}}
	defs := map[string]*spec.TaskDefinition{}
	out.Revision = resp.Header.Revision
	vols := map[string]agentapi.Volume{}
	latest := map[string]agentapi.Snapshot{}
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		switch {
		case strings.HasPrefix(key, state.VolumePrefix(cluster)):
			v := agentapi.Volume{}
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				return nil, fmt.Errorf("decode %s: %w", key, err)
			}
			if v.InstanceID == id {
				vols[v.VolumeID] = v
				if (v.State == "creating" && v.Attachment == nil) || v.State == "deleting" {
					out.Volumes = append(out.Volumes, v)
				}
			}
		case strings.HasPrefix(key, state.SnapshotPrefix(cluster)):
			sn := agentapi.Snapshot{}
			if err := json.Unmarshal(kv.Value, &sn); err != nil {
				return nil, fmt.Errorf("decode %s: %w", key, err)
			}
			if sn.InstanceID == id && sn.State == "pending" {
				out.Snapshots = append(out.Snapshots, sn)
			}
			if l, ok := latest[sn.VolumeID]; sn.State == "completed" && sn.Manifest != "" && (!ok || sn.CreatedAt.After(l.CreatedAt.Time)) {
				latest[sn.VolumeID] = sn
			}
		}
	}
	// A new snapshot need not send again what the volume's latest completed
	// one holds: chunks are not collected while a snapshot is pending.
	for i := range out.Snapshots {
		out.Snapshots[i].PreviousManifest = latest[out.Snapshots[i].VolumeID].Manifest
	}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), state.TaskPrefix(cluster)) {
			continue
		}
		t := &state.TaskRecord{}
		if err := json.Unmarshal(kv.Value, t); err != nil {
			return nil, err
		}
		if t.InstanceID != id || spec.Val(t.LastStatus) == "STOPPED" {
			continue
		}
		arn := spec.Val(t.TaskDefinitionArn)
		td, ok := defs[arn]
		if !ok {
			rec, _, err := a.loadTaskDef(ctx, arn)
			if err != nil {
				return nil, err
			}
			td = &rec.TaskDefinition
			defs[arn] = td
		}
		at := agentapi.Task{Task: t.Task, TaskDefinition: *td, BlockVolumes: t.BlockVolumes}
		for _, bv := range t.BlockVolumes {
			if v, ok := vols[bv.VolumeID]; ok {
				at.Volumes = append(at.Volumes, v)
			}
		}
		out.Tasks = append(out.Tasks, at)
	}
	return out, nil
}

// instanceTasks reads the cluster's tasks, volumes and snapshots at one
// revision and reports whether any of the instance's changed after rev.
func (a *API) instanceTasks(ctx context.Context, cluster, id string, rev int64) (*clientv3.GetResponse, bool, error) {
	resp, err := a.Store.Client.Get(ctx, state.TaskPrefix(cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, false, err
	}
	for _, p := range []string{state.VolumePrefix(cluster), state.SnapshotPrefix(cluster)} {
		more, err := a.Store.Client.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
		if err != nil {
			return nil, false, err
		}
		resp.Kvs = append(resp.Kvs, more.Kvs...)
	}
	changed := false
	for _, kv := range resp.Kvs {
		if kv.ModRevision > rev && concernsInstance(cluster, id, string(kv.Key), kv.Value) {
			changed = true
			break
		}
	}
	return resp, changed, nil
}

// concernsInstance reports whether a key's change matters to an instance's agent.
func concernsInstance(cluster, id, key string, val []byte) bool {
	var rec struct {
		Task     string `json:"berthInstanceId"`
		Volume   string `json:"containerInstanceId"`
		Attached *struct {
			InstanceID string `json:"instanceId"`
		} `json:"attachment"`
	}
	switch {
	case strings.HasPrefix(key, state.TaskPrefix(cluster)):
		return val == nil || (json.Unmarshal(val, &rec) == nil && rec.Task == id)
	case strings.HasPrefix(key, state.VolumePrefix(cluster)), strings.HasPrefix(key, state.SnapshotPrefix(cluster)):
		return val == nil || (json.Unmarshal(val, &rec) == nil && rec.Volume == id)
	}
	return false
}

// ReportResidency records that this instance holds the data keys not yet
// claimed by another; a key claimed elsewhere is left as it is and its
// holder returned, so the agent can tell.
func (a *API) ReportResidency(ctx context.Context, r *agentapi.ResidencyRequest) (*agentapi.ResidencyResponse, error) {
	cluster, id, err := a.clusterInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	out := &agentapi.ResidencyResponse{Holders: map[string]string{}}
	for _, k := range r.Keys {
		key := state.ResidencyKey(cluster, k)
		resp, err := a.Store.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, id)).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			out.Holders[k] = id
		} else if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			out.Holders[k] = string(kvs[0].Value)
		}
	}
	return out, nil
}

// agentOwns checks that an instance exists and, for a request made with an
// agent's access key, that this key registered it: an agent acts only for
// its own instance (its tasks, volumes, snapshots, lease and mounts).
// Every agent endpoint and agent ECS call passes through it.
func (a *API) agentOwns(ctx context.Context, cluster, id string) error {
	ir := &state.InstanceRecord{}
	if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, id), ir); isNotFound(err) {
		return spec.InvalidParam("Container instance '%s' is not registered in cluster '%s'.", id, cluster)
	} else if err != nil {
		return err
	}
	if k := AgentKeyOf(ctx); k != "" && k != ir.AgentKey {
		return errNotOwner(id)
	}
	return nil
}

// agentMayAct checks, for a request made with an agent's key, that the key
// registered the instance; an operator may act for any instance, or none.
func (a *API) agentMayAct(ctx context.Context, cluster, id string) error {
	if AgentKeyOf(ctx) == "" {
		return nil
	}
	if err := a.agentOwns(ctx, cluster, id); err != nil {
		var se *spec.Error
		if errors.As(err, &se) && se.Code == "InvalidParameterException" {
			return errNotOwner(id) // an instance gone is no one's to act for
		}
		return err
	}
	return nil
}

func errNotOwner(id string) error {
	return &spec.Error{Code: "AccessDeniedException", Message: "Only the agent that registered container instance " + id + " may act for it."}
}

// agentMayRestore lets an agent's key describe only the snapshots that
// volumes being made on its own instances restore from.
func (a *API) agentMayRestore(ctx context.Context, cluster string, snapshots []string) error {
	key := AgentKeyOf(ctx)
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
			mine = a.agentOwns(ctx, cluster, v.InstanceID) == nil
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

// joinedKey is the record of the joined agent's key a request was made
// with, or nil for an operator's key or a static agent key.
func (a *API) joinedKey(ctx context.Context) (*state.AgentKeyRecord, int64, error) {
	k := AgentKeyOf(ctx)
	if k == "" {
		return nil, 0, nil
	}
	rec := &state.AgentKeyRecord{}
	rev, err := a.Store.Get(ctx, state.AgentKeyKey(k), rec)
	if isNotFound(err) {
		return nil, 0, nil
	}
	return rec, rev, err
}
