// Package blob stores immutable, content-addressed chunks: the key of a
// chunk is the hex SHA-256 of its bytes, so a chunk is written once and
// never changes. Snapshots of block volumes (and, later, shared file system
// data) are lists of chunk keys.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// ErrNotFound is returned for a chunk the store does not hold.
var ErrNotFound = errors.New("blob not found")

// Store is a chunk store. Put of an existing key is a no-op; a store never
// returns bytes whose hash differs from the key.
type Store interface {
	Has(ctx context.Context, key string) (bool, error)
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, data []byte) error
	Delete(ctx context.Context, key string) error
}

// Key is the content address of data.
func Key(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

var keyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidKey reports whether key is a content address.
func ValidKey(key string) bool { return keyRE.MatchString(key) }

// Dir is a Store in a local directory: DIR/ab/abcdef….
type Dir struct{ Path string }

func (d Dir) path(key string) string { return filepath.Join(d.Path, key[:2], key) }

func (d Dir) Has(_ context.Context, key string) (bool, error) {
	if !ValidKey(key) {
		return false, fmt.Errorf("invalid blob key %q", key)
	}
	_, err := os.Stat(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Touch reports whether the chunk exists and, if it does, sets its
// modification time to now.
func (d Dir) Touch(key string) (bool, error) {
	if !ValidKey(key) {
		return false, fmt.Errorf("invalid blob key %q", key)
	}
	now := time.Now()
	err := os.Chtimes(d.path(key), now, now)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d Dir) Get(_ context.Context, key string) ([]byte, error) {
	if !ValidKey(key) {
		return nil, fmt.Errorf("invalid blob key %q", key)
	}
	b, err := os.ReadFile(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err == nil && Key(b) != key {
		return nil, fmt.Errorf("blob %s is corrupt", key)
	}
	return b, err
}

// Put writes the chunk durably: temp file, fsync, rename, fsync of the dir.
func (d Dir) Put(_ context.Context, key string, data []byte) error {
	if !ValidKey(key) || Key(data) != key {
		return fmt.Errorf("blob key %q does not match its content", key)
	}
	p := d.path(key)
	if ok, err := d.Touch(key); ok || err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func (d Dir) Delete(_ context.Context, key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("invalid blob key %q", key)
	}
	err := os.Remove(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
