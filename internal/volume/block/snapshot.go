package block

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/berth-project/berth/internal/blob"
)

// ChunkSize is the unit of incremental snapshots: small enough that a
// change costs little more than its own size, large enough to keep
// manifests small (8,192 entries per GiB).
const ChunkSize = 128 << 10

// Manifest lists a snapshot's chunks: Chunks[i] is the key of bytes
// [i*ChunkSize, (i+1)*ChunkSize) of the image, "" for a chunk of zeros.
type Manifest struct {
	Size      int64    `json:"size"`
	ChunkSize int      `json:"chunkSize"`
	Chunks    []string `json:"chunks"`
}

// Stats reports what a snapshot or restore moved.
type Stats struct {
	Chunks, Uploaded, Zero int
	UploadedBytes          int64
}

var zero = make([]byte, ChunkSize)

// Snapshot reads the image and uploads the chunks the store lacks; chunks
// unchanged since an earlier snapshot have the same key and are skipped,
// which makes snapshots incremental. It returns the manifest's key.
func Snapshot(ctx context.Context, image string, store blob.Store) (string, Stats, error) {
	var st Stats
	f, err := os.Open(image)
	if err != nil {
		return "", st, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", st, err
	}
	m := Manifest{Size: info.Size(), ChunkSize: ChunkSize}
	buf := make([]byte, ChunkSize)
	for off := int64(0); off < m.Size; off += ChunkSize {
		n, err := io.ReadFull(io.NewSectionReader(f, off, ChunkSize), buf)
		if err != nil && err != io.ErrUnexpectedEOF {
			return "", st, fmt.Errorf("read %s at %d: %w", image, off, err)
		}
		chunk := buf[:n]
		st.Chunks++
		if bytes.Equal(chunk, zero[:n]) {
			m.Chunks = append(m.Chunks, "")
			st.Zero++
			continue
		}
		key := blob.Key(chunk)
		m.Chunks = append(m.Chunks, key)
		has, err := store.Has(ctx, key)
		if err != nil {
			return "", st, err
		}
		if !has {
			if err := store.Put(ctx, key, append([]byte(nil), chunk...)); err != nil {
				return "", st, err
			}
			st.Uploaded++
			st.UploadedBytes += int64(n)
		}
	}
	b, _ := json.Marshal(m)
	key := blob.Key(b)
	if err := store.Put(ctx, key, b); err != nil {
		return "", st, err
	}
	return key, st, nil
}

// ReadManifest fetches a manifest.
func ReadManifest(ctx context.Context, store blob.Store, key string) (*Manifest, error) {
	b, err := store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	return m, nil
}

// Restore writes a snapshot into a new sparse image of at least the
// snapshot's size (size may be larger: the volume grows, the file system
// does not). progress, if set, is called after each chunk.
func Restore(ctx context.Context, store blob.Store, manifestKey, image string, size int64, progress func(done, total int)) (Stats, error) {
	var st Stats
	m, err := ReadManifest(ctx, store, manifestKey)
	if err != nil {
		return st, err
	}
	if size < m.Size {
		return st, fmt.Errorf("volume size %d is smaller than the snapshot's %d", size, m.Size)
	}
	v := Volume{Image: image}
	if err := v.Create(size); err != nil {
		return st, err
	}
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		return st, err
	}
	defer f.Close()
	for i, key := range m.Chunks {
		st.Chunks++
		if key == "" {
			st.Zero++
		} else {
			data, err := store.Get(ctx, key)
			if err != nil {
				os.Remove(image)
				return st, fmt.Errorf("chunk %d: %w", i, err)
			}
			if _, err := f.WriteAt(data, int64(i)*int64(m.ChunkSize)); err != nil {
				os.Remove(image)
				return st, err
			}
		}
		if progress != nil {
			progress(i+1, len(m.Chunks))
		}
	}
	return st, f.Sync()
}
