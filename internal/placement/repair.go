package placement

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// RepairCounts makes every instance's running and pending task counters
// equal to what its unreleased task records say. Counters written by
// earlier versions drifted (a task that reported STOPPING before STOPPED
// left the running counter up); the server runs this at start. Each fix
// is one transaction guarded on the instance and on no task having
// changed since the read, so it never races a placement or a transition.
// A lost race reads again. It returns how many instances it corrected.
func RepairCounts(ctx context.Context, store *state.Store) (int, error) {
	total := 0
	for attempt := 0; attempt < maxAttempts; attempt++ {
		fixed, lost, err := repairCounts(ctx, store)
		total += fixed
		if err != nil || !lost {
			return total, err
		}
	}
	return total, fmt.Errorf("repair task counts: %w", state.ErrConflict)
}

func repairCounts(ctx context.Context, store *state.Store) (fixed int, lost bool, err error) {
	insts, err := store.Client.Get(ctx, state.InstancesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, false, fmt.Errorf("read instances: %w", err)
	}
	rev := insts.Header.Revision
	tasks, err := store.Client.Get(ctx, state.TasksPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, false, fmt.Errorf("read tasks: %w", err)
	}
	type counts struct{ running, pending int32 }
	want := map[string]*counts{}
	for _, kv := range tasks.Kvs {
		t := &state.TaskRecord{}
		if err := json.Unmarshal(kv.Value, t); err != nil {
			return 0, false, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if t.Released || t.InstanceID == "" || spec.Val(t.LastStatus) == "STOPPED" {
			continue
		}
		k := state.InstanceKey(t.Cluster, t.InstanceID)
		if want[k] == nil {
			want[k] = &counts{}
		}
		if CountsAsRunning(spec.Val(t.LastStatus)) {
			want[k].running++
		} else {
			want[k].pending++
		}
	}
	for _, kv := range insts.Kvs {
		rec := &state.InstanceRecord{}
		if err := json.Unmarshal(kv.Value, rec); err != nil {
			return fixed, false, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		w := want[string(kv.Key)]
		if w == nil {
			w = &counts{}
		}
		if spec.Val(rec.RunningTasksCount) == w.running && spec.Val(rec.PendingTasksCount) == w.pending {
			continue
		}
		rec.RunningTasksCount, rec.PendingTasksCount = spec.I32(w.running), spec.I32(w.pending)
		resp, err := store.Client.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
			clientv3.Compare(clientv3.ModRevision(state.TasksPrefix()), "<", rev+1).WithPrefix(),
		).Then(clientv3.OpPut(string(kv.Key), state.Marshal(rec))).Commit()
		if err != nil {
			return fixed, false, fmt.Errorf("repair %s: %w", kv.Key, err)
		}
		if resp.Succeeded {
			fixed++
		} else {
			lost = true
		}
	}
	return fixed, lost, nil
}
