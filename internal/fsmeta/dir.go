package fsmeta

// Namespace operations: lookup, create (mknod, tmpfile), link, unlink,
// rmdir and readdir. Rename is in rename.go.

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

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
			if err := decode(string(kvs[0].Key), kvs[0].Value, d); err != nil {
				return nil, err
			}
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
		// The parent's attributes after the change go back with the reply
		// (as a create's do), so the client need not ask for them; the
		// transaction is guarded on them.
		p, err := e.parent(ctx, r.FS, r.Parent)
		if err != nil {
			return nil, err
		}
		t := now()
		dk := state.DentryKey(r.FS, r.Parent, r.Name)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(dk), "=", drev),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, d.Ino)), "=", n.rev),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Parent)), "=", p.rev),
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
			pa := *p.a
			pa.Mtime, pa.Ctime, pa.By = t, t, r.Session
			out := &fsproto.Response{Dir: &pa}
			if n.a.Nlink == 1 {
				out.Ino = n.a.Ino // now an orphan: a client with it open holds it
			}
			return out, nil
		}
		e.forget(r.FS, r.Parent)
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

// maxReaddir is the most entries one readdir reply holds.
const maxReaddir = 8192

func (e *Engine) readdir(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	n, err := e.dir(ctx, r.FS, r.Ino)
	if err != nil {
		return nil, err
	}
	limit := r.Limit
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, maxReaddir)
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
		if err := decode(string(kv.Key), kv.Value, &d); err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, fsproto.Dirent{Name: strings.TrimPrefix(string(kv.Key), pfx), Ino: d.Ino, Mode: d.Mode})
	}
	if r.Plus {
		if err := e.entryAttrs(ctx, r.FS, out, resp.Header.Revision); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// plusBatch is how many inodes one transaction of a readdirplus reads
// (etcd allows 128 operations in a transaction by default).
const plusBatch = 100

// entryAttrs adds each entry's attributes to a readdir reply, as of the
// revision its entries were read at (readdirplus: the client then needs
// no lookup per entry). An entry whose inode is gone by then (a removal
// racing the read) has none.
//
// The inodes are read in transactions of plusBatch gets, several at once,
// each serializable: a read at a revision this member has applied (the
// entries were read from it) needs no round of the consensus. A member
// behind that revision (another member, behind a client that balances)
// refuses with ErrFutureRev, and the batch is read linearizably.
func (e *Engine) entryAttrs(ctx context.Context, fs string, out *fsproto.Response, rev int64) error {
	out.Attrs = make([]*fsproto.Attr, len(out.Entries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for from := 0; from < len(out.Entries); from += plusBatch {
		batch := out.Entries[from:min(from+plusBatch, len(out.Entries))]
		g.Go(func() error {
			read := func(serializable bool) (*clientv3.TxnResponse, error) {
				gets := make([]clientv3.Op, len(batch))
				for i, d := range batch {
					// A directory's times are kept under its inode's
					// key; a file's inode is the one key.
					opts := []clientv3.OpOption{clientv3.WithRev(rev)}
					if d.Mode == syscall.S_IFDIR {
						opts = append(opts, clientv3.WithPrefix())
					}
					if serializable {
						opts = append(opts, clientv3.WithSerializable())
					}
					gets[i] = clientv3.OpGet(state.InodeKey(fs, d.Ino), opts...)
				}
				return e.Client.Txn(gctx).Then(gets...).Commit()
			}
			resp, err := read(true)
			if errors.Is(err, rpctypes.ErrFutureRev) || errors.Is(err, rpctypes.ErrGRPCFutureRev) {
				resp, err = read(false)
			}
			if err != nil {
				return err
			}
			for i, d := range batch {
				n, err := nodeFrom(fs, d.Ino, resp.Responses[i].GetResponseRange().Kvs)
				var fe *Error
				if errors.As(err, &fe) && fe.Errno == syscall.ENOENT {
					continue
				} else if err != nil {
					return err
				}
				out.Attrs[from+i] = n.a
			}
			return nil
		})
	}
	return g.Wait()
}
