package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

func TestCollectStoppedTasks(t *testing.T) {
	s, err := Start(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(id, status string, stopped time.Duration, released bool) {
		rec := &state.TaskRecord{ID: id, Released: released}
		rec.LastStatus = spec.Str(status)
		if stopped > 0 {
			rec.StoppedAt = spec.TS(time.Now().Add(-stopped))
		}
		if _, err := s.client.Put(ctx, state.TaskKey("c", id), state.Marshal(rec)); err != nil {
			t.Fatal(err)
		}
	}
	put("old", "STOPPED", 2*time.Hour, true)
	put("recent", "STOPPED", 10*time.Minute, true)
	put("unreleased", "STOPPED", 2*time.Hour, false)
	put("running", "RUNNING", 0, false)
	n, err := s.collectStoppedTasks(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("collected %d: %v", n, err)
	}
	resp, _ := s.client.Get(ctx, state.TaskPrefix("c"), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if len(resp.Kvs) != 3 {
		t.Fatalf("left %d tasks", len(resp.Kvs))
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) == state.TaskKey("c", "old") {
			t.Fatal("the old stopped task was kept")
		}
	}
}
