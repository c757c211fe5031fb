package fsmeta

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"syscall"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

// Restricted sessions: an access point's identity and root, read-only and
// root-squashed mounts. The server enforces them on every operation, so a
// client cannot claim another uid or reach outside its root, whatever it
// sends.

func (s *Session) restricted() bool {
	return s.Root != 0 || s.Uid != nil || s.ReadOnly || s.RootSquash
}

type cred struct {
	uid, gid uint32
	gids     []uint32
}

func (c cred) inGroup(g uint32) bool {
	if c.gid == g {
		return true
	}
	for _, x := range c.gids {
		if x == g {
			return true
		}
	}
	return false
}

// may reports whether c may access a with want (4 read, 2 write, 1 search/exec).
func (c cred) may(a *fsproto.Attr, want uint32) bool {
	if c.uid == 0 {
		return want&1 == 0 || a.IsDir() || a.Mode&0o111 != 0
	}
	var bits uint32
	switch {
	case c.uid == a.Uid:
		bits = a.Mode >> 6 & 7
	case c.inGroup(a.Gid):
		bits = a.Mode >> 3 & 7
	default:
		bits = a.Mode & 7
	}
	return bits&want == want
}

// OpenSession opens a session with what spec allows. A root path is
// resolved (missing directories created with create's owner and mode when
// create is set) and becomes the client's root; sub, when set, is a
// directory under it (created with subCreate) that becomes the root
// instead.
func (e *Engine) OpenSession(ctx context.Context, fs string, spec *Session, rootPath string, create *fsproto.Attr, sub string, subCreate *fsproto.Attr) (*fsproto.Response, error) {
	if ok, err := e.fsExists(ctx, fs); err != nil {
		return nil, err
	} else if !ok {
		return nil, errno(syscall.ENODEV, "no file system %s", fs)
	}
	root := uint64(fsproto.RootIno)
	if rootPath != "" && rootPath != "/" {
		var err error
		if root, err = e.resolve(ctx, fs, fsproto.RootIno, rootPath, create); err != nil {
			return nil, err
		}
	}
	if sub != "" {
		var err error
		if root, err = e.resolve(ctx, fs, root, sub, subCreate); err != nil {
			return nil, err
		}
	}
	if root != fsproto.RootIno {
		spec.Root = root
	}
	lease, err := e.Client.Grant(ctx, e.SessionTTL)
	if err != nil {
		return nil, err
	}
	spec.ID, spec.Lease, spec.Started = newID(12), int64(lease.ID), now()
	ops := []clientv3.Op{clientv3.OpPut(state.FSSessionKey(fs, spec.ID), marshal(spec), clientv3.WithLease(lease.ID))}
	if spec.Task != "" {
		ops = append(ops, clientv3.OpPut(taskSessionKey(spec.Task, spec.ID), fs, clientv3.WithLease(lease.ID)))
	}
	if _, err := e.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
		return nil, err
	}
	e.leases.Store(spec.ID, lease.ID)
	e.sessions.Store(spec.ID, spec)
	return &fsproto.Response{Session: spec.ID, LeaseTTL: e.SessionTTL}, nil
}

// resolve walks an absolute path from the root, creating missing
// directories with create's owner and mode when create is set.
func (e *Engine) resolve(ctx context.Context, fs string, from uint64, p string, create *fsproto.Attr) (uint64, error) {
	cur := from
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		if part == "." || part == ".." {
			return 0, errno(syscall.EINVAL, "root directory path %q may not contain . or ..", p)
		}
		resp := e.Do(ctx, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: cur, Name: part})
		if resp.Errno == syscall.ENOENT && create != nil {
			resp = e.Do(ctx, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: cur, Name: part, Mode: syscall.S_IFDIR | create.Mode&0o7777, Uid: create.Uid, Gid: create.Gid})
			if resp.Errno == syscall.EEXIST {
				resp = e.Do(ctx, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: cur, Name: part})
			}
		}
		if resp.Errno == syscall.ENOENT {
			return 0, errno(syscall.ENOENT, "root directory %s does not exist", p)
		}
		if resp.Errno != 0 {
			return 0, errno(resp.Errno, "root directory %s", p)
		}
		if !resp.Attr.IsDir() {
			return 0, errno(syscall.ENOTDIR, "root directory %s is not a directory", p)
		}
		cur = resp.Attr.Ino
	}
	return cur, nil
}

// Session returns a live session's record; ESTALE once it has ended.
func (e *Engine) Session(ctx context.Context, fs, sess string) (*Session, error) {
	if v, ok := e.sessions.Load(sess); ok {
		return v.(*Session), nil
	}
	resp, err := e.Client.Get(ctx, state.FSSessionKey(fs, sess))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, errSessionGone
	}
	s := &Session{}
	if err := json.Unmarshal(resp.Kvs[0].Value, s); err != nil {
		return nil, err
	}
	e.sessions.Store(sess, s)
	return s, nil
}

func taskSessionKey(task, sess string) string {
	return state.EFSTaskSessionKey(task[strings.LastIndex(task, "/")+1:], sess)
}

// RevokeTaskSessions ends every session opened for a task: once the task
// is stopped (its instance lost, say), its mounts can no longer write, so
// the slot's replacement is the only writer.
func (e *Engine) RevokeTaskSessions(ctx context.Context, task string) error {
	resp, err := e.Client.Get(ctx, taskSessionKey(task, ""), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		sess := string(kv.Key)[strings.LastIndex(string(kv.Key), "/")+1:]
		s, err := e.Session(ctx, string(kv.Value), sess)
		if errors.Is(err, errSessionGone) {
			continue
		} else if err != nil {
			return err // a session that may live must not be skipped
		}
		e.sessions.Delete(sess)
		e.leases.Delete(sess)
		if _, err := e.Client.Revoke(ctx, clientv3.LeaseID(s.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
	}
	return nil
}

// RevokeZoneSessions ends every session of fs opened in zone: the mounts
// made through a mount target that was deleted.
func (e *Engine) RevokeZoneSessions(ctx context.Context, fs, zone string) error {
	return e.scan(ctx, state.FSMetaPrefix(fs)+"s/", 0, func(_ string, v []byte, _, _ int64) error {
		s := Session{}
		if json.Unmarshal(v, &s) != nil || s.Zone != zone || zone == "" {
			return nil
		}
		e.sessions.Delete(s.ID)
		e.leases.Delete(s.ID)
		_, err := e.Client.Revoke(ctx, clientv3.LeaseID(s.Lease))
		return err
	})
}

// confine applies a restricted session's rules to a request before it
// runs: read-only, identity, root translation and confinement, and
// permission checks as the session's identity.
func (e *Engine) confine(ctx context.Context, s *Session, r *fsproto.Request) error {
	if s.ReadOnly && r.Op.Mutates() {
		return errno(syscall.EROFS, "read-only mount")
	}
	c := cred{uid: r.Uid, gid: r.Gid}
	switch {
	case s.Uid != nil:
		c = cred{uid: *s.Uid, gid: *s.Gid, gids: s.Gids}
	case s.RootSquash && c.uid == 0:
		c = cred{uid: 65534, gid: 65534}
	}
	if r.Op == fsproto.OpMknod || r.Op == fsproto.OpTmpfile {
		r.Uid, r.Gid = c.uid, c.gid
	}
	if s.Root != 0 {
		for _, p := range []*uint64{&r.Ino, &r.Parent, &r.NewParent} {
			if *p == fsproto.RootIno {
				*p = s.Root
			} else if *p != 0 {
				if err := e.inside(ctx, r.FS, s, *p); err != nil {
					return err
				}
			}
		}
	}
	if s.Uid == nil && !s.RootSquash {
		return nil // the kernel of the mount checked permissions
	}
	need := func(ino uint64, want uint32) error {
		n, err := e.load(ctx, r.FS, ino)
		if err != nil {
			return err
		}
		if !c.may(n.a, want) {
			return errno(syscall.EACCES, "permission denied")
		}
		return nil
	}
	owner := func(ino uint64) error {
		n, err := e.load(ctx, r.FS, ino)
		if err != nil {
			return err
		}
		if c.uid != 0 && c.uid != n.a.Uid {
			return errno(syscall.EPERM, "not the owner")
		}
		return nil
	}
	switch r.Op {
	case fsproto.OpLookup:
		return need(r.Parent, 1)
	case fsproto.OpReaddir:
		if r.Plus {
			return need(r.Ino, 5) // the entries' attributes are a lookup's
		}
		return need(r.Ino, 4)
	case fsproto.OpGetxattr, fsproto.OpListxattr, fsproto.OpReadBlocks:
		return need(r.Ino, 4)
	case fsproto.OpOpen:
		switch r.Flags & syscall.O_ACCMODE {
		case syscall.O_RDONLY:
			return need(r.Ino, 4)
		case syscall.O_WRONLY:
			return need(r.Ino, 2)
		default:
			return need(r.Ino, 6)
		}
	case fsproto.OpMknod, fsproto.OpTmpfile, fsproto.OpUnlink, fsproto.OpRmdir:
		return need(r.Parent, 3)
	case fsproto.OpLink:
		return need(r.NewParent, 3)
	case fsproto.OpRename:
		if err := need(r.Parent, 3); err != nil {
			return err
		}
		return need(r.NewParent, 3)
	case fsproto.OpCommit:
		return need(r.Ino, 2)
	case fsproto.OpSetxattr, fsproto.OpRemovexattr:
		return owner(r.Ino)
	case fsproto.OpSetattr:
		if r.Valid&fsproto.SetUid != 0 && c.uid != 0 {
			return errno(syscall.EPERM, "only root changes owners")
		}
		if r.Valid&(fsproto.SetMode|fsproto.SetGid|fsproto.SetAtime|fsproto.SetMtime) != 0 {
			if err := owner(r.Ino); err != nil {
				return err
			}
		}
		if r.Valid&fsproto.SetSize != 0 {
			return need(r.Ino, 2)
		}
	}
	return nil
}

// inside checks that ino is under the session's root, following parent
// links; what it has checked it remembers for the session.
func (e *Engine) inside(ctx context.Context, fs string, s *Session, ino uint64) error {
	key := s.ID + "/" + strconv.FormatUint(ino, 16)
	if _, ok := e.insideCache.Load(key); ok {
		return nil
	}
	cur := ino
	for i := 0; i < 4096; i++ {
		if cur == s.Root {
			e.insideCache.Store(key, true)
			return nil
		}
		if cur == fsproto.RootIno || cur == 0 {
			break
		}
		n, err := e.load(ctx, fs, cur)
		if err != nil {
			return err
		}
		cur = n.a.Parent
	}
	return errno(syscall.EACCES, "inode %d is outside the mount's root", ino)
}

// present turns the engine's view of a response into the client's: the
// session's root is inode 1 to it.
func present(s *Session, resp *fsproto.Response) {
	if s.Root == 0 {
		return
	}
	resp.Attr, resp.Dir = presentAttr(s, resp.Attr), presentAttr(s, resp.Dir)
	for i := range resp.Entries {
		if resp.Entries[i].Ino == s.Root {
			resp.Entries[i].Ino = fsproto.RootIno
		}
	}
}

// presentAttr maps the session's root directory to inode 1.
func presentAttr(s *Session, a *fsproto.Attr) *fsproto.Attr {
	switch {
	case a == nil:
		return nil
	case a.Ino == s.Root:
		c := *a
		c.Ino, c.Parent = fsproto.RootIno, fsproto.RootIno
		return &c
	case a.Parent == s.Root:
		c := *a
		c.Parent = fsproto.RootIno
		return &c
	}
	return a
}

// PresentEvent maps an event for a session with its own root. Such a
// session gets a name only in its root directory: the stream carries the
// whole file system's changes, and names elsewhere may be outside what
// it may see (its kernel forgets the names it cached in its other
// directories within the entry timeout). An event left naming no inode
// is not sent.
func (e *Engine) PresentEvent(sess string, ev *fsproto.Event) {
	v, ok := e.sessions.Load(sess)
	if !ok {
		return
	}
	s := v.(*Session)
	if s.Root == 0 {
		return
	}
	// The file system's own root is not the session's (which it sees as
	// inode 1): changes to it concern the session not at all.
	switch ev.Ino {
	case s.Root:
		ev.Ino = fsproto.RootIno
	case fsproto.RootIno:
		ev.Ino = 0
	}
	switch ev.Parent {
	case s.Root:
		ev.Parent = fsproto.RootIno
	case fsproto.RootIno:
		ev.Parent, ev.Name = 0, ""
	default:
		ev.Name = ""
	}
}
