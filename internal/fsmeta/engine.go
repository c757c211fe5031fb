package fsmeta

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/blob/fschunk"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

// Engine runs the metadata operations against etcd.
type Engine struct {
	Client *clientv3.Client
	Chunks fschunk.Store
	// SessionTTL is a mount session's lease, in seconds: a crashed mount's
	// locks are released this long after its last keep-alive.
	SessionTTL int64
	// ChunkGrace: chunks younger than this are never collected, and a
	// commit accepts only chunks younger than half of it, so no commit can
	// name a chunk that collection has decided to delete.
	ChunkGrace time.Duration
	// OrphanGrace is how long an unlinked inode's data is kept before it is
	// freed (when no session holds it open), so that other hosts that have
	// it open can register their hold.
	OrphanGrace time.Duration
	Log         *slog.Logger

	chunkKey    []byte   // chunkid.go
	leases      sync.Map // session id -> clientv3.LeaseID
	sessions    sync.Map // session id -> *Session
	insideCache sync.Map // session/ino checked to be under the session's root
	dirMu       sync.Mutex
	dirs        map[dirKey]*node // recently used parent directories
	compact     chan compactJob
	usageMu     sync.Mutex
	usage       map[string]usageEntry
}

type dirKey struct {
	fs  string
	ino uint64
}

// parent returns a directory that entries are being added to, from a small
// cache. The cached copy is only a guess: the caller's transaction compares
// the directory's mod revision with it, and on a mismatch calls forget and
// retries from etcd. Adding files does not change a directory's inode (its
// times are kept apart), so the guess stays right while files are created.
func (e *Engine) parent(ctx context.Context, fs string, ino uint64) (*node, error) {
	e.dirMu.Lock()
	n, ok := e.dirs[dirKey{fs, ino}]
	e.dirMu.Unlock()
	if ok {
		return n, nil
	}
	n, err := e.load(ctx, fs, ino)
	if err != nil {
		return nil, err
	}
	e.dirMu.Lock()
	if len(e.dirs) >= 4096 {
		clear(e.dirs)
	}
	e.dirs[dirKey{fs, ino}] = n
	e.dirMu.Unlock()
	return n, nil
}

func (e *Engine) forget(fs string, ino uint64) {
	e.dirMu.Lock()
	delete(e.dirs, dirKey{fs, ino})
	e.dirMu.Unlock()
}

type usageEntry struct {
	at time.Time
	st fsproto.Statfs
}

type compactJob struct {
	fs  string
	ino uint64
	blk uint32
}

// NewEngine returns an engine with defaults filled.
func NewEngine(cli *clientv3.Client, chunks fschunk.Store, log *slog.Logger) *Engine {
	return &Engine{Client: cli, Chunks: chunks, SessionTTL: 15, ChunkGrace: 10 * time.Minute,
		OrphanGrace: 30 * time.Second, Log: log, compact: make(chan compactJob, 1024), usage: map[string]usageEntry{}, dirs: map[dirKey]*node{}}
}

// maxOps stays under etcd's default --max-txn-ops (128) for both the
// compares and the operations of one transaction.
const maxOps = 120

const attempts = 64

func now() int64 { return time.Now().UnixNano() }

func randIno() uint64 {
	var b [8]byte
	rand.Read(b[:])
	ino := binary.LittleEndian.Uint64(b[:]) >> 1
	if ino <= fsproto.RootIno {
		ino += 2
	}
	return ino
}

// decode reads a stored record; one that cannot be read is an I/O error,
// never an empty record.
func decode(key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return errno(syscall.EIO, "record %s: %v", key, err)
	}
	return nil
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // our own record types only
	}
	return string(b)
}

func storeAttr(a *fsproto.Attr) string {
	c := *a
	c.Rev, c.Xattrs = 0, false
	return marshal(&c)
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errno(syscall.EINVAL, "invalid name %q", name)
	case len(name) > fsproto.MaxName:
		return errno(syscall.ENAMETOOLONG, "name longer than %d bytes", fsproto.MaxName)
	case strings.ContainsAny(name, "/\x00"):
		return errno(syscall.EINVAL, "invalid name %q", name)
	}
	return nil
}

// node is a loaded inode with the revisions that guard it.
type node struct {
	a    *fsproto.Attr
	rev  int64 // inode key's mod revision
	crev int64 // inode key's create revision
}

func (e *Engine) load(ctx context.Context, fs string, ino uint64) (*node, error) {
	resp, err := e.Client.Get(ctx, state.InodeKey(fs, ino), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	return nodeFrom(fs, ino, resp.Kvs)
}

// nodeFrom decodes an inode from the keys under its prefix.
func nodeFrom(fs string, ino uint64, kvs []*mvccpb.KeyValue) (*node, error) {
	n := &node{}
	var times *Times
	var trev int64
	for _, kv := range kvs {
		switch string(kv.Key) {
		case state.InodeKey(fs, ino):
			n.a = &fsproto.Attr{}
			if err := json.Unmarshal(kv.Value, n.a); err != nil {
				return nil, fmt.Errorf("inode %d: %w", ino, err)
			}
			n.rev, n.crev = kv.ModRevision, kv.CreateRevision
		case state.DirTimesKey(fs, ino):
			times = &Times{}
			if err := decode(string(kv.Key), kv.Value, times); err != nil {
				return nil, err
			}
			trev = kv.ModRevision
		}
	}
	if n.a == nil {
		return nil, errno(syscall.ENOENT, "no inode %d", ino)
	}
	n.a.Ino = ino
	n.a.Rev = n.rev
	if times != nil {
		n.a.Mtime = max(n.a.Mtime, times.Mtime)
		n.a.Ctime = max(n.a.Ctime, times.Ctime)
		n.a.Rev = max(n.a.Rev, trev)
	}
	return n, nil
}

// dir loads an inode that must be a directory.
func (e *Engine) dir(ctx context.Context, fs string, ino uint64) (*node, error) {
	n, err := e.load(ctx, fs, ino)
	if err != nil {
		return nil, err
	}
	if !n.a.IsDir() {
		return nil, errno(syscall.ENOTDIR, "inode %d is not a directory", ino)
	}
	return n, nil
}

func (e *Engine) dentry(ctx context.Context, fs string, parent uint64, name string) (*Dentry, int64, error) {
	resp, err := e.Client.Get(ctx, state.DentryKey(fs, parent, name))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	d := &Dentry{}
	if err := json.Unmarshal(resp.Kvs[0].Value, d); err != nil {
		return nil, 0, err
	}
	return d, resp.Kvs[0].ModRevision, nil
}

// named reads an entry and its inode; ENOENT when the entry is missing,
// a nil node when the inode went between the two reads (retry).
func (e *Engine) named(ctx context.Context, fs string, parent uint64, name string) (*Dentry, int64, *node, error) {
	d, drev, err := e.dentry(ctx, fs, parent, name)
	if err != nil {
		return nil, 0, nil, err
	}
	if d == nil {
		return nil, 0, nil, errno(syscall.ENOENT, "no entry %q", name)
	}
	n, err := e.load(ctx, fs, d.Ino)
	var fe *Error
	if errors.As(err, &fe) && fe.Errno == syscall.ENOENT {
		return d, drev, nil, nil
	}
	return d, drev, n, err
}

func (e *Engine) txn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op, els ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if len(cmps) > maxOps || len(ops) > maxOps {
		return nil, errno(syscall.EFBIG, "operation needs %d guards and %d writes, more than one etcd transaction holds", len(cmps), len(ops))
	}
	return e.Client.Txn(ctx).If(cmps...).Then(ops...).Else(els...).Commit()
}

var errContention = errno(syscall.EAGAIN, "too much contention; try again")

// Do runs one request. A request in a restricted session is confined to
// what the session may do.
func (e *Engine) Do(ctx context.Context, r *fsproto.Request) *fsproto.Response {
	var s *Session
	var err error
	if r.Session != "" && !r.Op.IsSession() {
		s, err = e.Session(ctx, r.FS, r.Session)
		if err == nil && s.restricted() {
			err = e.confine(ctx, s, r)
		}
	}
	var resp *fsproto.Response
	if err == nil {
		resp, err = e.do(ctx, r)
	}
	if err == nil && s != nil {
		present(s, resp)
	}
	if err == nil {
		resp.Attr, resp.Dir = forClient(resp.Attr), forClient(resp.Dir)
	}
	if err != nil {
		var fe *Error
		if errors.As(err, &fe) {
			return &fsproto.Response{Errno: fe.Errno}
		}
		if ctx.Err() != nil {
			return &fsproto.Response{Errno: syscall.EINTR}
		}
		e.Log.Warn("file system operation failed", "op", r.Op, "fs", r.FS, "err", err)
		return &fsproto.Response{Errno: syscall.EIO}
	}
	return resp
}

// forClient is an inode as clients see it: whether it has extended
// attributes, not their values (reading one is a getxattr, which checks
// read permission).
func forClient(a *fsproto.Attr) *fsproto.Attr {
	if a == nil || len(a.Xattr) == 0 {
		return a
	}
	c := *a
	c.Xattr, c.Xattrs = nil, true
	return &c
}

func (e *Engine) do(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if !fsproto.ValidFSID(r.FS) {
		return nil, errno(syscall.ENODEV, "invalid file system id")
	}
	switch r.Op {
	case fsproto.OpLookup:
		return e.lookup(ctx, r)
	case fsproto.OpGetattr, fsproto.OpOpen:
		n, err := e.load(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		return &fsproto.Response{Attr: n.a}, nil
	case fsproto.OpSetattr:
		return e.setattr(ctx, r)
	case fsproto.OpMknod:
		return e.mknod(ctx, r)
	case fsproto.OpTmpfile:
		return e.tmpfile(ctx, r)
	case fsproto.OpLink:
		return e.link(ctx, r)
	case fsproto.OpUnlink:
		return e.unlink(ctx, r)
	case fsproto.OpRmdir:
		return e.rmdir(ctx, r)
	case fsproto.OpRename:
		return e.rename(ctx, r)
	case fsproto.OpReaddir:
		return e.readdir(ctx, r)
	case fsproto.OpReadBlocks:
		return e.readBlocks(ctx, r)
	case fsproto.OpCommit:
		return e.commit(ctx, r)
	case fsproto.OpGetxattr, fsproto.OpListxattr, fsproto.OpSetxattr, fsproto.OpRemovexattr:
		return e.xattr(ctx, r)
	case fsproto.OpStatfs:
		return e.statfs(ctx, r)
	case fsproto.OpSessionOpen:
		return e.openSession(ctx, r)
	case fsproto.OpSessionKeepAlive:
		return e.keepAlive(ctx, r)
	case fsproto.OpSessionClose:
		return e.closeSession(ctx, r)
	case fsproto.OpHold:
		return e.hold(ctx, r)
	case fsproto.OpUnhold:
		_, err := e.Client.Delete(ctx, state.HoldPrefix(r.FS, r.Ino)+r.Session)
		return &fsproto.Response{}, err
	case fsproto.OpChunkURLs:
		return e.chunkURLs(ctx, r)
	case fsproto.OpGetlk:
		return e.getlk(ctx, r)
	case fsproto.OpSetlk:
		return e.setlk(ctx, r)
	}
	return nil, errno(syscall.ENOSYS, "unknown operation %q", r.Op)
}

// tmpfile creates an unnamed regular file (O_TMPFILE): an orphan from
// birth, held by the caller's session.
// dropLink removes one link of n (already guarded by the caller); the last
// link makes it an orphan, kept while a session holds it open.
// truncateOps drops a file's data beyond size: whole blocks by one range
// delete, the block the new end falls in by trimming its slices.
// MaxSlices is how many slices a block may gather before it is compacted.
// MaxCommitBlocks bounds the blocks one commit touches (one transaction).
// Usage is a file system's size in bytes and its number of inodes, from a
// scan at most maxAge old.
// scan reads every key under prefix in pages, at revision rev (0: now).
func (e *Engine) scan(ctx context.Context, prefix string, rev int64, fn func(key string, val []byte, modRev, createRev int64) error) error {
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := e.Client.Get(ctx, start, opts...)
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			if err := fn(string(kv.Key), kv.Value, kv.ModRevision, kv.CreateRevision); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
