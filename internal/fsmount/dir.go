package fsmount

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/berth-project/berth/internal/fsproto"
)

// Directories as the kernel reads them, a page at a time, and the bound
// on the inodes a mount keeps for the kernel.

func (f *FS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	ctx, stop := f.opCtx()
	defer stop()
	// The entries come with their attributes (readdirplus), so a listing
	// such as ls -l needs no lookup per entry. A session that may list
	// the directory but not search it gets the names only. They come a
	// page at a time, as the kernel reads on: a handle holds one page,
	// however large the directory.
	h := &handle{ino: in.NodeId, list: &dirList{req: fsproto.Request{Op: fsproto.OpReaddir, Ino: in.NodeId, Uid: in.Uid, Gid: in.Gid, Plus: true, Limit: dirPage}}}
	if e := f.dirFrom(ctx, h, 0); e != 0 {
		return st(e)
	}
	f.mu.Lock()
	f.nextFh++
	out.Fh = f.nextFh
	f.handles[out.Fh] = h
	f.mu.Unlock()
	return fuse.OK
}

// dirPage is how many entries a directory handle asks for (and holds) at
// a time.
const dirPage = 8192

// dirList is an open directory's listing: the page it holds, from
// position base (0 and 1 are . and ..), and where the next page starts.
type dirList struct {
	mu     sync.Mutex
	req    fsproto.Request
	base   int
	parent uint64
	more   bool
	after  string
}

// dirFrom makes h hold the page with position off (the whole listing
// again from its start when off is before what it holds; nothing when off
// is past the end).
func (f *FS) dirFrom(ctx context.Context, h *handle, off int) syscall.Errno {
	l := h.list
	if off < l.base || (off == 0 && h.dir == nil) {
		l.base, l.more, l.after = 0, true, ""
		h.dir, h.attrs = nil, nil
	}
	for off >= l.base+len(h.dir) && (l.more || h.dir == nil) {
		r := l.req
		r.After = l.after
		resp, e := f.c.Op(ctx, &r)
		if e == syscall.EACCES && r.Plus && r.After == "" {
			l.req.Plus = false
			continue
		}
		if e != 0 {
			return e
		}
		l.base += len(h.dir)
		dir := resp.Entries
		attrs := make([]*fsproto.Attr, len(dir))
		if len(resp.Attrs) == len(dir) {
			copy(attrs, resp.Attrs)
		}
		if r.After == "" {
			l.parent = resp.Attr.Parent
			if l.parent == 0 {
				l.parent = h.ino
			}
			dir = append([]fsproto.Dirent{{Name: ".", Ino: h.ino, Mode: syscall.S_IFDIR}, {Name: "..", Ino: l.parent, Mode: syscall.S_IFDIR}}, dir...)
			attrs = append([]*fsproto.Attr{nil, nil}, attrs...) // the kernel takes none for . and ..
		}
		h.dir, h.attrs = dir, attrs
		h.gen, h.at = f.attrGen.Load(), time.Now()
		l.more = resp.More && len(resp.Entries) > 0
		if len(resp.Entries) > 0 {
			l.after = resp.Entries[len(resp.Entries)-1].Name
		}
	}
	return 0
}

func (f *FS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return f.readDir(in, out, false)
}

// ReadDirPlus gives each entry with its attributes, as a lookup would,
// while those read with the directory are fresh: nothing changed on this
// mount or was reported by another since, within the attribute timeout.
// Otherwise an entry goes without (the kernel looks it up when it needs
// to).
func (f *FS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return f.readDir(in, out, true)
}

func (f *FS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	h := f.handle(in.Fh)
	if h == nil || h.list == nil {
		return fuse.EBADF
	}
	ctx, stop := f.opCtx()
	defer stop()
	h.list.mu.Lock()
	defer h.list.mu.Unlock()
	for i := int(in.Offset); ; i++ {
		if e := f.dirFrom(ctx, h, i); e != 0 {
			return st(e)
		}
		j := i - h.list.base
		if j >= len(h.dir) {
			return fuse.OK // the end
		}
		d := h.dir[j]
		if !plus {
			if !out.AddDirEntry(fuse.DirEntry{Name: d.Name, Ino: d.Ino, Mode: d.Mode, Off: uint64(i + 1)}) {
				return fuse.OK
			}
			continue
		}
		eo := out.AddDirLookupEntry(fuse.DirEntry{Name: d.Name, Ino: d.Ino, Mode: d.Mode, Off: uint64(i + 1)})
		if eo == nil {
			return fuse.OK
		}
		fresh := f.attrGen.Load() == h.gen && time.Since(h.at) < f.ttl
		if a := h.attrs[j]; fresh && a != nil && a.Ino == d.Ino {
			f.entry(a, eo)
			f.named(a.Ino, in.NodeId, d.Name)
		}
	}
}

func (f *FS) ReleaseDir(in *fuse.ReleaseIn) {
	f.mu.Lock()
	delete(f.handles, in.Fh)
	f.mu.Unlock()
}

func (f *FS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status { return fuse.OK }

// named records where the kernel knows an inode from.
func (f *FS) named(ino, parent uint64, name string) {
	f.mu.Lock()
	if n := f.nodes[ino]; n != nil {
		n.parent, n.name = parent, name
	}
	f.mu.Unlock()
}

// evict keeps the inodes the mount knows near maxInodes: when there are
// more, it asks the kernel to drop the names of idle ones (not open, no
// data of their own here, nothing in flight); the kernel then forgets
// the inodes it no longer needs (FORGET), and the mount with it. Inodes
// the kernel keeps (a process's working directory, say) stay.
func (f *FS) evict(ctx context.Context, maxInodes int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	type name struct {
		parent uint64
		name   string
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		over := len(f.nodes) - maxInodes
		if over <= 0 || f.srv == nil {
			f.mu.Unlock()
			continue
		}
		want := over + maxInodes/10 // down to 90 %, so it does not run at every tick
		var drop []name
		for ino, n := range f.nodes {
			if len(drop) == want {
				break
			}
			if ino == fsproto.RootIno || n.name == "" {
				continue
			}
			n.mu.Lock()
			idle := n.opens == 0 && !n.local() && n.inflight == 0
			n.mu.Unlock()
			if idle {
				drop = append(drop, name{n.parent, n.name})
			}
		}
		srv := f.srv
		f.mu.Unlock()
		for _, d := range drop {
			if ctx.Err() != nil {
				return
			}
			srv.EntryNotify(d.parent, d.name)
		}
	}
}
