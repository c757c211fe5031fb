package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/volume/block"
)

// collectChunks deletes chunks that no snapshot references and that are
// older than grace. While any snapshot is being taken nothing is collected:
// its chunks are uploaded before its manifest is recorded.
func (s *Server) collectChunks(ctx context.Context, grace time.Duration) (int, error) {
	store := s.chunks
	if store.Objects == nil {
		return 0, nil
	}
	keep := map[string]bool{}
	pending := false
	err := state.New(s.client).Range(ctx, state.SnapshotsPrefix(), "", func(key string, val []byte, _ int64) (bool, error) {
		sn := agentapi.Snapshot{}
		if err := json.Unmarshal(val, &sn); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err) // never collect over a snapshot that cannot be read
		}
		if sn.State == "pending" {
			pending = true
			return false, nil
		}
		if sn.Manifest == "" {
			return true, nil
		}
		m, err := block.ReadManifest(ctx, store, sn.Manifest)
		if err != nil {
			return false, err // never collect while a referenced manifest cannot be read
		}
		keep[sn.Manifest] = true
		for _, k := range m.Chunks {
			keep[k] = true
		}
		return true, nil
	})
	if err != nil || pending {
		return 0, err
	}
	var old []string
	err = store.Walk(ctx, func(key string, mod time.Time) error {
		if !keep[key] && time.Since(mod) >= grace {
			old = append(old, key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for len(old) > 0 {
		batch := old[:min(len(old), 1000)]
		old = old[len(batch):]
		n, err := s.deleteOldChunks(ctx, batch, grace)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// deleteOldChunks deletes, in one batch, those of keys still older than
// grace. It is exclusive of blob requests, so a chunk a snapshot has just
// found (and touched) is not deleted under it: every age is read again.
func (s *Server) deleteOldChunks(ctx context.Context, keys []string, grace time.Duration) (int, error) {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	var gone []string
	for _, key := range keys {
		ok, err := s.oldChunk(ctx, key, grace)
		if err != nil {
			return 0, err
		}
		if ok {
			gone = append(gone, key)
		}
	}
	if err := s.chunks.DeleteMany(ctx, gone); err != nil {
		return 0, err
	}
	return len(gone), nil
}

// oldChunk reports whether a chunk is still there and older than grace.
func (s *Server) oldChunk(ctx context.Context, key string, grace time.Duration) (bool, error) {
	info, err := s.chunks.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	return err == nil && time.Since(info.ModTime) >= grace, err
}
