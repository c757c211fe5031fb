// Package placement commits the scheduler's plans. It is the only writer of
// placements and of instance reservations: a plan becomes real in one etcd
// transaction that re-checks every instance it touches (mod revision equal
// to the snapshot's) and every data claim (still unclaimed), so two servers
// or two concurrent calls can never over-commit an instance or split one
// volume's data across two instances. A lost race re-plans on fresh state.
package placement

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Applier plans against the cache and commits through etcd.
type Applier struct {
	Store *state.Store
	Cache *state.Cache
	// Stopped, when set, is called once a transition to STOPPED has
	// committed, before Transition returns (the server ends the task's
	// shared file system sessions there).
	Stopped func(ctx context.Context, t *state.TaskRecord)

	mu    sync.Mutex
	rng   *rand.Rand
	locks sync.Map // cluster -> *sync.Mutex
}

// New returns an Applier; seed feeds the scheduler's randomness.
func New(store *state.Store, cache *state.Cache, seed int64) *Applier {
	return &Applier{Store: store, Cache: cache, rng: rand.New(rand.NewSource(seed))}
}

// Job is one RunTask/StartTask call to place.
type Job struct {
	Cluster    string
	ClusterRev int64 // create revision of the cluster key: guards against a deleted cluster
	Request    *scheduler.Request
	// Token, when set, records the placed task ids under the RunTask
	// clientToken in the same transaction.
	Token string
	// NewTask builds the record of the n-th task placed on inst.
	NewTask func(n int, inst *state.InstanceRecord) *state.TaskRecord
	// BlockVolumes are created or attached for each task placed, in the
	// placement's transaction.
	BlockVolumes []BlockVolume
	// Now is the time recorded on new volumes.
	Now time.Time
}

// ErrClusterGone means the cluster was deleted while placing.
var ErrClusterGone = errors.New("cluster deleted")

const maxAttempts = 30

// Run places the job and returns the committed tasks and the failures.
//
// Plans for one cluster are made and committed one at a time on this server
// (as Nomad's plan queue does), so concurrent calls do not all race for the
// instance a binpack strategy prefers; other servers are kept out by the
// transaction's guards.
func (a *Applier) Run(ctx context.Context, job *Job) ([]*state.TaskRecord, []scheduler.Failure, error) {
	tasks, fails, err := a.run(ctx, job)
	if err == nil {
		placed.Add(float64(len(tasks)))
		for _, f := range fails {
			failures.WithLabelValues(f.Reason).Inc()
		}
	}
	return tasks, fails, err
}

var (
	placed = prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_tasks_placed_total",
		Help: "Tasks placed on container instances (RunTask, StartTask, services)."})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_placement_failures_total",
		Help: "Placement failures, one per instance that could not take a task, by ECS's reason (RESOURCE:MEMORY, ATTRIBUTE, …)."}, []string{"reason"})
)

// Collectors are the placement's metrics.
func Collectors() []prometheus.Collector { return []prometheus.Collector{placed, failures} }

func (a *Applier) run(ctx context.Context, job *Job) ([]*state.TaskRecord, []scheduler.Failure, error) {
	l, _ := a.locks.LoadOrStore(job.Cluster, &sync.Mutex{})
	l.(*sync.Mutex).Lock()
	defer l.(*sync.Mutex).Unlock()
	synced := false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		snap := a.Cache.Snapshot(job.Cluster)
		a.mu.Lock()
		rng := rand.New(rand.NewSource(a.rng.Int63()))
		a.mu.Unlock()
		plan := scheduler.Place(snap, job.Request, rng)
		if len(plan.Failures) > 0 && !synced {
			// Failures are reported only from a view as fresh as etcd: the
			// cache may not yet hold a release committed by another server.
			synced = true
			if rev, err := a.Store.Rev(ctx); err != nil {
				return nil, nil, err
			} else if a.Cache.Rev() < rev {
				a.Cache.WaitRev(rev, 2*time.Second)
				attempt--
				continue
			}
		}
		if len(plan.Placements) == 0 {
			return nil, plan.Failures, nil
		}
		tasks, rev, ok, err := a.commit(ctx, job, snap, plan)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			a.Cache.WaitRev(rev, 2*time.Second)
			return tasks, plan.Failures, nil
		}
		// Lost a race: let the cache catch up with the winner, then re-plan.
		a.Cache.WaitRev(rev, 2*time.Second)
		if exists, err := a.Store.Exists(ctx, state.ClusterKey(job.Cluster)); err != nil {
			return nil, nil, err
		} else if !exists {
			return nil, nil, ErrClusterGone
		}
		time.Sleep(time.Duration(rng.Intn(1+attempt)) * time.Millisecond)
	}
	return nil, nil, fmt.Errorf("placement: %w after %d attempts", state.ErrConflict, maxAttempts)
}

func (a *Applier) commit(ctx context.Context, job *Job, snap *scheduler.Snapshot, plan *scheduler.Plan) ([]*state.TaskRecord, int64, bool, error) {
	revs := map[string]int64{}
	for _, in := range snap.Instances {
		revs[in.ID] = in.Rev
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(state.ClusterKey(job.Cluster)), "=", job.ClusterRev)}
	var ops []clientv3.Op
	records := map[string]*state.InstanceRecord{}
	var order []string
	var tasks []*state.TaskRecord
	for n, id := range plan.Placements {
		rec, ok := records[id]
		if !ok {
			ci, found := a.Cache.Instance(job.Cluster, id)
			if !found || ci.Rev != revs[id] {
				return nil, 0, false, nil // cache moved under us; re-plan
			}
			rec = cloneInstance(ci.Record)
			records[id] = rec
			order = append(order, id)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(state.InstanceKey(job.Cluster, id)), "=", ci.Rev))
		}
		t := job.NewTask(n, rec)
		Reserve(rec, t)
		tasks = append(tasks, t)
	}
	c, o := attachVolumes(job, tasks, records, job.Now)
	cmps, ops = append(cmps, c...), append(ops, o...)
	for _, t := range tasks {
		ops = append(ops, clientv3.OpPut(state.TaskKey(job.Cluster, t.ID), state.Marshal(t)))
	}
	for _, id := range order {
		ops = append(ops, clientv3.OpPut(state.InstanceKey(job.Cluster, id), state.Marshal(records[id])))
	}
	keys := make([]string, 0, len(plan.Claims))
	for k := range plan.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rk := state.ResidencyKey(job.Cluster, k)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(rk), "=", 0))
		ops = append(ops, clientv3.OpPut(rk, plan.Claims[k]))
	}
	for _, d := range job.Request.Data {
		if holder, ok := snap.Residency[d.Key]; ok {
			cmps = append(cmps, clientv3.Compare(clientv3.Value(state.ResidencyKey(job.Cluster, d.Key)), "=", holder))
		}
	}
	if job.Token != "" {
		ids := make([]string, len(tasks))
		for i, t := range tasks {
			ids[i] = t.ID
		}
		tk := state.TokenKey(job.Cluster, job.Token)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(tk), "=", 0))
		ops = append(ops, clientv3.OpPut(tk, state.Marshal(ids)))
	}
	resp, err := a.Store.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, 0, false, fmt.Errorf("commit placement: %w", err)
	}
	return tasks, resp.Header.Revision, resp.Succeeded, nil
}

func cloneInstance(r *state.InstanceRecord) *state.InstanceRecord {
	c := *r
	c.UsedPorts = append([]string(nil), r.UsedPorts...)
	c.Groups = make(map[string]int, len(r.Groups)+1)
	for k, v := range r.Groups {
		c.Groups[k] = v
	}
	c.RemainingResources = nil
	return &c
}

// Reserve charges t's reservation to rec (in memory).
func Reserve(rec *state.InstanceRecord, t *state.TaskRecord) {
	rec.CPU -= t.Reserved.CPU
	rec.Memory -= t.Reserved.Memory
	rec.UsedPorts = append(rec.UsedPorts, t.Reserved.Ports...)
	sort.Strings(rec.UsedPorts)
	if rec.Groups == nil {
		rec.Groups = map[string]int{}
	}
	rec.Groups[spec.Val(t.Group)]++
	rec.PendingTasksCount = spec.I32(spec.Val(rec.PendingTasksCount) + 1)
	SyncResources(rec)
}

// CountsAsRunning says in which of an instance's counters an unstopped
// task in this status is: running from RUNNING until STOPPED (a stopping
// task still runs), pending before. A task that skips RUNNING (stopped
// while pending) moves to the running counter when it passes it, so the
// counter it leaves at STOPPED is always the one it is in.
func CountsAsRunning(status string) bool {
	switch status {
	case "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING":
		return true
	}
	return false
}

// release returns t's reservation to rec (in memory).
func release(rec *state.InstanceRecord, t *state.TaskRecord, wasRunning bool) {
	rec.CPU += t.Reserved.CPU
	rec.Memory += t.Reserved.Memory
	for _, p := range t.Reserved.Ports {
		for i, u := range rec.UsedPorts {
			if u == p {
				rec.UsedPorts = append(rec.UsedPorts[:i], rec.UsedPorts[i+1:]...)
				break
			}
		}
	}
	g := spec.Val(t.Group)
	if rec.Groups[g]--; rec.Groups[g] <= 0 {
		delete(rec.Groups, g)
	}
	if wasRunning {
		rec.RunningTasksCount = spec.I32(max(0, spec.Val(rec.RunningTasksCount)-1))
	} else {
		rec.PendingTasksCount = spec.I32(max(0, spec.Val(rec.PendingTasksCount)-1))
	}
	SyncResources(rec)
}

// SyncResources rewrites rec.RemainingResources from its counters.
func SyncResources(rec *state.InstanceRecord) {
	tcp, udp := []string{}, []string{}
	for _, p := range rec.UsedPorts {
		port, proto, _ := strings.Cut(p, "/")
		if proto == "udp" {
			udp = append(udp, port)
		} else {
			tcp = append(tcp, port)
		}
	}
	rec.RemainingResources = []spec.Resource{
		{Name: spec.Str("CPU"), Type: spec.Str("INTEGER"), IntegerValue: spec.I32(int32(rec.CPU))},
		{Name: spec.Str("MEMORY"), Type: spec.Str("INTEGER"), IntegerValue: spec.I32(int32(rec.Memory))},
		{Name: spec.Str("PORTS"), Type: spec.Str("STRINGSET"), StringSetValue: tcp},
		{Name: spec.Str("PORTS_UDP"), Type: spec.Str("STRINGSET"), StringSetValue: udp},
	}
}

// Transition changes a task under a guard on both the task and its instance,
// releasing the reservation when the task reaches STOPPED. mutate returns
// false to abort without writing. It returns the task as written.
func (a *Applier) Transition(ctx context.Context, cluster, taskID string, mutate func(t *state.TaskRecord) (bool, error)) (*state.TaskRecord, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		t := &state.TaskRecord{}
		trev, err := a.Store.Get(ctx, state.TaskKey(cluster, taskID), t)
		if err != nil {
			return nil, err
		}
		wasRunning := CountsAsRunning(spec.Val(t.LastStatus))
		ok, err := mutate(t)
		if err != nil || !ok {
			return t, err
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.TaskKey(cluster, taskID)), "=", trev)}
		ops := []clientv3.Op{}
		if !t.Released && t.InstanceID != "" {
			rec := &state.InstanceRecord{}
			ikey := state.InstanceKey(cluster, t.InstanceID)
			irev, err := a.Store.Get(ctx, ikey, rec)
			switch {
			case errors.Is(err, state.ErrNotFound):
				if spec.Val(t.LastStatus) == "STOPPED" {
					t.Released = true
				}
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ikey), "=", 0))
			case err != nil:
				return nil, err
			default:
				changed := false
				if spec.Val(t.LastStatus) == "STOPPED" {
					release(rec, t, wasRunning)
					t.Released = true
					changed = true
				} else if !wasRunning && CountsAsRunning(spec.Val(t.LastStatus)) {
					rec.PendingTasksCount = spec.I32(max(0, spec.Val(rec.PendingTasksCount)-1))
					rec.RunningTasksCount = spec.I32(spec.Val(rec.RunningTasksCount) + 1)
					changed = true
				}
				if changed {
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(ikey), "=", irev))
					ops = append(ops, clientv3.OpPut(ikey, state.Marshal(rec)))
				}
			}
		}
		if spec.Val(t.LastStatus) == "STOPPED" {
			c, o, err := a.detachVolumes(ctx, cluster, t)
			if err != nil {
				return nil, err
			}
			cmps, ops = append(cmps, c...), append(ops, o...)
		}
		ops = append(ops, clientv3.OpPut(state.TaskKey(cluster, taskID), state.Marshal(t)))
		resp, err := a.Store.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("commit task transition: %w", err)
		}
		if resp.Succeeded {
			// A later RunTask on this server must see the released resources.
			a.Cache.WaitRev(resp.Header.Revision, 2*time.Second)
			if a.Stopped != nil && spec.Val(t.LastStatus) == "STOPPED" {
				a.Stopped(ctx, t)
			}
			return t, nil
		}
	}
	return nil, fmt.Errorf("task transition: %w", state.ErrConflict)
}

// detachVolumes releases the block volumes a stopping task holds: the
// attachment goes, and the volume becomes available again or, with
// deleteOnTermination, is deleted by its instance's agent.
func (a *Applier) detachVolumes(ctx context.Context, cluster string, t *state.TaskRecord) ([]clientv3.Cmp, []clientv3.Op, error) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, bv := range t.BlockVolumes {
		key := state.VolumeKey(cluster, bv.VolumeID)
		v := &agentapi.Volume{}
		rev, err := a.Store.Get(ctx, key, v)
		if errors.Is(err, state.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		if v.CheckEpoch(spec.Val(t.TaskArn), bv.Epoch) != nil {
			continue // already detached, or attached again since (a newer epoch)
		}
		v.Attachment = nil
		v.State = "available"
		if v.DeleteOnTermination {
			v.State = "deleting"
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		ops = append(ops, clientv3.OpPut(key, state.Marshal(v)))
		for i := range t.Attachments {
			if spec.Val(t.Attachments[i].Type) == "AmazonElasticBlockStorage" {
				t.Attachments[i].Status = spec.Str("DETACHED")
			}
		}
	}
	return cmps, ops, nil
}
