package fsmount

import (
	"context"
	"math"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/berth-project/berth/internal/fsproto"
)

func lockOf(in *fuse.LkIn) *fsproto.Lock {
	kind := fsproto.LockPosix
	if in.LkFlags&fuse.FUSE_LK_FLOCK != 0 {
		kind = fsproto.LockFlock
	}
	return &fsproto.Lock{Kind: kind, Owner: in.Owner, Type: int(in.Lk.Typ), Start: in.Lk.Start, End: in.Lk.End, Pid: in.Lk.Pid}
}

func (f *FS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	resp, s := f.op(cancel, &in.InHeader, &fsproto.Request{Op: fsproto.OpGetlk, Ino: in.NodeId, Lock: lockOf(in)})
	if !s.Ok() {
		return s
	}
	l := resp.Lock
	out.Lk = fuse.FileLock{Start: l.Start, End: l.End, Typ: uint32(l.Type), Pid: l.Pid}
	return fuse.OK
}

// SetLk takes or releases a lock held on the server (so it holds across
// hosts). Data written under a lock is committed before the lock goes, and
// taking a lock refreshes what this mount knows of the file, as NFS does.
func (f *FS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	ctx, stop := f.opCtx()
	defer stop()
	return st(f.setlk(ctx, in))
}

func (f *FS) setlk(ctx context.Context, in *fuse.LkIn) syscall.Errno {
	n := f.node(in.NodeId, false)
	l := lockOf(in)
	if l.Type == fsproto.Unlock {
		if e := f.flush(ctx, n); e != 0 {
			return e
		}
	}
	if _, e := f.c.Op(ctx, &fsproto.Request{Op: fsproto.OpSetlk, Ino: in.NodeId, Lock: l}); e != 0 {
		return e
	}
	k := lockKey{kind: l.Kind, owner: l.Owner}
	if l.Type == fsproto.Unlock {
		if l.Start == 0 && l.End == math.MaxInt64 || l.End == math.MaxUint64 {
			n.mu.Lock()
			delete(n.locks, k)
			n.mu.Unlock()
		}
		return 0
	}
	n.mu.Lock()
	if n.locks == nil {
		n.locks = map[lockKey]bool{}
	}
	n.locks[k] = true
	n.mu.Unlock()
	f.refresh(ctx, n)
	return 0
}

// refresh re-reads a file's attributes; if another host changed it, the
// cached slices and pages are dropped.
func (f *FS) refresh(ctx context.Context, n *inode) {
	resp, e := f.c.Op(ctx, &fsproto.Request{Op: fsproto.OpGetattr, Ino: n.ino})
	if e != 0 {
		return
	}
	n.mu.Lock()
	changed := resp.Attr.Rev != n.rev
	if changed {
		n.blocks = nil
		n.rev = resp.Attr.Rev
	}
	if !n.local() {
		n.size = resp.Attr.Size
	} else {
		n.size = max(n.size, resp.Attr.Size)
	}
	n.mu.Unlock()
	if changed && f.srv != nil {
		f.srv.InodeNotify(n.ino, 0, 0)
	}
}

func (f *FS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	ctx, stop := ctxOf(cancel)
	defer stop()
	delay := 5 * time.Millisecond
	for {
		e := f.setlk(ctx, in)
		if e != syscall.EAGAIN {
			return st(e)
		}
		select {
		case <-ctx.Done():
			return fuse.EINTR
		case <-time.After(delay):
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// dropLocks releases every lock of one owner on a file (close releases
// POSIX locks; the last close of a file releases its flock).
func (f *FS) dropLocks(n *inode, kind int, owner uint64) {
	k := lockKey{kind: kind, owner: owner}
	n.mu.Lock()
	held := n.locks[k]
	delete(n.locks, k)
	n.mu.Unlock()
	if !held {
		return
	}
	l := &fsproto.Lock{Kind: kind, Owner: owner, Type: fsproto.Unlock, Start: 0, End: math.MaxUint64}
	if _, e := f.c.Op(f.ctx, &fsproto.Request{Op: fsproto.OpSetlk, Ino: n.ino, Lock: l}); e != 0 {
		f.log.Warn("releasing locks failed", "ino", n.ino, "errno", e)
	}
}
