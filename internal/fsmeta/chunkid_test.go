package fsmeta

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/fsproto"
)

// TestIssuedChunkIDs: an id the cluster issued carries its time, for its
// file system only; a client's id, a forged one and one of another file
// system are not taken for issued; every server of the cluster (the same
// key in etcd) reads the same.
func TestIssuedChunkIDs(t *testing.T) {
	e, fs := newEngine(t)
	ctx := context.Background()
	if err := e.LoadChunkKey(ctx); err != nil {
		t.Fatal(err)
	}
	then := time.Now().Add(-90 * time.Second)
	id := e.IssueChunkID(fs, then)
	if !fsproto.ValidChunkID(id) {
		t.Fatalf("issued id %q is not a chunk id", id)
	}
	at, ok := e.issuedAt(fs, id)
	if !ok || at.Unix() != then.Unix() {
		t.Fatalf("issuedAt: %v %v", at, ok)
	}
	if age, err := e.chunkAge(ctx, fs, id); err != nil || age < 89*time.Second || age > 95*time.Second {
		t.Fatalf("age from the id: %v %v", age, err)
	}
	if _, ok := e.issuedAt("fs-00000000", id); ok {
		t.Fatal("an id of one file system passed for another's")
	}
	forged := id[:12] + strings.Repeat("f", 8) + id[20:] // another time, the same MAC
	if _, ok := e.issuedAt(fs, forged); ok {
		t.Fatal("an id with a changed time passed")
	}
	if _, ok := e.issuedAt(fs, fsproto.NewChunkID()); ok {
		t.Fatal("a client's random id passed for issued")
	}
	other := NewEngine(e.Client, e.Chunks, e.Log)
	if err := other.LoadChunkKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.issuedAt(fs, id); !ok {
		t.Fatal("another server of the cluster does not read the id")
	}
}
