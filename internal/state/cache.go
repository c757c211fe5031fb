package state

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
)

// Cache mirrors container instances, agent connections and data residency
// from etcd through a watch, so the scheduler reads a snapshot without
// touching etcd. It is eventually consistent: writers guard on the revisions
// it reports and retry after WaitRev when they lose.
type Cache struct {
	cli *clientv3.Client
	log *slog.Logger

	mu        sync.RWMutex
	cond      *sync.Cond
	rev       int64
	instances map[string]map[string]*CachedInstance // cluster -> id
	conn      map[string]bool                       // cluster/id
	residency map[string]map[string]string          // cluster -> key -> id
	lost      chan struct{}                         // an agent's lease went
	lostCount atomic.Int64                          // leases that went
}

// CachedInstance is one instance as last seen, decoded once.
type CachedInstance struct {
	Record *InstanceRecord
	Rev    int64
	sched  scheduler.Instance
}

// NewCache returns a cache; Run fills and follows it.
func NewCache(cli *clientv3.Client, log *slog.Logger) *Cache {
	c := &Cache{cli: cli, log: log, lost: make(chan struct{}, 1)}
	c.cond = sync.NewCond(&c.mu)
	c.reset()
	return c
}

func (c *Cache) reset() {
	c.instances = map[string]map[string]*CachedInstance{}
	c.conn = map[string]bool{}
	c.residency = map[string]map[string]string{}
}

// Load reads the current state; call before serving, then Run. It reads
// only what it mirrors, all at one revision.
func (c *Cache) Load(ctx context.Context) error {
	first, err := c.cli.Get(ctx, InstancesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	rev := first.Header.Revision
	kvs := first.Kvs
	for _, p := range []string{"conn/", "residency/"} {
		resp, err := c.cli.Get(ctx, Prefix+p, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			return err
		}
		kvs = append(kvs, resp.Kvs...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
	for _, kv := range kvs {
		c.apply(string(kv.Key), kv.Value, kv.ModRevision, false)
	}
	c.rev = rev
	c.cond.Broadcast()
	return nil
}

// Run follows changes until ctx ends, reloading after a compaction.
func (c *Cache) Run(ctx context.Context) {
	for ctx.Err() == nil {
		c.mu.RLock()
		from := c.rev + 1
		c.mu.RUnlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := c.cli.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
		for resp := range ch {
			if err := resp.Err(); err != nil {
				c.log.Warn("cache watch", "err", err)
				break
			}
			c.mu.Lock()
			for _, ev := range resp.Events {
				c.apply(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete)
			}
			if resp.Header.Revision > c.rev {
				c.rev = resp.Header.Revision
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
		if err := c.Load(ctx); err != nil {
			c.log.Warn("cache reload", "err", err)
		}
	}
}

func (c *Cache) apply(key string, val []byte, rev int64, del bool) {
	rest := strings.TrimPrefix(key, Prefix)
	kind, rest, _ := strings.Cut(rest, "/")
	cluster, id, ok := strings.Cut(rest, "/")
	if !ok {
		return
	}
	switch kind {
	case "instances":
		m := c.instances[cluster]
		if m == nil {
			m = map[string]*CachedInstance{}
			c.instances[cluster] = m
		}
		if del {
			delete(m, id)
			return
		}
		rec := &InstanceRecord{}
		if err := json.Unmarshal(val, rec); err != nil {
			c.log.Error("cache: bad instance record", "key", key, "err", err)
			return
		}
		m[id] = &CachedInstance{Record: rec, Rev: rev, sched: toSched(rec, rev)}
	case "conn":
		if del {
			if c.conn[cluster+"/"+id] {
				c.lostCount.Add(1)
			}
			delete(c.conn, cluster+"/"+id)
			select {
			case c.lost <- struct{}{}:
			default:
			}
		} else {
			c.conn[cluster+"/"+id] = true
		}
	case "residency":
		m := c.residency[cluster]
		if m == nil {
			m = map[string]string{}
			c.residency[cluster] = m
		}
		if del {
			delete(m, id)
		} else {
			m[id] = string(val)
		}
	}
}

func toSched(rec *InstanceRecord, rev int64) scheduler.Instance {
	attrs := make(map[string]string, len(rec.Attributes))
	for _, a := range rec.Attributes {
		attrs[spec.Val(a.Name)] = spec.Val(a.Value)
	}
	used := make(map[string]bool, len(rec.UsedPorts))
	for _, p := range rec.UsedPorts {
		used[p] = true
	}
	in := scheduler.Instance{
		ID: rec.ID, ARN: spec.Val(rec.ContainerInstanceArn), EC2InstanceID: spec.Val(rec.Ec2InstanceId),
		Status: spec.Val(rec.Status), Attributes: attrs, CPU: rec.CPU, Memory: rec.Memory,
		UsedPorts: used, RunningTasks: int(spec.Val(rec.RunningTasksCount) + spec.Val(rec.PendingTasksCount)),
		Groups: rec.Groups, Rev: rev,
	}
	if rec.VersionInfo != nil {
		in.AgentVersion = spec.Val(rec.VersionInfo.AgentVersion)
	}
	if rec.RegisteredAt != nil {
		in.RegisteredAt = rec.RegisteredAt.Time
	}
	return in
}

// Rev is the etcd revision the cache reflects.
func (c *Cache) Rev() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// WaitRev blocks until the cache reflects rev or timeout passes.
func (c *Cache) WaitRev(rev int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.rev < rev {
		if time.Now().After(deadline) {
			return false
		}
		c.cond.Wait()
	}
	return true
}

// Snapshot returns the scheduler's view of one cluster.
func (c *Cache) Snapshot(cluster string) *scheduler.Snapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m := c.instances[cluster]
	s := &scheduler.Snapshot{Instances: make([]*scheduler.Instance, 0, len(m)), Residency: map[string]string{}}
	for id, ci := range m {
		in := ci.sched // copy
		in.AgentConnected = c.conn[cluster+"/"+id]
		s.Instances = append(s.Instances, &in)
	}
	for k, v := range c.residency[cluster] {
		s.Residency[k] = v
	}
	return s
}

// Instance returns the cached instance, if any.
func (c *Cache) Instance(cluster, id string) (*CachedInstance, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ci, ok := c.instances[cluster][id]
	return ci, ok
}

// Instances returns the cached instances of a cluster.
func (c *Cache) Instances(cluster string) []*CachedInstance {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*CachedInstance, 0, len(c.instances[cluster]))
	for _, ci := range c.instances[cluster] {
		out = append(out, ci)
	}
	return out
}

// Connected reports whether the instance's agent holds its lease.
func (c *Cache) Connected(cluster, id string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.conn[cluster+"/"+id]
}

// AgentLost receives when an agent's lease has expired (or its instance
// deregistered): the service controller acts at once rather than at its
// next pass.
func (c *Cache) AgentLost() <-chan struct{} { return c.lost }

// Residency returns the instance holding a data key in a cluster.
func (c *Cache) Residency(cluster string) map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string]string{}
	for k, v := range c.residency[cluster] {
		out[k] = v
	}
	return out
}

// LeasesLost counts the agent leases that ended (expired, revoked or
// deregistered) since this cache started.
func (c *Cache) LeasesLost() int64 { return c.lostCount.Load() }

// ClusterSummary is what the cache knows of one cluster's instances.
type ClusterSummary struct {
	Instances, Connected, Running, Pending int
}

// Summaries sums up each cluster's instances and their task counts.
func (c *Cache) Summaries() map[string]ClusterSummary {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string]ClusterSummary{}
	for cluster, m := range c.instances {
		var s ClusterSummary
		for id, ci := range m {
			s.Instances++
			if c.conn[cluster+"/"+id] {
				s.Connected++
			}
			s.Running += int(spec.Val(ci.Record.RunningTasksCount))
			s.Pending += int(spec.Val(ci.Record.PendingTasksCount))
		}
		out[cluster] = s
	}
	return out
}
