// Package blob is Berth's object storage. Objects is the interface a
// backend implements: named, immutable-once-written objects, listed by
// prefix and age. Backends live in subpackages named after what they wrap,
// chosen by URL (package blob/backend): file:// (a local directory, the
// embedded default, one copy) and s3:// (any S3-compatible store, which
// replicates). Every backend passes one conformance suite (blob/blobtest).
//
// Chunks is the content-addressed view snapshots use: a chunk's key is the
// hex SHA-256 of its bytes, so a chunk is written once and never changes,
// and a store never returns bytes whose hash differs from the key.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ErrNotFound is returned for an object or chunk the store does not hold.
var ErrNotFound = errors.New("blob not found")

// Objects is a storage backend. Names are slash-separated paths without
// "." or ".." components.
//
// Put makes an object durable before it returns, replacing any object of
// that name whole: a reader sees the old or the new, never a mix. Get,
// GetRange and Stat return ErrNotFound for a missing object. Touch sets an
// object's modification time to now and reports whether it exists (the
// collectors treat young objects as in use). Delete of a missing object is
// not an error. List calls fn once for every object whose name starts
// with prefix (in no promised order); an error from fn ends it. Every
// method returns ctx's error once ctx is done.
type Objects interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	GetRange(ctx context.Context, name string, off, length int64) ([]byte, error)
	Stat(ctx context.Context, name string) (Info, error)
	Touch(ctx context.Context, name string) (bool, error)
	Delete(ctx context.Context, name string) error
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// String names the store for messages (its URL, without secrets).
	String() string
}

// Presigner is a store whose objects a client can read and write itself,
// with URLs the holder of the store's credentials signs for a short time
// (S3). A URL to write names the exact size.
type Presigner interface {
	PresignGet(ctx context.Context, name string, ttl time.Duration) (string, error)
	PresignPut(ctx context.Context, name string, size int64, ttl time.Duration) (string, error)
}

// BatchDeleter deletes many objects in few requests (S3's
// DeleteObjects); a name that is not there is not an error.
type BatchDeleter interface {
	DeleteMany(ctx context.Context, names []string) error
}

// DeleteAll deletes names, in batches where the store can.
func DeleteAll(ctx context.Context, o Objects, names []string) error {
	if b, ok := o.(BatchDeleter); ok {
		return b.DeleteMany(ctx, names)
	}
	for _, n := range names {
		if err := o.Delete(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// ChecksumPresigner signs URLs that write exactly the bytes whose SHA-256
// they name: the store checks the body (S3's x-amz-checksum-sha256).
type ChecksumPresigner interface {
	PresignPutSHA256(ctx context.Context, name string, size int64, sum []byte, ttl time.Duration) (string, error)
}

// Info describes an object.
type Info struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ValidName reports whether name is an object name.
func ValidName(name string) bool {
	if name == "" || len(name) > 1024 || name[0] == '/' || name[len(name)-1] == '/' {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Store is a content-addressed chunk store. Put of an existing key is a
// no-op; a store never returns bytes whose hash differs from the key.
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

// Chunks is the Store over a backend: chunk KEY is the object KE/KEY
// (the layout data dirs have always had).
type Chunks struct{ Objects Objects }

func chunkName(key string) string { return key[:2] + "/" + key }

func checkKey(key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("invalid blob key %q", key)
	}
	return nil
}

func (c Chunks) Has(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	_, err := c.Objects.Stat(ctx, chunkName(key))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Stat describes a chunk's object (its age, for the collector).
func (c Chunks) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	return c.Objects.Stat(ctx, chunkName(key))
}

// Touch reports whether the chunk exists and, if it does, makes it new.
func (c Chunks) Touch(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	return c.Objects.Touch(ctx, chunkName(key))
}

func (c Chunks) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b, err := c.Objects.Get(ctx, chunkName(key))
	if err == nil && Key(b) != key {
		return nil, fmt.Errorf("blob %s in %s is corrupt", key, c.Objects)
	}
	return b, err
}

// Put stores a chunk durably; a chunk already there is made new instead.
func (c Chunks) Put(ctx context.Context, key string, data []byte) error {
	if !ValidKey(key) || Key(data) != key {
		return fmt.Errorf("blob key %q does not match its content", key)
	}
	if ok, err := c.Objects.Touch(ctx, chunkName(key)); ok || err != nil {
		return err
	}
	return c.Objects.Put(ctx, chunkName(key), data)
}

func (c Chunks) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return c.Objects.Delete(ctx, chunkName(key))
}

// DeleteMany deletes chunks, in batches where the store can.
func (c Chunks) DeleteMany(ctx context.Context, keys []string) error {
	names := make([]string, 0, len(keys))
	for _, key := range keys {
		if err := checkKey(key); err != nil {
			return err
		}
		names = append(names, chunkName(key))
	}
	return DeleteAll(ctx, c.Objects, names)
}

// PresignGet is a URL that reads a chunk from the store for ttl; ok is
// false when the backend cannot sign URLs (a local directory).
func (c Chunks) PresignGet(ctx context.Context, key string, ttl time.Duration) (url string, ok bool, err error) {
	p, ok := c.Objects.(Presigner)
	if !ok {
		return "", false, nil
	}
	if err := checkKey(key); err != nil {
		return "", true, err
	}
	url, err = p.PresignGet(ctx, chunkName(key), ttl)
	return url, true, err
}

// PresignPut is a URL that writes the chunk key names, and only it: the
// store refuses any body whose SHA-256 is not the key. ok is false when
// the backend cannot sign such URLs.
func (c Chunks) PresignPut(ctx context.Context, key string, size int64, ttl time.Duration) (url string, ok bool, err error) {
	p, ok := c.Objects.(ChecksumPresigner)
	if !ok {
		return "", false, nil
	}
	if err := checkKey(key); err != nil {
		return "", true, err
	}
	sum, err := hex.DecodeString(key)
	if err != nil {
		return "", true, err
	}
	url, err = p.PresignPutSHA256(ctx, chunkName(key), size, sum, ttl)
	return url, true, err
}

// Walk calls fn for every chunk with its modification time.
func (c Chunks) Walk(ctx context.Context, fn func(key string, modTime time.Time) error) error {
	return c.Objects.List(ctx, "", func(in Info) error {
		key := in.Name[strings.IndexByte(in.Name, '/')+1:]
		if !ValidKey(key) || in.Name != chunkName(key) {
			return nil // not a chunk
		}
		return fn(key, in.ModTime)
	})
}
