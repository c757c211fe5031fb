package fsmount

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/berth-project/berth/internal/fsproto"
)

// cacheTTL is how long the kernel may use an entry or attributes without
// asking. Changes made on other hosts are pushed (the server's change
// stream) and invalidate sooner, and every open revalidates with the
// server; NFS clients, EFS's among them, cache attributes 3 to 60 s.
const cacheTTL = 5 * time.Second

// FS is the raw FUSE file system of one mount. Kernel node ids are the
// file system's inode numbers.
type FS struct {
	fuse.RawFileSystem
	c     *Conn
	srv   *fuse.Server
	log   *slog.Logger
	ttl   time.Duration
	ctx   context.Context
	cache *chunkCache
	upSem chan struct{}
	// xattrGen counts what may change extended attributes (this mount's
	// changes, pushed changes, reconnects): a reply that raced one of
	// them does not say that an inode has none.
	xattrGen atomic.Uint64
	// attrGen counts changes that may make attributes read before them
	// stale: this mount's own changes and every other session's event.
	attrGen atomic.Uint64

	mu      sync.Mutex
	nodes   map[uint64]*inode
	handles map[uint64]*handle
	nextFh  uint64
	// dirs holds directory attributes this mount's own creates returned,
	// so the kernel's next getattr of the directory (it drops its copy
	// after every create) needs no round trip; dirGen counts the changes
	// of each directory a create is under way in, so a reply that raced
	// another change is not kept.
	dirs   map[uint64]cachedDir
	dirGen map[uint64]*dirWatch
	// whole holds the directories this mount made itself, with every name
	// in them, for as long as nothing else is known to have changed them:
	// the kernel's lookup before each create there is answered here.
	whole map[uint64]*wholeDir
}

type wholeDir struct {
	names   map[string]bool
	expires time.Time
}

type dirWatch struct {
	creates int // changes under way (creates, unlinks)
	changes uint64
}

type cachedDir struct {
	a       fsproto.Attr
	expires time.Time
}

type handle struct {
	ino    uint64
	append bool
	// An open directory: its listing, and the page of it held in dir.
	list *dirList
	dir  []fsproto.Dirent
	// attrs are dir's attributes as the directory was read (readdirplus),
	// valid while attrGen is still gen and for the attribute timeout.
	attrs []*fsproto.Attr
	gen   uint64
	at    time.Time
}

func newFS(ctx context.Context, c *Conn, log *slog.Logger, cacheBytes int, get func(context.Context, string) (fetched, error)) *FS {
	f := &FS{RawFileSystem: fuse.NewDefaultRawFileSystem(), c: c, log: log, ttl: cacheTTL, ctx: ctx,
		upSem: make(chan struct{}, 8), nodes: map[uint64]*inode{}, handles: map[uint64]*handle{},
		dirs: map[uint64]cachedDir{}, dirGen: map[uint64]*dirWatch{}, whole: map[uint64]*wholeDir{}}
	f.cache = newChunkCache(cacheBytes, get)
	f.nodes[fsproto.RootIno] = newInode(fsproto.RootIno)
	f.nodes[fsproto.RootIno].lookups = 1
	return f
}

func (f *FS) String() string { return "berth:" + f.c.FS }

func (f *FS) Init(s *fuse.Server) { f.srv = s }

func ctxOf(cancel <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		select {
		case <-cancel:
			stop()
		case <-ctx.Done():
		}
	}()
	return ctx, stop
}

// opCtx is the context of one operation. Kernel interrupts are not
// honoured here: Go programs are signalled all the time (preemption), and
// an operation half done on the server is worse than one finished. Only a
// blocking lock wait gives up on an interrupt.
func (f *FS) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(f.ctx, 5*time.Minute)
}

func st(e syscall.Errno) fuse.Status { return fuse.Status(e) }

// node returns the state of ino, creating it; ref counts a kernel lookup.
func (f *FS) node(ino uint64, ref bool) *inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[ino]
	if !ok {
		n = newInode(ino)
		f.nodes[ino] = n
	}
	if ref {
		n.lookups++
	}
	return n
}

func (f *FS) known(ino uint64) *inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[ino]
}

func (f *FS) fillAttr(a *fsproto.Attr, out *fuse.Attr) {
	size := a.Size
	if n := f.known(a.Ino); n != nil {
		n.mu.Lock()
		if n.local() {
			size = max(size, n.size)
		}
		n.mu.Unlock()
	}
	*out = fuse.Attr{Ino: a.Ino, Size: size, Blocks: (size + 511) / 512, Mode: a.Mode, Nlink: a.Nlink,
		Owner: fuse.Owner{Uid: a.Uid, Gid: a.Gid}, Rdev: a.Rdev, Blksize: 1 << 20}
	out.Atime, out.Atimensec = uint64(a.Atime/1e9), uint32(a.Atime%1e9)
	out.Mtime, out.Mtimensec = uint64(a.Mtime/1e9), uint32(a.Mtime%1e9)
	out.Ctime, out.Ctimensec = uint64(a.Ctime/1e9), uint32(a.Ctime%1e9)
}

func (f *FS) entry(a *fsproto.Attr, out *fuse.EntryOut) {
	n := f.node(a.Ino, true)
	n.mu.Lock()
	if !n.local() && n.opens == 0 {
		n.size = a.Size
	}
	n.learnXattrs(a)
	n.mu.Unlock()
	out.NodeId, out.Generation = a.Ino, 1
	out.SetEntryTimeout(f.ttl)
	out.SetAttrTimeout(f.ttl)
	f.fillAttr(a, &out.Attr)
}

func (f *FS) op(cancel <-chan struct{}, h *fuse.InHeader, r *fsproto.Request) (*fsproto.Response, fuse.Status) {
	ctx, stop := f.opCtx()
	defer stop()
	if h != nil {
		r.Uid, r.Gid = h.Uid, h.Gid
	}
	changes := !readOnlyOps[r.Op]
	if changes {
		f.attrGen.Add(1)
		f.dirChanged(r.Parent, r.NewParent, r.Ino)
		if r.Op != fsproto.OpMknod {
			f.notWhole(r.Parent, r.NewParent, r.Ino)
		}
	}
	if changes && r.Ino != 0 {
		f.forgetXattrs(r.Ino)
	}
	gen := f.xattrGen.Load()
	resp, e := f.c.Op(ctx, r)
	if changes {
		f.dirChanged(r.Parent, r.NewParent, r.Ino)
	}
	if e == 0 && resp.Attr != nil && f.xattrGen.Load() == gen {
		if n := f.known(resp.Attr.Ino); n != nil {
			n.mu.Lock()
			n.learnXattrs(resp.Attr)
			n.mu.Unlock()
		}
	}
	return resp, st(e)
}

// readOnlyOps change no directory's attributes.
var readOnlyOps = map[fsproto.Op]bool{fsproto.OpLookup: true, fsproto.OpGetattr: true, fsproto.OpOpen: true, fsproto.OpReaddir: true,
	fsproto.OpReadBlocks: true, fsproto.OpGetxattr: true, fsproto.OpListxattr: true, fsproto.OpStatfs: true, fsproto.OpGetlk: true}

// dirChanged forgets the cached attributes of the given inodes (0s are
// skipped) and counts a change of each.
func (f *FS) dirChanged(inos ...uint64) {
	f.mu.Lock()
	for _, ino := range inos {
		delete(f.dirs, ino)
		if w, ok := f.dirGen[ino]; ok {
			w.changes++
		}
	}
	f.mu.Unlock()
}

// notWhole forgets that this mount knows every name in these directories.
func (f *FS) notWhole(inos ...uint64) {
	f.mu.Lock()
	for _, ino := range inos {
		delete(f.whole, ino)
	}
	f.mu.Unlock()
}

// absent reports that name is known not to exist in parent: the mount
// made parent, has seen every name made in it since, and no other mount
// has changed it (their changes are pushed, as for the kernel's caches).
func (f *FS) absent(parent uint64, name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.whole[parent]
	if !ok {
		return false
	}
	if time.Now().After(w.expires) {
		delete(f.whole, parent)
		return false
	}
	return !w.names[name]
}

// cachedDirAttr returns a directory's attributes as this mount's last
// create in it left them, while they are fresh.
func (f *FS) cachedDirAttr(ino uint64) (fsproto.Attr, time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.dirs[ino]
	left := time.Until(c.expires)
	if !ok || left <= 0 {
		return fsproto.Attr{}, 0, false
	}
	return c.a, left, true
}

func (f *FS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if f.absent(h.NodeId, name) {
		return fuse.ENOENT
	}
	resp, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpLookup, Parent: h.NodeId, Name: name})
	if !s.Ok() {
		return s
	}
	f.entry(resp.Attr, out)
	f.named(resp.Attr.Ino, h.NodeId, name)
	return fuse.OK
}

func (f *FS) Forget(ino, nlookup uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[ino]
	if !ok || ino == fsproto.RootIno {
		return
	}
	n.lookups -= min(n.lookups, nlookup)
	n.mu.Lock()
	idle := n.lookups == 0 && n.opens == 0 && !n.local() && n.inflight == 0
	n.mu.Unlock()
	if idle {
		delete(f.nodes, ino)
	}
}

func (f *FS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if a, left, ok := f.cachedDirAttr(in.NodeId); ok {
		f.fillAttr(&a, &out.Attr)
		out.SetTimeout(left)
		return fuse.OK
	}
	resp, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpGetattr, Ino: in.NodeId})
	if !s.Ok() {
		return s
	}
	f.fillAttr(resp.Attr, &out.Attr)
	out.SetTimeout(f.ttl)
	return fuse.OK
}

func (f *FS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	ctx, stop := f.opCtx()
	defer stop()
	r := &fsproto.Request{Op: fsproto.OpSetattr, Ino: in.NodeId}
	if m, ok := in.GetMode(); ok {
		r.Valid |= fsproto.SetMode
		r.Mode = m
	}
	if u, ok := in.GetUID(); ok {
		r.Valid |= fsproto.SetUid
		r.Uid = u
	}
	if g, ok := in.GetGID(); ok {
		r.Valid |= fsproto.SetGid
		r.Gid = g
	}
	n := f.node(in.NodeId, false)
	if sz, ok := in.GetSize(); ok {
		// Writes before the truncate must land before it.
		if e := f.flush(ctx, n); e != 0 {
			return st(e)
		}
		r.Valid |= fsproto.SetSize
		r.Size = sz
	}
	if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
		r.Valid |= fsproto.SetAtimeNow
	} else if t, ok := in.GetATime(); ok {
		r.Valid |= fsproto.SetAtime
		r.Atime = t.UnixNano()
	}
	if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
		r.Valid |= fsproto.SetMtimeNow
	} else if t, ok := in.GetMTime(); ok {
		r.Valid |= fsproto.SetMtime
		r.Mtime = t.UnixNano()
	}
	// A directory's attributes kept from a create in it are stale now:
	// the kernel checks search and write permission with what getattr
	// answers (default_permissions), so a revoked permission must show at
	// once, and a reply that raced this change must not be kept.
	f.dirChanged(in.NodeId)
	resp, e := f.c.Op(ctx, r) // Uid/Gid here are the new owner, not the caller
	f.dirChanged(in.NodeId)
	if e != 0 {
		return st(e)
	}
	if r.Valid&fsproto.SetSize != 0 {
		n.mu.Lock()
		n.size = r.Size
		n.blocks = nil
		n.rev = resp.Attr.Rev
		n.mu.Unlock()
	}
	f.fillAttr(resp.Attr, &out.Attr)
	out.SetTimeout(f.ttl)
	return fuse.OK
}

// dirOp runs an operation that changes one directory (a create or an
// unlink) and keeps the directory's attributes its reply carries, unless
// something else changed the directory meanwhile: the kernel asks for them
// after every change (to check permissions), and need not wait for the
// server.
func (f *FS) dirOp(cancel <-chan struct{}, h *fuse.InHeader, r *fsproto.Request) (*fsproto.Response, fuse.Status) {
	f.mu.Lock()
	w := f.dirGen[r.Parent]
	if w == nil {
		w = &dirWatch{}
		f.dirGen[r.Parent] = w
	}
	w.creates++
	before := w.changes
	f.mu.Unlock()
	resp, s := f.op(cancel, h, r)
	f.mu.Lock()
	// op counts this change twice, before and after; more means something
	// else changed the directory meanwhile.
	if s.Ok() && resp.Dir != nil && resp.Dir.Ino == r.Parent && w.changes == before+2 {
		if len(f.dirs) >= 4096 {
			clear(f.dirs) // a bound; forgetting only costs getattrs
		}
		f.dirs[r.Parent] = cachedDir{a: *resp.Dir, expires: time.Now().Add(f.ttl)}
	}
	if w.creates--; w.creates == 0 {
		delete(f.dirGen, r.Parent)
	}
	f.mu.Unlock()
	return resp, s
}

func (f *FS) mknod(cancel <-chan struct{}, h *fuse.InHeader, r *fsproto.Request, out *fuse.EntryOut) (*fsproto.Attr, fuse.Status) {
	r.Op, r.Parent = fsproto.OpMknod, h.NodeId
	resp, s := f.dirOp(cancel, h, r)
	if !s.Ok() {
		f.notWhole(r.Parent) // the name may exist after all
		return nil, s
	}
	f.mu.Lock()
	if w, ok := f.whole[r.Parent]; ok {
		w.names[r.Name] = true
		w.expires = time.Now().Add(f.ttl)
	}
	if resp.Attr.IsDir() {
		if len(f.whole) >= 4096 {
			clear(f.whole) // a bound; forgetting only costs lookups
		}
		f.whole[resp.Attr.Ino] = &wholeDir{names: map[string]bool{}, expires: time.Now().Add(f.ttl)}
	}
	f.mu.Unlock()
	f.entry(resp.Attr, out)
	return resp.Attr, fuse.OK
}

func (f *FS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	_, s := f.mknod(cancel, &in.InHeader, &fsproto.Request{Name: name, Mode: in.Mode, Rdev: in.Rdev, Excl: true}, out)
	return s
}

func (f *FS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	_, s := f.mknod(cancel, &in.InHeader, &fsproto.Request{Name: name, Mode: syscall.S_IFDIR | in.Mode&0o7777, Excl: true}, out)
	return s
}

func (f *FS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	_, s := f.mknod(cancel, h, &fsproto.Request{Name: name, Mode: syscall.S_IFLNK | 0o777, Target: target, Excl: true}, out)
	return s
}

func (f *FS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	resp, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpGetattr, Ino: h.NodeId})
	if !s.Ok() {
		return nil, s
	}
	if resp.Attr.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, fuse.EINVAL
	}
	return []byte(resp.Attr.Target), fuse.OK
}

func (f *FS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	a, s := f.mknod(cancel, &in.InHeader, &fsproto.Request{Name: name, Mode: syscall.S_IFREG | in.Mode&0o7777, Excl: in.Flags&syscall.O_EXCL != 0}, &out.EntryOut)
	if !s.Ok() {
		return s
	}
	f.open(a, in.Flags, &out.OpenOut)
	return fuse.OK
}

func (f *FS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	resp, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpTmpfile, Parent: in.NodeId, Mode: in.Mode})
	if !s.Ok() {
		return s
	}
	f.entry(resp.Attr, &out.EntryOut)
	f.open(resp.Attr, in.Flags, &out.OpenOut)
	n := f.node(resp.Attr.Ino, false)
	n.mu.Lock()
	n.held = true
	n.mu.Unlock()
	return fuse.OK
}

// open records an open of a file whose attributes were just read from the
// server. The kernel keeps its page cache only if the file has not changed
// since this mount last cached it: that is close-to-open consistency.
func (f *FS) open(a *fsproto.Attr, flags uint32, out *fuse.OpenOut) {
	n := f.node(a.Ino, false)
	n.mu.Lock()
	keep := n.rev != 0 && n.rev == a.Rev
	if !keep {
		n.blocks = nil
		n.rev = a.Rev
		if n.local() {
			n.size = max(n.size, a.Size)
		} else {
			n.size = a.Size
		}
	}
	n.opens++
	n.mu.Unlock()
	h := &handle{ino: a.Ino, append: flags&syscall.O_APPEND != 0}
	f.mu.Lock()
	f.nextFh++
	fh := f.nextFh
	f.handles[fh] = h
	f.mu.Unlock()
	out.Fh = fh
	if keep {
		out.OpenFlags |= fuse.FOPEN_KEEP_CACHE
	}
	if flags&syscall.O_DIRECT != 0 || h.append {
		// Appends are placed at the end this mount knows (fresh under a
		// lock), not where the kernel's cached size says.
		out.OpenFlags |= fuse.FOPEN_DIRECT_IO
	}
}

func (f *FS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	resp, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpOpen, Ino: in.NodeId, Flags: in.Flags})
	if !s.Ok() {
		return s
	}
	if resp.Attr.IsDir() {
		return fuse.Status(syscall.EISDIR)
	}
	f.open(resp.Attr, in.Flags, out)
	return fuse.OK
}

func (f *FS) handle(fh uint64) *handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handles[fh]
}

func (f *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	ctx, stop := f.opCtx()
	defer stop()
	n := f.node(in.NodeId, false)
	data, release, e := f.read(ctx, n, buf[:min(len(buf), int(in.Size))], in.Offset)
	if e != 0 {
		return nil, st(e)
	}
	return &readResult{data: data, release: release}, fuse.OK
}

// readResult is a read's reply; the chunk it may point into is released
// once the reply is written to the kernel.
type readResult struct {
	data    []byte
	release func()
}

func (r *readResult) Bytes([]byte) ([]byte, fuse.Status) { return r.data, fuse.OK }

// Slices makes go-fuse write the reply with writev(2) straight from the
// chunk, without first trying to splice it through a pipe (which fails,
// and logs, for every reply of 1 MiB: a pipe holds at most that).
func (r *readResult) Slices() ([][]byte, fuse.Status) { return [][]byte{r.data}, fuse.OK }

func (r *readResult) Size() int { return len(r.data) }
func (r *readResult) Done() {
	if r.release != nil {
		r.release()
	}
}

// go-fuse looks for Slices by this (unexported) interface.
var _ interface {
	Slices() ([][]byte, fuse.Status)
} = (*readResult)(nil)

// maxDirty is how many bytes one file may buffer before they are uploaded.
const maxDirty = 64 << 20

func (f *FS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	n := f.node(in.NodeId, false)
	h := f.handle(in.Fh)
	n.mu.Lock()
	off := in.Offset
	if h != nil && h.append {
		off = n.size
	}
	if off+uint64(len(data)) > 1<<50 {
		n.mu.Unlock()
		return 0, fuse.Status(syscall.EFBIG)
	}
	total := len(data)
	for len(data) > 0 {
		blk, bo := uint32(off/bs), uint32(off%bs)
		k := min(len(data), int(bs-bo))
		n.addDirty(blk, bo, data[:k])
		off += uint64(k)
		data = data[k:]
	}
	n.size = max(n.size, off)
	var ps []*pendingSlice
	if n.dirtyN >= maxDirty {
		ps = n.takeDirty(false)
	} else {
		ps = n.takeDirty(true)
	}
	n.mu.Unlock()
	if len(ps) > 0 {
		f.upload(n, ps)
	}
	return uint32(total), fuse.OK
}

func (f *FS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	ctx, stop := f.opCtx()
	defer stop()
	n := f.node(in.NodeId, false)
	e := f.flush(ctx, n)
	f.dropLocks(n, fsproto.LockPosix, in.LockOwner)
	return st(e)
}

func (f *FS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	ctx, stop := f.opCtx()
	defer stop()
	return st(f.flush(ctx, f.node(in.NodeId, false)))
}

func (f *FS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	n := f.node(in.NodeId, false)
	f.flush(f.ctx, n)
	if in.ReleaseFlags&fuse.FUSE_RELEASE_FLOCK_UNLOCK != 0 {
		f.dropLocks(n, fsproto.LockFlock, in.LockOwner)
	}
	f.mu.Lock()
	delete(f.handles, in.Fh)
	f.mu.Unlock()
	n.mu.Lock()
	n.opens--
	unhold := n.opens == 0 && n.held
	if unhold {
		n.held = false
	}
	n.mu.Unlock()
	if unhold {
		f.c.Op(f.ctx, &fsproto.Request{Op: fsproto.OpUnhold, Ino: n.ino})
	}
}

func (f *FS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	n := f.node(in.NodeId, false)
	n.mu.Lock()
	size := n.size
	n.mu.Unlock()
	// Sparse regions are not tracked: all of a file is data.
	switch in.Whence {
	case 3: // SEEK_DATA
		if in.Offset >= size {
			return fuse.Status(syscall.ENXIO)
		}
		out.Offset = in.Offset
	case 4: // SEEK_HOLE
		if in.Offset > size {
			return fuse.Status(syscall.ENXIO)
		}
		out.Offset = size
	default:
		return fuse.ENOSYS
	}
	return fuse.OK
}

func (f *FS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	const keepSize = 1 // FALLOC_FL_KEEP_SIZE
	if in.Mode&^keepSize != 0 {
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	if in.Mode&keepSize != 0 {
		return fuse.OK // space is not reserved ahead of writes: nothing to do
	}
	n := f.node(in.NodeId, false)
	n.mu.Lock()
	size := n.size
	n.mu.Unlock()
	if in.Offset+in.Length <= size {
		return fuse.OK
	}
	out := &fuse.AttrOut{}
	sin := &fuse.SetAttrIn{}
	sin.InHeader = in.InHeader
	sin.Valid = fuse.FATTR_SIZE
	sin.Size = in.Offset + in.Length
	return f.SetAttr(cancel, sin, out)
}

func (f *FS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	resp, s := f.dirOp(cancel, h, &fsproto.Request{Op: fsproto.OpUnlink, Parent: h.NodeId, Name: name})
	if s.Ok() {
		f.holdIfOpen(resp.Ino)
	}
	return s
}

func (f *FS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	_, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpRmdir, Parent: h.NodeId, Name: name})
	return s
}

func (f *FS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, name, newName string) fuse.Status {
	resp, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpRename, Parent: in.NodeId, Name: name, NewParent: in.Newdir, NewName: newName, Flags: in.Flags})
	if s.Ok() {
		f.holdIfOpen(resp.Ino)
	}
	return s
}

// holdIfOpen keeps an unlinked file's data while this mount has it open.
func (f *FS) holdIfOpen(ino uint64) {
	if ino == 0 {
		return
	}
	n := f.known(ino)
	if n == nil {
		return
	}
	n.mu.Lock()
	need := n.opens > 0 && !n.held
	if need {
		n.held = true
	}
	n.mu.Unlock()
	if need {
		if _, e := f.c.Op(f.ctx, &fsproto.Request{Op: fsproto.OpHold, Ino: ino}); e != 0 {
			f.log.Warn("could not hold an open, unlinked file", "ino", ino, "errno", e)
		}
	}
}

func (f *FS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	resp, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpLink, Ino: in.Oldnodeid, NewParent: in.NodeId, NewName: name})
	if !s.Ok() {
		return s
	}
	f.entry(resp.Attr, out)
	return fuse.OK
}

func (f *FS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK // the kernel checks permissions (default_permissions)
}

func (f *FS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	resp, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpStatfs})
	if !s.Ok() {
		return s
	}
	const bsize = 4096
	total := uint64(1<<53) / bsize // 8 PiB, as an elastic file system reports
	used := (resp.Statfs.Bytes + bsize - 1) / bsize
	*out = fuse.StatfsOut{Blocks: total, Bfree: total - used, Bavail: total - used,
		Files: 1 << 40, Ffree: 1<<40 - resp.Statfs.Files, Bsize: bsize, NameLen: fsproto.MaxName, Frsize: bsize}
	return fuse.OK
}

// learnXattrs records what the server says of n's extended attributes
// (n.mu held).
func (n *inode) learnXattrs(a *fsproto.Attr) {
	n.xattrsAt, n.hasXattrs = time.Now(), a.Xattrs
}

// forgetXattrs drops what the mount knows of ino's extended attributes:
// they may be changing.
func (f *FS) forgetXattrs(ino uint64) {
	f.xattrGen.Add(1)
	if n := f.known(ino); n != nil {
		n.mu.Lock()
		n.xattrsAt = time.Time{}
		n.mu.Unlock()
	}
}

// hasNoXattrs reports whether ino has no extended attributes, as the
// server said within the attribute timeout (another mount's change to the
// inode is pushed and forgets it sooner). When it does not know, it asks
// for the inode's attributes: once per timeout for a file being written,
// which the kernel asks about before every write.
func (f *FS) hasNoXattrs(cancel <-chan struct{}, h *fuse.InHeader) bool {
	n := f.known(h.NodeId)
	if n == nil {
		return false
	}
	n.mu.Lock()
	at, has := n.xattrsAt, n.hasXattrs
	n.mu.Unlock()
	if !at.IsZero() && time.Since(at) < f.ttl {
		return !has
	}
	resp, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpGetattr, Ino: h.NodeId})
	return s.Ok() && !resp.Attr.Xattrs
}

// unsupportedXattr names the extended attributes a Berth file system does
// not have, as EFS does not: POSIX ACLs (Berth's permissions are the mode
// bits, enforced by the server) and SELinux labels. Saying so
// (EOPNOTSUPP), rather than "no such attribute", lets tools such as `ls
// -l` remember it for the whole file system instead of asking again for
// every file, each time a round trip the kernel does not cache.
func unsupportedXattr(name string) bool {
	return name == "security.selinux" || strings.HasPrefix(name, "system.posix_acl_")
}

func (f *FS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if unsupportedXattr(attr) {
		return 0, fuse.Status(syscall.EOPNOTSUPP)
	}
	if f.hasNoXattrs(cancel, h) {
		return 0, fuse.ENOATTR
	}
	resp, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpGetxattr, Ino: h.NodeId, Key: attr})
	if !s.Ok() {
		return 0, s
	}
	if len(dest) < len(resp.Value) {
		return uint32(len(resp.Value)), fuse.ERANGE
	}
	return uint32(copy(dest, resp.Value)), fuse.OK
}

func (f *FS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if f.hasNoXattrs(cancel, h) {
		return 0, fuse.OK
	}
	resp, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpListxattr, Ino: h.NodeId})
	if !s.Ok() {
		return 0, s
	}
	var b strings.Builder
	for _, n := range resp.Names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	if len(dest) < b.Len() {
		return uint32(b.Len()), fuse.ERANGE
	}
	return uint32(copy(dest, b.String())), fuse.OK
}

func (f *FS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if unsupportedXattr(attr) {
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	_, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpSetxattr, Ino: in.NodeId, Key: attr, Value: data, Flags: in.Flags})
	return s
}

func (f *FS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	if unsupportedXattr(attr) {
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	_, s := f.op(cancel, h, &fsproto.Request{Op: fsproto.OpRemovexattr, Ino: h.NodeId, Key: attr})
	return s
}
