package server

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// collectStoppedTasks deletes tasks that stopped more than retention ago,
// as ECS forgets stopped tasks; until then they stay describable. Each
// delete is guarded on the task's revision, so several servers may run it.
func (s *Server) collectStoppedTasks(ctx context.Context, retention time.Duration) (int, error) {
	resp, err := s.client.Get(ctx, state.TasksPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range resp.Kvs {
		t := &state.TaskRecord{}
		if json.Unmarshal(kv.Value, t) != nil || spec.Val(t.LastStatus) != "STOPPED" || t.StoppedAt == nil {
			continue
		}
		if time.Since(t.StoppedAt.Time) < retention || !t.Released {
			continue
		}
		r, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key))).Commit()
		if err != nil {
			return n, err
		}
		if r.Succeeded {
			n++
		}
	}
	return n, nil
}

func (s *Server) gcLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.collectStoppedTasks(ctx, s.cfg.StoppedTaskRetention); err != nil {
			s.cfg.Log.Warn("collect stopped tasks", "err", err)
		} else if n > 0 {
			s.cfg.Log.Info("collected stopped tasks", "count", n)
		}
		if n, err := s.collectChunks(ctx, time.Hour); err != nil {
			s.cfg.Log.Warn("collect chunks", "err", err)
		} else if n > 0 {
			s.cfg.Log.Info("collected unreferenced chunks", "count", n)
		}
	}
}
