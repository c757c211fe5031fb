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

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

// Engine runs the metadata operations against etcd.
type Engine struct {
	Client *clientv3.Client
	Chunks ChunkStore
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
func NewEngine(cli *clientv3.Client, chunks ChunkStore, log *slog.Logger) *Engine {
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
	n := &node{}
	var times *Times
	var trev int64
	for _, kv := range resp.Kvs {
		switch string(kv.Key) {
		case state.InodeKey(fs, ino):
			n.a = &fsproto.Attr{}
			if err := json.Unmarshal(kv.Value, n.a); err != nil {
				return nil, fmt.Errorf("inode %d: %w", ino, err)
			}
			n.rev, n.crev = kv.ModRevision, kv.CreateRevision
		case state.DirTimesKey(fs, ino):
			times = &Times{}
			json.Unmarshal(kv.Value, times)
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
	if !ValidFSID(r.FS) {
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
	case fsproto.OpGetlk:
		return e.getlk(ctx, r)
	case fsproto.OpSetlk:
		return e.setlk(ctx, r)
	}
	return nil, errno(syscall.ENOSYS, "unknown operation %q", r.Op)
}

func (e *Engine) lookup(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkName(r.Name); err != nil {
		return nil, err
	}
	for i := 0; i < attempts; i++ {
		d, _, err := e.dentry(ctx, r.FS, r.Parent, r.Name)
		if err != nil {
			return nil, err
		}
		if d == nil {
			// A missing parent is ENOENT too.
			return nil, errno(syscall.ENOENT, "no entry %q", r.Name)
		}
		n, err := e.load(ctx, r.FS, d.Ino)
		var fe *Error
		if errors.As(err, &fe) && fe.Errno == syscall.ENOENT {
			continue // removed between the two reads
		} else if err != nil {
			return nil, err
		}
		return &fsproto.Response{Attr: n.a}, nil
	}
	return nil, errContention
}

func (e *Engine) mknod(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkName(r.Name); err != nil {
		return nil, err
	}
	typ := r.Mode & syscall.S_IFMT
	switch typ {
	case syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return nil, errno(syscall.EINVAL, "invalid file type %o", typ)
	}
	if typ == syscall.S_IFLNK && (r.Target == "" || len(r.Target) >= 4096) {
		return nil, errno(syscall.ENAMETOOLONG, "symlink target of %d bytes", len(r.Target))
	}
	for i := 0; i < attempts; i++ {
		p, err := e.parent(ctx, r.FS, r.Parent)
		if err != nil {
			return nil, err
		}
		if !p.a.IsDir() {
			e.forget(r.FS, r.Parent)
			return nil, errno(syscall.ENOTDIR, "parent is not a directory")
		}
		t := now()
		a := &fsproto.Attr{Ino: randIno(), Mode: r.Mode, Uid: r.Uid, Gid: r.Gid, Nlink: 1, Atime: t, Mtime: t, Ctime: t, Rdev: r.Rdev, By: r.Session}
		if typ == syscall.S_IFLNK {
			a.Mode, a.Target, a.Size = syscall.S_IFLNK|0o777, r.Target, uint64(len(r.Target))
		}
		if p.a.Mode&syscall.S_ISGID != 0 {
			a.Gid = p.a.Gid
			if typ == syscall.S_IFDIR {
				a.Mode |= syscall.S_ISGID
			}
		}
		dk := state.DentryKey(r.FS, r.Parent, r.Name)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(dk), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(state.InodeKey(r.FS, a.Ino)), "=", 0),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Parent)), "=", p.rev),
		}
		ops := []clientv3.Op{clientv3.OpPut(dk, marshal(&Dentry{Ino: a.Ino, Mode: typ, By: r.Session}))}
		a.Parent = r.Parent
		pa := *p.a
		pa.Mtime, pa.Ctime, pa.By = t, t, r.Session
		if typ == syscall.S_IFDIR {
			a.Nlink = 2
			pa.Nlink++
			e.forget(r.FS, r.Parent)
			ops = append(ops, clientv3.OpPut(state.InodeKey(r.FS, r.Parent), storeAttr(&pa)))
		} else {
			ops = append(ops, clientv3.OpPut(state.DirTimesKey(r.FS, r.Parent), marshal(&Times{Mtime: t, Ctime: t, By: r.Session})))
		}
		ops = append(ops, clientv3.OpPut(state.InodeKey(r.FS, a.Ino), storeAttr(a)))
		resp, err := e.txn(ctx, cmps, ops, clientv3.OpGet(dk))
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			a.Rev = resp.Header.Revision
			return &fsproto.Response{Attr: a, Dir: &pa}, nil
		}
		e.forget(r.FS, r.Parent)
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			if r.Excl || typ != syscall.S_IFREG {
				return nil, errno(syscall.EEXIST, "%q exists", r.Name)
			}
			d := &Dentry{}
			json.Unmarshal(kvs[0].Value, d)
			n, err := e.load(ctx, r.FS, d.Ino)
			if err != nil {
				continue
			}
			if n.a.IsDir() {
				return nil, errno(syscall.EISDIR, "%q is a directory", r.Name)
			}
			return &fsproto.Response{Attr: n.a}, nil
		}
	}
	return nil, errContention
}

// tmpfile creates an unnamed regular file (O_TMPFILE): an orphan from
// birth, held by the caller's session.
func (e *Engine) tmpfile(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	p, err := e.dir(ctx, r.FS, r.Parent)
	if err != nil {
		return nil, err
	}
	lease, err := e.sessionLease(ctx, r.FS, r.Session)
	if err != nil {
		return nil, err
	}
	t := now()
	a := &fsproto.Attr{Ino: randIno(), Mode: syscall.S_IFREG | r.Mode&0o7777, Uid: r.Uid, Gid: r.Gid, Atime: t, Mtime: t, Ctime: t, By: r.Session, Parent: r.Parent}
	if p.a.Mode&syscall.S_ISGID != 0 {
		a.Gid = p.a.Gid
	}
	resp, err := e.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(state.InodeKey(r.FS, a.Ino)), "=", 0)}, []clientv3.Op{
		clientv3.OpPut(state.InodeKey(r.FS, a.Ino), storeAttr(a)),
		clientv3.OpPut(state.OrphanKey(r.FS, a.Ino), marshal(&Orphan{Since: t})),
		clientv3.OpPut(state.HoldPrefix(r.FS, a.Ino)+r.Session, "", clientv3.WithLease(lease)),
	})
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, errContention
	}
	a.Rev = resp.Header.Revision
	return &fsproto.Response{Attr: a}, nil
}

// dropLink removes one link of n (already guarded by the caller); the last
// link makes it an orphan, kept while a session holds it open.
func (e *Engine) dropLink(ctx context.Context, r *fsproto.Request, n *node, t int64) ([]clientv3.Op, error) {
	a := *n.a
	a.Nlink--
	a.Ctime, a.By = t, r.Session
	ops := []clientv3.Op{clientv3.OpPut(state.InodeKey(r.FS, a.Ino), storeAttr(&a))}
	if a.Nlink == 0 {
		ops = append(ops, clientv3.OpPut(state.OrphanKey(r.FS, a.Ino), marshal(&Orphan{Since: t})))
		if r.Held && r.Session != "" {
			lease, err := e.sessionLease(ctx, r.FS, r.Session)
			if err != nil {
				return nil, err
			}
			ops = append(ops, clientv3.OpPut(state.HoldPrefix(r.FS, a.Ino)+r.Session, "", clientv3.WithLease(lease)))
		}
	}
	return ops, nil
}

func (e *Engine) unlink(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkName(r.Name); err != nil {
		return nil, err
	}
	for i := 0; i < attempts; i++ {
		d, drev, n, err := e.named(ctx, r.FS, r.Parent, r.Name)
		if err != nil {
			return nil, err
		}
		if n == nil {
			continue // removed between the two reads
		}
		if n.a.IsDir() {
			return nil, errno(syscall.EISDIR, "%q is a directory", r.Name)
		}
		t := now()
		dk := state.DentryKey(r.FS, r.Parent, r.Name)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(dk), "=", drev),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, d.Ino)), "=", n.rev),
		}
		ops := []clientv3.Op{clientv3.OpDelete(dk), clientv3.OpPut(state.DirTimesKey(r.FS, r.Parent), marshal(&Times{Mtime: t, Ctime: t, By: r.Session}))}
		more, err := e.dropLink(ctx, r, n, t)
		if err != nil {
			return nil, err
		}
		resp, err := e.txn(ctx, cmps, append(ops, more...))
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			out := &fsproto.Response{}
			if n.a.Nlink == 1 {
				out.Ino = n.a.Ino // now an orphan: a client with it open holds it
			}
			return out, nil
		}
	}
	return nil, errContention
}

func emptyDir(fs string, ino uint64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(state.DentryPrefix(fs, ino)), "=", 0).WithPrefix()
}

func (e *Engine) dirEmpty(ctx context.Context, fs string, ino uint64) (bool, error) {
	resp, err := e.Client.Get(ctx, state.DentryPrefix(fs, ino), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, err
	}
	return resp.Count == 0, nil
}

func (e *Engine) rmdir(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkName(r.Name); err != nil {
		return nil, err
	}
	for i := 0; i < attempts; i++ {
		d, drev, n, err := e.named(ctx, r.FS, r.Parent, r.Name)
		if err != nil {
			return nil, err
		}
		if n == nil {
			continue
		}
		if !n.a.IsDir() {
			return nil, errno(syscall.ENOTDIR, "%q is not a directory", r.Name)
		}
		p, err := e.load(ctx, r.FS, r.Parent)
		if err != nil {
			return nil, err
		}
		t := now()
		pa := *p.a
		pa.Nlink--
		pa.Mtime, pa.Ctime, pa.By = t, t, r.Session
		dk := state.DentryKey(r.FS, r.Parent, r.Name)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(dk), "=", drev),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, d.Ino)), "=", n.rev),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Parent)), "=", p.rev),
			emptyDir(r.FS, d.Ino),
		}
		ops := []clientv3.Op{clientv3.OpDelete(dk), clientv3.OpDelete(state.InodeKey(r.FS, d.Ino)), clientv3.OpDelete(state.DirTimesKey(r.FS, d.Ino)),
			clientv3.OpPut(state.InodeKey(r.FS, r.Parent), storeAttr(&pa))}
		resp, err := e.txn(ctx, cmps, ops)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			return &fsproto.Response{}, nil
		}
		if empty, err := e.dirEmpty(ctx, r.FS, d.Ino); err != nil {
			return nil, err
		} else if !empty {
			return nil, errno(syscall.ENOTEMPTY, "%q is not empty", r.Name)
		}
	}
	return nil, errContention
}

func (e *Engine) link(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkName(r.NewName); err != nil {
		return nil, err
	}
	for i := 0; i < attempts; i++ {
		n, err := e.load(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		if n.a.IsDir() {
			return nil, errno(syscall.EPERM, "hard link to a directory")
		}
		// An unlinked inode may be linked again (the kernel allows it only
		// for O_TMPFILE files): it stops being an orphan.
		p, err := e.dir(ctx, r.FS, r.NewParent)
		if err != nil {
			return nil, err
		}
		t := now()
		a := *n.a
		a.Nlink++
		a.Ctime, a.By = t, r.Session
		if a.Parent == 0 || n.a.Nlink == 0 {
			a.Parent = r.NewParent
		}
		dk := state.DentryKey(r.FS, r.NewParent, r.NewName)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(dk), "=", 0),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Ino)), "=", n.rev),
			clientv3.Compare(clientv3.CreateRevision(state.InodeKey(r.FS, r.NewParent)), "=", p.crev),
		}
		ops := []clientv3.Op{
			clientv3.OpPut(dk, marshal(&Dentry{Ino: r.Ino, Mode: a.Mode & syscall.S_IFMT, By: r.Session})),
			clientv3.OpPut(state.InodeKey(r.FS, r.Ino), storeAttr(&a)),
			clientv3.OpPut(state.DirTimesKey(r.FS, r.NewParent), marshal(&Times{Mtime: t, Ctime: t, By: r.Session})),
		}
		if n.a.Nlink == 0 {
			ops = append(ops, clientv3.OpDelete(state.OrphanKey(r.FS, r.Ino)), clientv3.OpDelete(state.HoldPrefix(r.FS, r.Ino), clientv3.WithPrefix()))
		}
		resp, err := e.txn(ctx, cmps, ops, clientv3.OpGet(dk, clientv3.WithCountOnly()))
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			a.Rev = resp.Header.Revision
			return &fsproto.Response{Attr: &a}, nil
		}
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return nil, errno(syscall.EEXIST, "%q exists", r.NewName)
		}
	}
	return nil, errContention
}

func (e *Engine) readdir(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	n, err := e.dir(ctx, r.FS, r.Ino)
	if err != nil {
		return nil, err
	}
	limit := r.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	pfx := state.DentryPrefix(r.FS, r.Ino)
	start := pfx
	if r.After != "" {
		start = pfx + r.After + "\x00"
	}
	resp, err := e.Client.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(pfx)), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	out := &fsproto.Response{More: resp.More, Attr: n.a}
	for _, kv := range resp.Kvs {
		d := Dentry{}
		json.Unmarshal(kv.Value, &d)
		out.Entries = append(out.Entries, fsproto.Dirent{Name: strings.TrimPrefix(string(kv.Key), pfx), Ino: d.Ino, Mode: d.Mode})
	}
	return out, nil
}

// truncateOps drops a file's data beyond size: whole blocks by one range
// delete, the block the new end falls in by trimming its slices.
func (e *Engine) truncateOps(ctx context.Context, fs string, ino uint64, size uint64) ([]clientv3.Cmp, []clientv3.Op, error) {
	first := uint32((size + fsproto.BlockSize - 1) / fsproto.BlockSize)
	ops := []clientv3.Op{clientv3.OpDelete(state.BlockKey(fs, ino, first), clientv3.WithRange(clientv3.GetPrefixRangeEnd(state.BlockPrefix(fs, ino))))}
	var cmps []clientv3.Cmp
	if cut := uint32(size % fsproto.BlockSize); cut != 0 {
		blk := uint32(size / fsproto.BlockSize)
		k := state.BlockKey(fs, ino, blk)
		resp, err := e.Client.Get(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		if len(resp.Kvs) > 0 {
			b := Blocks{}
			json.Unmarshal(resp.Kvs[0].Value, &b)
			var kept []fsproto.Slice
			for _, s := range b.Slices {
				if s.Off >= cut {
					continue
				}
				if s.Off+s.Len > cut {
					s.Len = cut - s.Off
				}
				kept = append(kept, s)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision))
			if len(kept) == 0 {
				ops = append(ops, clientv3.OpDelete(k))
			} else {
				ops = append(ops, clientv3.OpPut(k, marshal(&Blocks{Slices: kept, By: b.By})))
			}
		}
	}
	return cmps, ops, nil
}

func (e *Engine) setattr(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	for i := 0; i < attempts; i++ {
		n, err := e.load(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		a := *n.a
		t := now()
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Ino)), "=", n.rev)}
		var ops []clientv3.Op
		if r.Valid&fsproto.SetMode != 0 {
			a.Mode = a.Mode&syscall.S_IFMT | r.Mode&0o7777
		}
		if r.Valid&fsproto.SetUid != 0 {
			a.Uid = r.Uid
		}
		if r.Valid&fsproto.SetGid != 0 {
			a.Gid = r.Gid
		}
		if r.Valid&fsproto.SetSize != 0 {
			if a.IsDir() {
				return nil, errno(syscall.EISDIR, "truncate of a directory")
			}
			if !a.IsReg() {
				return nil, errno(syscall.EINVAL, "truncate of a special file")
			}
			if r.Size < a.Size {
				c, o, err := e.truncateOps(ctx, r.FS, r.Ino, r.Size)
				if err != nil {
					return nil, err
				}
				cmps, ops = append(cmps, c...), append(ops, o...)
			}
			if r.Size != a.Size {
				a.Mtime = t
			}
			a.Size = r.Size
		}
		switch {
		case r.Valid&fsproto.SetAtimeNow != 0:
			a.Atime = t
		case r.Valid&fsproto.SetAtime != 0:
			a.Atime = r.Atime
		}
		switch {
		case r.Valid&fsproto.SetMtimeNow != 0:
			a.Mtime = t
		case r.Valid&fsproto.SetMtime != 0:
			a.Mtime = r.Mtime
		}
		if r.Valid&(fsproto.SetMtime|fsproto.SetMtimeNow) != 0 && a.IsDir() {
			ops = append(ops, clientv3.OpDelete(state.DirTimesKey(r.FS, r.Ino)))
		}
		a.Ctime, a.By = t, r.Session
		ops = append(ops, clientv3.OpPut(state.InodeKey(r.FS, r.Ino), storeAttr(&a)))
		resp, err := e.txn(ctx, cmps, ops)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			a.Rev = resp.Header.Revision
			return &fsproto.Response{Attr: &a}, nil
		}
	}
	return nil, errContention
}

func (e *Engine) readBlocks(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if r.BlkEnd < r.Blk {
		return nil, errno(syscall.EINVAL, "empty block range")
	}
	resp, err := e.Client.Get(ctx, state.BlockKey(r.FS, r.Ino, r.Blk), clientv3.WithRange(state.BlockKey(r.FS, r.Ino, r.BlkEnd+1)))
	if err != nil {
		return nil, err
	}
	out := &fsproto.Response{Blocks: map[uint32][]fsproto.Slice{}, Rev: resp.Header.Revision}
	pfx := state.BlockPrefix(r.FS, r.Ino)
	for _, kv := range resp.Kvs {
		var blk uint32
		fmt.Sscanf(strings.TrimPrefix(string(kv.Key), pfx), "%x", &blk)
		b := Blocks{}
		json.Unmarshal(kv.Value, &b)
		out.Blocks[blk] = b.Slices
	}
	return out, nil
}

// MaxSlices is how many slices a block may gather before it is compacted.
const MaxSlices = 16

// MaxCommitBlocks bounds the blocks one commit touches (one transaction).
const MaxCommitBlocks = 100

func (e *Engine) commit(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if len(r.Slices) == 0 {
		return nil, errno(syscall.EINVAL, "commit without slices")
	}
	blocks := map[uint32][]fsproto.Slice{}
	var order []uint32
	chunks := map[string]bool{}
	end := r.Size
	for _, s := range r.Slices {
		if s.Len == 0 || uint64(s.Off)+uint64(s.Len) > fsproto.BlockSize || !fsproto.ValidChunkID(s.ID) {
			return nil, errno(syscall.EINVAL, "invalid slice %+v", s)
		}
		if _, ok := blocks[s.Blk]; !ok {
			order = append(order, s.Blk)
		}
		blocks[s.Blk] = append(blocks[s.Blk], s.Slice)
		chunks[s.ID] = true
		end = max(end, uint64(s.Blk)*fsproto.BlockSize+uint64(s.Off)+uint64(s.Len))
	}
	if len(order) > MaxCommitBlocks {
		return nil, errno(syscall.EFBIG, "commit touches %d blocks, at most %d", len(order), MaxCommitBlocks)
	}
	// The chunks reach the disk before any metadata names them.
	if err := e.Chunks.Sync(ctx); err != nil {
		return nil, err
	}
	var compact []uint32
	for i := 0; i < attempts; i++ {
		// Chunk collection bumps the gc key before it reads references; the
		// transaction below is guarded on it, so a commit whose age check
		// came before a collection started cannot land after it.
		gc, err := e.Client.Get(ctx, state.FSGCKey(r.FS))
		if err != nil {
			return nil, err
		}
		var gcRev int64
		if len(gc.Kvs) > 0 {
			gcRev = gc.Kvs[0].ModRevision
		}
		for id := range chunks {
			age, err := e.chunkAge(ctx, r.FS, id)
			if err != nil || age > e.ChunkGrace/2 {
				// The client still holds the data: it uploads it again
				// under a new id.
				return nil, errno(fsproto.ErrChunkExpired, "chunk %s is missing or too old to commit", id)
			}
		}
		n, err := e.load(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		if !n.a.IsReg() {
			return nil, errno(syscall.EINVAL, "write to a non-regular file")
		}
		gets := make([]clientv3.Op, len(order))
		for j, blk := range order {
			gets[j] = clientv3.OpGet(state.BlockKey(r.FS, r.Ino, blk))
		}
		cur, err := e.Client.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return nil, err
		}
		t := now()
		a := *n.a
		a.Size = max(a.Size, end)
		a.Mtime, a.Ctime, a.By = t, t, r.Session
		if r.Mtime != 0 {
			a.Mtime = r.Mtime
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Ino)), "=", n.rev),
			clientv3.Compare(clientv3.ModRevision(state.FSGCKey(r.FS)), "=", gcRev)}
		ops := []clientv3.Op{clientv3.OpPut(state.InodeKey(r.FS, r.Ino), storeAttr(&a))}
		compact = compact[:0]
		for j, blk := range order {
			k := state.BlockKey(r.FS, r.Ino, blk)
			b := Blocks{}
			var rev int64
			if kvs := cur.Responses[j].GetResponseRange().Kvs; len(kvs) > 0 {
				json.Unmarshal(kvs[0].Value, &b)
				rev = kvs[0].ModRevision
			}
			// Slices the new ones hide entirely are dropped: readers
			// would fetch them for nothing, and their chunks can go.
			b.Slices = fsproto.Visible(append(b.Slices, blocks[blk]...))
			b.By = r.Session
			if len(b.Slices) > MaxSlices {
				compact = append(compact, blk)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
			ops = append(ops, clientv3.OpPut(k, marshal(&b)))
		}
		resp, err := e.txn(ctx, cmps, ops)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			for _, blk := range compact {
				select {
				case e.compact <- compactJob{fs: r.FS, ino: r.Ino, blk: blk}:
				default: // the periodic pass will find it
				}
			}
			a.Rev = resp.Header.Revision
			return &fsproto.Response{Attr: &a}, nil
		}
	}
	return nil, errContention
}

func (e *Engine) xattr(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if r.Op != "listxattr" && (r.Key == "" || len(r.Key) > 255) {
		return nil, errno(syscall.ERANGE, "invalid xattr name")
	}
	for i := 0; i < attempts; i++ {
		n, err := e.load(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		a := *n.a
		switch r.Op {
		case fsproto.OpGetxattr:
			v, ok := a.Xattr[r.Key]
			if !ok {
				return nil, errno(syscall.ENODATA, "no xattr %q", r.Key)
			}
			return &fsproto.Response{Value: v}, nil
		case fsproto.OpListxattr:
			out := &fsproto.Response{}
			for k := range a.Xattr {
				out.Names = append(out.Names, k)
			}
			return out, nil
		case fsproto.OpSetxattr:
			if strings.HasPrefix(r.Key, "system.") {
				return nil, errno(syscall.EOPNOTSUPP, "system xattrs (ACLs) are not supported")
			}
			_, exists := a.Xattr[r.Key]
			if r.Flags&1 != 0 && exists { // XATTR_CREATE
				return nil, errno(syscall.EEXIST, "xattr %q exists", r.Key)
			}
			if r.Flags&2 != 0 && !exists { // XATTR_REPLACE
				return nil, errno(syscall.ENODATA, "no xattr %q", r.Key)
			}
			if len(r.Value) > fsproto.MaxXattrSize {
				return nil, errno(syscall.E2BIG, "xattr value of %d bytes", len(r.Value))
			}
			total := len(r.Key) + len(r.Value)
			for k, v := range a.Xattr {
				if k != r.Key {
					total += len(k) + len(v)
				}
			}
			if total > fsproto.MaxXattrSize {
				return nil, errno(syscall.ENOSPC, "xattrs of one inode exceed %d bytes", fsproto.MaxXattrSize)
			}
			x := make(map[string][]byte, len(a.Xattr)+1)
			for k, v := range a.Xattr {
				x[k] = v
			}
			x[r.Key] = append([]byte{}, r.Value...)
			a.Xattr = x
		case fsproto.OpRemovexattr:
			if _, ok := a.Xattr[r.Key]; !ok {
				return nil, errno(syscall.ENODATA, "no xattr %q", r.Key)
			}
			x := make(map[string][]byte, len(a.Xattr))
			for k, v := range a.Xattr {
				if k != r.Key {
					x[k] = v
				}
			}
			a.Xattr = x
		}
		a.Ctime, a.By = now(), r.Session
		resp, err := e.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Ino)), "=", n.rev)},
			[]clientv3.Op{clientv3.OpPut(state.InodeKey(r.FS, r.Ino), storeAttr(&a))})
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			return &fsproto.Response{}, nil
		}
	}
	return nil, errContention
}

func (e *Engine) statfs(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	st, err := e.Usage(ctx, r.FS, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &fsproto.Response{Statfs: st}, nil
}

// Usage is a file system's size in bytes and its number of inodes, from a
// scan at most maxAge old.
func (e *Engine) Usage(ctx context.Context, fs string, maxAge time.Duration) (*fsproto.Statfs, error) {
	e.usageMu.Lock()
	u, ok := e.usage[fs]
	e.usageMu.Unlock()
	if ok && time.Since(u.at) < maxAge {
		return &u.st, nil
	}
	st := fsproto.Statfs{}
	pfx := state.FSMetaPrefix(fs) + "i/"
	err := e.scan(ctx, pfx, 0, func(k string, v []byte, _, _ int64) error {
		if strings.HasSuffix(k, "/t") {
			return nil
		}
		a := fsproto.Attr{}
		json.Unmarshal(v, &a)
		st.Files++
		st.Bytes += a.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.usageMu.Lock()
	e.usage[fs] = usageEntry{at: time.Now(), st: st}
	e.usageMu.Unlock()
	return &st, nil
}

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
