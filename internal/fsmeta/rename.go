package fsmeta

import (
	"context"
	"syscall"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

// rename moves an entry in one transaction. It replaces an existing target
// (unless RENAME_NOREPLACE), swaps two entries (RENAME_EXCHANGE), and —
// inside the transaction — refuses to move a directory into itself: every
// ancestor of the destination is read and guarded, so two concurrent
// renames on two hosts cannot make a cycle.
func (e *Engine) rename(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkName(r.Name); err != nil {
		return nil, err
	}
	if err := checkName(r.NewName); err != nil {
		return nil, err
	}
	exchange := r.Flags&fsproto.RenameExchange != 0
	if r.Flags&^uint32(fsproto.RenameNoReplace|fsproto.RenameExchange) != 0 || (exchange && r.Flags&fsproto.RenameNoReplace != 0) {
		return nil, errno(syscall.EINVAL, "invalid rename flags %#x", r.Flags)
	}
	for i := 0; i < attempts; i++ {
		sd, srev, err := e.dentry(ctx, r.FS, r.Parent, r.Name)
		if err != nil {
			return nil, err
		}
		if sd == nil {
			return nil, errno(syscall.ENOENT, "no entry %q", r.Name)
		}
		dd, drev, err := e.dentry(ctx, r.FS, r.NewParent, r.NewName)
		if err != nil {
			return nil, err
		}
		if dd == nil && exchange {
			return nil, errno(syscall.ENOENT, "no entry %q", r.NewName)
		}
		if dd != nil && r.Flags&fsproto.RenameNoReplace != 0 {
			return nil, errno(syscall.EEXIST, "%q exists", r.NewName)
		}
		if r.Parent == r.NewParent && r.Name == r.NewName {
			return &fsproto.Response{}, nil
		}
		if dd != nil && dd.Ino == sd.Ino {
			return &fsproto.Response{}, nil // two links of one inode: POSIX says do nothing
		}
		src, err := e.load(ctx, r.FS, sd.Ino)
		if err != nil {
			continue
		}
		var dst *node
		if dd != nil {
			if dst, err = e.load(ctx, r.FS, dd.Ino); err != nil {
				continue
			}
		}
		pp, err := e.load(ctx, r.FS, r.Parent)
		if err != nil {
			return nil, err
		}
		np := pp
		if r.NewParent != r.Parent {
			if np, err = e.load(ctx, r.FS, r.NewParent); err != nil {
				return nil, err
			}
		}
		if !np.a.IsDir() {
			return nil, errno(syscall.ENOTDIR, "destination parent is not a directory")
		}
		srcDir := src.a.IsDir()
		dstDir := dst != nil && dst.a.IsDir()
		if dst != nil && !exchange {
			if srcDir && !dstDir {
				return nil, errno(syscall.ENOTDIR, "%q is not a directory", r.NewName)
			}
			if !srcDir && dstDir {
				return nil, errno(syscall.EISDIR, "%q is a directory", r.NewName)
			}
			if dstDir && dst.a.Ino == r.Parent {
				return nil, errno(syscall.ENOTEMPTY, "%q is not empty", r.NewName)
			}
		}
		t := now()
		sk, dk := state.DentryKey(r.FS, r.Parent, r.Name), state.DentryKey(r.FS, r.NewParent, r.NewName)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(sk), "=", srev),
			clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, src.a.Ino)), "=", src.rev),
			clientv3.Compare(clientv3.ModRevision(dk), "=", drev),
		}
		if dst != nil {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, dst.a.Ino)), "=", dst.rev))
		}
		// A directory moving to another parent must not land inside itself.
		if r.Parent != r.NewParent {
			if srcDir {
				c, err := e.guardNotUnder(ctx, r.FS, np, src.a.Ino)
				if err != nil {
					return nil, err
				}
				cmps = append(cmps, c...)
			}
			if exchange && dstDir {
				c, err := e.guardNotUnder(ctx, r.FS, pp, dst.a.Ino)
				if err != nil {
					return nil, err
				}
				cmps = append(cmps, c...)
			}
		}
		var ops []clientv3.Op
		pDelta, npDelta := 0, 0
		sa := *src.a
		sa.Ctime, sa.By = t, r.Session
		if !exchange {
			ops = append(ops, clientv3.OpDelete(sk), clientv3.OpPut(dk, marshal(&Dentry{Ino: sa.Ino, Mode: sa.Mode & syscall.S_IFMT, By: r.Session})))
			if srcDir && r.Parent != r.NewParent {
				pDelta--
				npDelta++
			}
			sa.Parent = r.NewParent
			if dst != nil {
				if dstDir {
					cmps = append(cmps, emptyDir(r.FS, dst.a.Ino))
					ops = append(ops, clientv3.OpDelete(state.InodeKey(r.FS, dst.a.Ino)), clientv3.OpDelete(state.DirTimesKey(r.FS, dst.a.Ino)))
					npDelta--
				} else {
					more, err := e.dropLink(ctx, r, dst, t)
					if err != nil {
						return nil, err
					}
					ops = append(ops, more...)
				}
			}
		} else {
			da := *dst.a
			da.Ctime, da.By = t, r.Session
			ops = append(ops, clientv3.OpPut(sk, marshal(&Dentry{Ino: da.Ino, Mode: da.Mode & syscall.S_IFMT, By: r.Session})),
				clientv3.OpPut(dk, marshal(&Dentry{Ino: sa.Ino, Mode: sa.Mode & syscall.S_IFMT, By: r.Session})))
			sa.Parent, da.Parent = r.NewParent, r.Parent
			if r.Parent != r.NewParent {
				if srcDir {
					pDelta--
					npDelta++
				}
				if dstDir {
					pDelta++
					npDelta--
				}
			}
			ops = append(ops, clientv3.OpPut(state.InodeKey(r.FS, da.Ino), storeAttr(&da)))
		}
		ops = append(ops, clientv3.OpPut(state.InodeKey(r.FS, sa.Ino), storeAttr(&sa)))
		parent := func(p *node, delta int) {
			if delta == 0 {
				ops = append(ops, clientv3.OpPut(state.DirTimesKey(r.FS, p.a.Ino), marshal(&Times{Mtime: t, Ctime: t, By: r.Session})))
				return
			}
			a := *p.a
			a.Nlink = uint32(int(a.Nlink) + delta)
			a.Mtime, a.Ctime, a.By = t, t, r.Session
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, a.Ino)), "=", p.rev))
			ops = append(ops, clientv3.OpPut(state.InodeKey(r.FS, a.Ino), storeAttr(&a)))
		}
		if r.Parent == r.NewParent {
			parent(pp, pDelta+npDelta)
		} else {
			parent(pp, pDelta)
			parent(np, npDelta)
		}
		resp, err := e.txn(ctx, cmps, ops)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			out := &fsproto.Response{}
			if dst != nil && !exchange && !dstDir && dst.a.Nlink == 1 {
				out.Ino = dst.a.Ino
			}
			return out, nil
		}
		if dstDir && !exchange {
			if empty, err := e.dirEmpty(ctx, r.FS, dst.a.Ino); err != nil {
				return nil, err
			} else if !empty {
				return nil, errno(syscall.ENOTEMPTY, "%q is not empty", r.NewName)
			}
		}
	}
	return nil, errContention
}

// guardNotUnder walks from dir up to the root, failing with EINVAL if ino
// is on the way, and returns a guard on every directory it passed: the
// chain cannot change before the transaction commits.
func (e *Engine) guardNotUnder(ctx context.Context, fs string, dir *node, ino uint64) ([]clientv3.Cmp, error) {
	var cmps []clientv3.Cmp
	cur := dir
	for {
		if cur.a.Ino == ino {
			return nil, errno(syscall.EINVAL, "cannot move a directory into itself")
		}
		if cur.a.Ino == fsproto.RootIno {
			return cmps, nil
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(state.InodeKey(fs, cur.a.Ino)), "=", cur.rev))
		if len(cmps) > maxOps-12 {
			return nil, errno(syscall.ELOOP, "directory nested too deeply to move atomically")
		}
		next, err := e.load(ctx, fs, cur.a.Parent)
		if err != nil {
			return nil, err
		}
		cur = next
	}
}
