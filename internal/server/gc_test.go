package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/blob/file"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/volume/block"
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

func TestCollectChunks(t *testing.T) {
	s, dir := dataServer(t)
	ctx := context.Background()
	store := blob.Chunks{Objects: file.New(filepath.Join(dir, "blobs"))}
	put := func(data string, old bool) string {
		k := blob.Key([]byte(data))
		if err := store.Put(ctx, k, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if old {
			past := time.Now().Add(-2 * time.Hour)
			os.Chtimes(filepath.Join(dir, "blobs", k[:2], k), past, past)
		}
		return k
	}
	used := put("chunk in a snapshot", true)
	orphan := put("chunk of a deleted snapshot", true)
	fresh := put("chunk of a snapshot being taken", false)
	m, _ := json.Marshal(block.Manifest{Size: 1, ChunkSize: block.ChunkSize, Chunks: []string{used, ""}})
	manifest := put(string(m), true)
	sn := &agentapi.Snapshot{SnapshotID: "snap-1", State: "completed", Manifest: manifest}
	if _, err := s.client.Put(ctx, state.SnapshotKey("c", "snap-1"), state.Marshal(sn)); err != nil {
		t.Fatal(err)
	}
	n, err := s.collectChunks(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("collected %d: %v", n, err)
	}
	for k, want := range map[string]bool{used: true, manifest: true, fresh: true, orphan: false} {
		if has, _ := store.Has(ctx, k); has != want {
			t.Errorf("chunk %s kept=%v, want %v", k[:8], has, want)
		}
	}
}

func TestCollectChunksWaitsForPendingSnapshots(t *testing.T) {
	s, dir := dataServer(t)
	ctx := context.Background()
	store := blob.Chunks{Objects: file.New(filepath.Join(dir, "blobs"))}
	k := blob.Key([]byte("uploaded, manifest not recorded yet"))
	store.Put(ctx, k, []byte("uploaded, manifest not recorded yet"))
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(dir, "blobs", k[:2], k), past, past)
	s.client.Put(ctx, state.SnapshotKey("c", "snap-2"), state.Marshal(&agentapi.Snapshot{SnapshotID: "snap-2", State: "pending"}))
	if n, err := s.collectChunks(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("collected %d while a snapshot was pending: %v", n, err)
	}
}

// A snapshot that finds a chunk in the store (HEAD) will reference it, so
// the collector must not delete it, even if no recorded snapshot does yet.
func TestCollectChunksKeepsChunksFoundBySnapshots(t *testing.T) {
	s, dir := dataServer(t)
	ctx := context.Background()
	store := blob.Chunks{Objects: file.New(filepath.Join(dir, "blobs"))}
	var keys []string
	for _, data := range []string{"chunk of a deleted snapshot, found again", "chunk of a deleted snapshot"} {
		k := blob.Key([]byte(data))
		store.Put(ctx, k, []byte(data))
		past := time.Now().Add(-2 * time.Hour)
		os.Chtimes(filepath.Join(dir, "blobs", k[:2], k), past, past)
		keys = append(keys, k)
	}
	found, orphan := keys[0], keys[1]
	req, _ := http.NewRequest(http.MethodHead, s.Endpoint()+"/berth/v1/blobs/"+found, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(err, resp)
	}
	resp.Body.Close()
	if n, err := s.collectChunks(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("collected %d: %v", n, err)
	}
	if has, _ := store.Has(ctx, found); !has {
		t.Error("a chunk a snapshot had just found was deleted")
	}
	if has, _ := store.Has(ctx, orphan); has {
		t.Error("an unreferenced chunk was kept")
	}
}

// dataServer starts a server with a data directory, closed at the end of
// the test.
func dataServer(t *testing.T) (*Server, string) {
	dir := t.TempDir()
	s, err := Start(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}
