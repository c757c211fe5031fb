package fsmeta

import (
	"context"
	"errors"
	"math"
	"strings"
	"syscall"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

var errSessionGone = errno(syscall.ESTALE, "mount session expired")

func (e *Engine) openSession(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if ok, err := e.fsExists(ctx, r.FS); err != nil {
		return nil, err
	} else if !ok {
		return nil, errno(syscall.ENODEV, "no file system %s", r.FS)
	}
	lease, err := e.Client.Grant(ctx, e.SessionTTL)
	if err != nil {
		return nil, err
	}
	s := &Session{ID: newID(12), Host: r.Host, Mount: r.Name, Lease: int64(lease.ID), Started: now()}
	if _, err := e.Client.Put(ctx, state.FSSessionKey(r.FS, s.ID), marshal(s), clientv3.WithLease(lease.ID)); err != nil {
		return nil, err
	}
	e.leases.Store(s.ID, lease.ID)
	return &fsproto.Response{Session: s.ID, LeaseTTL: e.SessionTTL}, nil
}

func (e *Engine) fsExists(ctx context.Context, fs string) (bool, error) {
	resp, err := e.Client.Get(ctx, state.FSKey(fs), clientv3.WithCountOnly())
	if err != nil {
		return false, err
	}
	return resp.Count > 0, nil
}

func (e *Engine) sessionLease(ctx context.Context, fs, sess string) (clientv3.LeaseID, error) {
	if v, ok := e.leases.Load(sess); ok {
		return v.(clientv3.LeaseID), nil
	}
	resp, err := e.Client.Get(ctx, state.FSSessionKey(fs, sess))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, errSessionGone
	}
	s := Session{}
	if err := decode(string(resp.Kvs[0].Key), resp.Kvs[0].Value, &s); err != nil {
		return 0, err
	}
	e.leases.Store(sess, clientv3.LeaseID(s.Lease))
	return clientv3.LeaseID(s.Lease), nil
}

func (e *Engine) keepAlive(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	lease, err := e.sessionLease(ctx, r.FS, r.Session)
	if err != nil {
		return nil, err
	}
	if _, err := e.Client.KeepAliveOnce(ctx, lease); errors.Is(err, rpctypes.ErrLeaseNotFound) {
		e.leases.Delete(r.Session)
		return nil, errSessionGone
	} else if err != nil {
		return nil, err
	}
	return &fsproto.Response{LeaseTTL: e.SessionTTL}, nil
}

func (e *Engine) closeSession(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	lease, err := e.sessionLease(ctx, r.FS, r.Session)
	if errors.Is(err, errSessionGone) {
		return &fsproto.Response{}, nil
	} else if err != nil {
		return nil, err
	}
	e.leases.Delete(r.Session)
	e.sessions.Delete(r.Session)
	if _, err := e.Client.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil, err
	}
	return &fsproto.Response{}, nil
}

// hold records that the caller's session has an unlinked inode open, so
// its data is kept until the session closes it or expires.
func (e *Engine) hold(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	lease, err := e.sessionLease(ctx, r.FS, r.Session)
	if err != nil {
		return nil, err
	}
	resp, err := e.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(state.InodeKey(r.FS, r.Ino)), ">", 0)).
		Then(clientv3.OpPut(state.HoldPrefix(r.FS, r.Ino)+r.Session, "", clientv3.WithLease(lease))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, errno(syscall.ENOENT, "inode %d is gone", r.Ino)
	}
	return &fsproto.Response{}, nil
}

// lockHolder is one lock with the session that holds it.
type lockHolder struct {
	sess string
	fsproto.Lock
}

func conflicts(a lockHolder, sess string, l *fsproto.Lock) bool {
	if a.Kind != l.Kind || (a.sess == sess && a.Owner == l.Owner) {
		return false
	}
	if a.Type != fsproto.LockWrite && l.Type != fsproto.LockWrite {
		return false
	}
	return a.Start <= l.End && l.Start <= a.End
}

func (e *Engine) locks(ctx context.Context, fs string, ino uint64) ([]lockHolder, map[string][]fsproto.Lock, int64, error) {
	pfx := state.LockPrefix(fs, ino)
	resp, err := e.Client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, 0, err
	}
	var all []lockHolder
	bySess := map[string][]fsproto.Lock{}
	for _, kv := range resp.Kvs {
		sess := strings.TrimPrefix(string(kv.Key), pfx)
		var ls []fsproto.Lock
		if err := decode(string(kv.Key), kv.Value, &ls); err != nil {
			return nil, nil, 0, err
		}
		bySess[sess] = ls
		for _, l := range ls {
			all = append(all, lockHolder{sess: sess, Lock: l})
		}
	}
	return all, bySess, resp.Header.Revision, nil
}

func checkLock(l *fsproto.Lock) error {
	if l == nil || (l.Kind != fsproto.LockPosix && l.Kind != fsproto.LockFlock) || (l.Type != fsproto.LockRead && l.Type != fsproto.LockWrite && l.Type != fsproto.Unlock) || l.End < l.Start {
		return errno(syscall.EINVAL, "invalid lock")
	}
	return nil
}

func (e *Engine) getlk(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkLock(r.Lock); err != nil {
		return nil, err
	}
	all, _, _, err := e.locks(ctx, r.FS, r.Ino)
	if err != nil {
		return nil, err
	}
	for _, a := range all {
		if conflicts(a, r.Session, r.Lock) {
			l := a.Lock
			return &fsproto.Response{Lock: &l}, nil
		}
	}
	return &fsproto.Response{Lock: &fsproto.Lock{Kind: r.Lock.Kind, Type: fsproto.Unlock}}, nil
}

// setlk takes, changes or releases a lock without waiting: EAGAIN when
// another owner holds a conflicting one. Locks live on the session's lease.
func (e *Engine) setlk(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if err := checkLock(r.Lock); err != nil {
		return nil, err
	}
	lease, err := e.sessionLease(ctx, r.FS, r.Session)
	if err != nil {
		return nil, err
	}
	pfx := state.LockPrefix(r.FS, r.Ino)
	for i := 0; i < attempts; i++ {
		all, bySess, rev, err := e.locks(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		if r.Lock.Type != fsproto.Unlock {
			for _, a := range all {
				if conflicts(a, r.Session, r.Lock) {
					return nil, errno(syscall.EAGAIN, "lock held by another owner")
				}
			}
		}
		mine := applyLock(bySess[r.Session], *r.Lock)
		k := pfx + r.Session
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(pfx), "<", rev+1).WithPrefix()}
		var op clientv3.Op
		if len(mine) == 0 {
			if _, had := bySess[r.Session]; !had {
				return &fsproto.Response{}, nil
			}
			op = clientv3.OpDelete(k)
		} else {
			op = clientv3.OpPut(k, marshal(mine), clientv3.WithLease(lease))
		}
		resp, err := e.txn(ctx, cmps, []clientv3.Op{op})
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			e.leases.Delete(r.Session)
			return nil, errSessionGone
		} else if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			return &fsproto.Response{}, nil
		}
	}
	return nil, errContention
}

// applyLock sets l (or, for Unlock, clears its range) among one session's
// locks, splitting the owner's existing ranges as POSIX requires and
// merging adjacent ranges of the same type.
func applyLock(mine []fsproto.Lock, l fsproto.Lock) []fsproto.Lock {
	var out []fsproto.Lock
	for _, m := range mine {
		if m.Kind != l.Kind || m.Owner != l.Owner || m.End < l.Start || l.End < m.Start {
			out = append(out, m)
			continue
		}
		if m.Start < l.Start {
			left := m
			left.End = l.Start - 1
			out = append(out, left)
		}
		if m.End > l.End {
			right := m
			right.Start = l.End + 1
			out = append(out, right)
		}
	}
	if l.Type != fsproto.Unlock {
		// Merge with touching ranges of the same owner and type.
		var rest []fsproto.Lock
		for _, m := range out {
			if m.Kind == l.Kind && m.Owner == l.Owner && m.Type == l.Type &&
				(m.End != math.MaxUint64 && m.End+1 == l.Start || l.End != math.MaxUint64 && l.End+1 == m.Start) {
				l.Start, l.End = min(l.Start, m.Start), max(l.End, m.End)
				continue
			}
			rest = append(rest, m)
		}
		out = append(rest, l)
	}
	return out
}
