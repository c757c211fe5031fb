package fsmeta

// Attribute operations: setattr (with truncate), xattrs, statfs and usage.

import (
	"context"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

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
			if err := decode(k, resp.Kvs[0].Value, &b); err != nil {
				return nil, nil, err
			}
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
		if err := decode(k, v, &a); err != nil {
			return err
		}
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
