package server

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/volume/block"
)

// collectChunks deletes chunks that no snapshot references and that are
// older than grace. While any snapshot is being taken nothing is collected:
// its chunks are uploaded before its manifest is recorded.
func (s *Server) collectChunks(ctx context.Context, grace time.Duration) (int, error) {
	if s.cfg.DataDir == "" {
		return 0, nil
	}
	store := blob.Dir{Path: filepath.Join(s.cfg.DataDir, "blobs")}
	resp, err := s.client.Get(ctx, state.Prefix+"snapshots/", clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	keep := map[string]bool{}
	for _, kv := range resp.Kvs {
		sn := state.SnapshotRecord{}
		if json.Unmarshal(kv.Value, &sn) != nil {
			continue
		}
		if sn.State == "pending" {
			return 0, nil
		}
		if sn.Manifest == "" {
			continue
		}
		m, err := block.ReadManifest(ctx, store, sn.Manifest)
		if err != nil {
			return 0, err // never collect while a referenced manifest cannot be read
		}
		keep[sn.Manifest] = true
		for _, k := range m.Chunks {
			keep[k] = true
		}
	}
	deleted := 0
	err = filepath.WalkDir(store.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !blob.ValidKey(d.Name()) || keep[d.Name()] {
			return nil
		}
		// Exclusive of blob requests, so a chunk a snapshot has just found
		// (and touched) is not deleted under it.
		s.blobMu.Lock()
		defer s.blobMu.Unlock()
		info, err := os.Stat(p)
		if err != nil || time.Since(info.ModTime()) < grace {
			return nil
		}
		if err := os.Remove(p); err == nil {
			deleted++
		}
		return nil
	})
	return deleted, err
}
