// Package fschunk is where shared file systems keep their data: chunks
// FS/ab/ID, each written once under a fresh id and never changed, in the
// server's directory (Dir) or in a blob store (Objects), which mounts then
// reach directly through presigned URLs.
package fschunk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/fsproto"
)

// Store holds the shared file systems' data: chunks FS/ab/ID, each
// written once under a fresh random id and never changed. A put of an
// existing id is refused (ErrExists), so a chunk a commit names is the
// chunk that was uploaded. Sync makes every chunk put so far durable (a
// commit calls it before it names them). Open, Get, Age and Delete of a
// missing chunk return an error wrapping fs.ErrNotExist (Delete: nil).
type Store interface {
	Put(ctx context.Context, fsid, id string, data []byte) error
	Get(ctx context.Context, fsid, id string) ([]byte, error)
	// Open returns a reader of the chunk (an *os.File where the store is
	// local, so the server can send it with sendfile) and its size.
	Open(ctx context.Context, fsid, id string) (io.ReadCloser, int64, error)
	Sync(ctx context.Context) error
	Age(ctx context.Context, fsid, id string) (time.Duration, error)
	Delete(ctx context.Context, fsid, id string) error
	// DeleteMany deletes chunks in as few requests as the store allows.
	DeleteMany(ctx context.Context, fsid string, ids []string) error
	Walk(ctx context.Context, fsid string, fn func(id string, age time.Duration, size int64)) error
	RemoveAll(ctx context.Context, fsid string) error
	// Keeps is false for a server that holds no file data.
	Keeps() bool
}

// Dir is the Store in a local directory: DIR/FS/ab/ID.
type Dir struct{ Path string }

// Keeps reports whether the directory is set.
func (d Dir) Keeps() bool { return d.Path != "" }

// ErrExists is returned by Put for an id already stored.
var ErrExists = errors.New("chunk already exists")

func (d Dir) path(fsid, id string) string { return filepath.Join(d.Path, fsid, id[:2], id) }

func (d Dir) check(fsid, id string) error {
	if d.Path == "" {
		return errors.New("this server keeps no file data (it has no --data-dir)")
	}
	return checkChunk(fsid, id)
}

func checkChunk(fsid, id string) error {
	if !fsproto.ValidFSID(fsid) || !fsproto.ValidChunkID(id) {
		return fmt.Errorf("invalid chunk %s/%s", fsid, id)
	}
	return nil
}

// Put stores a chunk under its id (temp file, then a link, so a chunk is
// never visible half written). It does not wait for the disk: Sync does,
// once for every chunk a commit names, before the commit is recorded. A
// chunk of whole 4 KiB pages in a page-aligned buffer (a sequential
// writer's full block) is written with O_DIRECT: it goes to the disk
// without a copy into the page cache, which costs the server more CPU than
// anything else it does for a write.
func (d Dir) Put(_ context.Context, fsid, id string, data []byte) error {
	if err := d.check(fsid, id); err != nil {
		return err
	}
	p := d.path(fsid, id)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".tmp-"+fsproto.NewChunkID())
	direct := len(data) > 0 && len(data)%4096 == 0 && uintptr(unsafe.Pointer(&data[0]))%4096 == 0
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if direct {
		flags |= syscall.O_DIRECT
	}
	f, err := os.OpenFile(tmp, flags, 0o600)
	if err != nil && direct {
		direct, flags = false, flags&^syscall.O_DIRECT // a file system without O_DIRECT
		f, err = os.OpenFile(tmp, flags, 0o600)
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if !direct {
		// Start writing it back now (without waiting), so the sync before
		// the commit finds little left to do.
		unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, p); errors.Is(err, fs.ErrExist) {
		return ErrExists
	} else if err != nil {
		return err
	}
	return nil
}

// AlignedBuffer returns a page-aligned buffer of n bytes, so that a full
// chunk read into it can be written with O_DIRECT.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+4096)
	off := int((4096 - uintptr(unsafe.Pointer(&b[0]))%4096) % 4096)
	return b[off : off+n : off+n]
}

// Sync makes every chunk stored so far durable, with their directory
// entries: one syncfs(2) of the file system that holds the store.
func (d Dir) Sync(context.Context) error {
	if d.Path == "" {
		return errors.New("this server keeps no file data (it has no --data-dir)")
	}
	f, err := os.Open(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// Get reads a chunk.
func (d Dir) Get(_ context.Context, fsid, id string) ([]byte, error) {
	if err := d.check(fsid, id); err != nil {
		return nil, err
	}
	return os.ReadFile(d.path(fsid, id))
}

// Open opens a chunk for reading and returns its size.
func (d Dir) Open(_ context.Context, fsid, id string) (io.ReadCloser, int64, error) {
	if err := d.check(fsid, id); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(d.path(fsid, id))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Age is how long ago the chunk was stored.
func (d Dir) Age(_ context.Context, fsid, id string) (time.Duration, error) {
	if err := d.check(fsid, id); err != nil {
		return 0, err
	}
	st, err := os.Stat(d.path(fsid, id))
	if err != nil {
		return 0, err
	}
	return time.Since(st.ModTime()), nil
}

// Delete removes a chunk; a missing chunk is not an error.
// DeleteMany deletes chunks one by one (files need no batching).
func (d Dir) DeleteMany(ctx context.Context, fsid string, ids []string) error {
	for _, id := range ids {
		if err := d.Delete(ctx, fsid, id); err != nil {
			return err
		}
	}
	return nil
}

func (d Dir) Delete(_ context.Context, fsid, id string) error {
	if err := d.check(fsid, id); err != nil {
		return err
	}
	err := os.Remove(d.path(fsid, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Walk calls fn for every chunk of a file system with its age and size.
func (d Dir) Walk(_ context.Context, fsid string, fn func(id string, age time.Duration, size int64)) error {
	if d.Path == "" {
		return nil
	}
	root := filepath.Join(d.Path, fsid)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || !fsproto.ValidChunkID(e.Name()) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil // deleted under us
		}
		fn(e.Name(), time.Since(info.ModTime()), info.Size())
		return nil
	})
	return err
}

// RemoveAll deletes a file system's chunks.
func (d Dir) RemoveAll(_ context.Context, fsid string) error {
	if d.Path == "" {
		return nil
	}
	if !fsproto.ValidFSID(fsid) {
		return fmt.Errorf("invalid file system id %q", fsid)
	}
	return os.RemoveAll(filepath.Join(d.Path, fsid))
}

// Objects is the Store on a blob backend (an S3-compatible store,
// say): chunk FS/ab/ID is the object fs/FS/ab/ID. A put is durable when it
// returns, so Sync has nothing to do.
type Objects struct{ Objects blob.Objects }

func objectName(fsid, id string) string { return "fs/" + fsid + "/" + id[:2] + "/" + id }

func (o Objects) Keeps() bool { return true }

func (o Objects) Put(ctx context.Context, fsid, id string, data []byte) error {
	if err := checkChunk(fsid, id); err != nil {
		return err
	}
	if _, err := o.Objects.Stat(ctx, objectName(fsid, id)); err == nil {
		return ErrExists
	} else if !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	return o.Objects.Put(ctx, objectName(fsid, id), data)
}

func (o Objects) Get(ctx context.Context, fsid, id string) ([]byte, error) {
	if err := checkChunk(fsid, id); err != nil {
		return nil, err
	}
	b, err := o.Objects.Get(ctx, objectName(fsid, id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("chunk %s/%s: %w", fsid, id, fs.ErrNotExist)
	}
	return b, err
}

func (o Objects) Open(ctx context.Context, fsid, id string) (io.ReadCloser, int64, error) {
	b, err := o.Get(ctx, fsid, id)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (o Objects) Sync(context.Context) error { return nil }

func (o Objects) Age(ctx context.Context, fsid, id string) (time.Duration, error) {
	if err := checkChunk(fsid, id); err != nil {
		return 0, err
	}
	in, err := o.Objects.Stat(ctx, objectName(fsid, id))
	if errors.Is(err, blob.ErrNotFound) {
		return 0, fmt.Errorf("chunk %s/%s: %w", fsid, id, fs.ErrNotExist)
	} else if err != nil {
		return 0, err
	}
	return time.Since(in.ModTime), nil
}

func (o Objects) Delete(ctx context.Context, fsid, id string) error {
	if err := checkChunk(fsid, id); err != nil {
		return err
	}
	return o.Objects.Delete(ctx, objectName(fsid, id))
}

// DeleteMany deletes chunks in batches (S3's DeleteObjects).
func (o Objects) DeleteMany(ctx context.Context, fsid string, ids []string) error {
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := checkChunk(fsid, id); err != nil {
			return err
		}
		names = append(names, objectName(fsid, id))
	}
	return blob.DeleteAll(ctx, o.Objects, names)
}

func (o Objects) Walk(ctx context.Context, fsid string, fn func(id string, age time.Duration, size int64)) error {
	if !fsproto.ValidFSID(fsid) {
		return fmt.Errorf("invalid file system id %q", fsid)
	}
	return o.Objects.List(ctx, "fs/"+fsid+"/", func(in blob.Info) error {
		id := in.Name[strings.LastIndexByte(in.Name, '/')+1:]
		if fsproto.ValidChunkID(id) && in.Name == objectName(fsid, id) {
			fn(id, time.Since(in.ModTime), in.Size)
		}
		return nil
	})
}

func (o Objects) RemoveAll(ctx context.Context, fsid string) error {
	if !fsproto.ValidFSID(fsid) {
		return fmt.Errorf("invalid file system id %q", fsid)
	}
	var names []string
	if err := o.Objects.List(ctx, "fs/"+fsid+"/", func(in blob.Info) error {
		names = append(names, in.Name)
		return nil
	}); err != nil {
		return err
	}
	for _, n := range names {
		if err := o.Objects.Delete(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// DirectTTL is how long a chunk URL handed to a mount stays good.
const DirectTTL = 15 * time.Minute

// Direct reports whether mounts move this store's bytes themselves.
func (o Objects) Direct() bool {
	_, ok := o.Objects.(blob.Presigner)
	return ok
}

// GetURL is a URL a mount reads a chunk from, straight from the store.
func (o Objects) GetURL(ctx context.Context, fsid, id string) (string, error) {
	if err := checkChunk(fsid, id); err != nil {
		return "", err
	}
	return o.Objects.(blob.Presigner).PresignGet(ctx, objectName(fsid, id), DirectTTL)
}

// PutURL is a URL a mount writes a new chunk of size bytes to, straight
// to the store, under an id the server issued (so no chunk has it yet).
func (o Objects) PutURL(ctx context.Context, fsid, id string, size int64) (string, error) {
	if err := checkChunk(fsid, id); err != nil {
		return "", err
	}
	return o.Objects.(blob.Presigner).PresignPut(ctx, objectName(fsid, id), size, DirectTTL)
}
