package fsmeta

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/blob/fschunk"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/state/etcdtest"
)

// newEngine runs a real single-member etcd in a temp dir.
func newEngine(t testing.TB) (*Engine, string) {
	t.Helper()
	cli := etcdtest.Start(t)
	eng := NewEngine(cli, fschunk.Dir{Path: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f, err := eng.CreateFS(context.Background(), "t", &FileSystem{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return eng, f.ID
}

func must(t *testing.T, e *Engine, r *fsproto.Request) *fsproto.Response {
	t.Helper()
	resp := e.Do(context.Background(), r)
	if resp.Errno != 0 {
		t.Fatalf("%s %+v: %v", r.Op, r, resp.Errno)
	}
	return resp
}

func mustLookup(t *testing.T, e *Engine, fs string, parent uint64, name string) uint64 {
	return must(t, e, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: parent, Name: name}).Attr.Ino
}

func mkdir(t *testing.T, e *Engine, fs string, parent uint64, name string) uint64 {
	return must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: parent, Name: name, Mode: syscall.S_IFDIR | 0o755, Excl: true}).Attr.Ino
}

// Two hosts renaming two directories into each other at the same time must
// never make a cycle: the ancestor walk is guarded inside the transaction.
func TestConcurrentCrossRenamesNeverMakeACycle(t *testing.T) {
	e, fs := newEngine(t)
	refused := 0
	for i := 0; i < 40; i++ {
		top := mkdir(t, e, fs, fsproto.RootIno, fmt.Sprintf("round%d", i))
		a := mkdir(t, e, fs, top, "a")
		b := mkdir(t, e, fs, top, "b")
		var wg sync.WaitGroup
		errs := make([]syscall.Errno, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs[0] = e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpRename, FS: fs, Parent: top, Name: "a", NewParent: b, NewName: "a"}).Errno
		}()
		go func() {
			defer wg.Done()
			errs[1] = e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpRename, FS: fs, Parent: top, Name: "b", NewParent: a, NewName: "b"}).Errno
		}()
		wg.Wait()
		if errs[0] == 0 && errs[1] == 0 {
			t.Fatalf("round %d: both renames succeeded: a and b are inside each other", i)
		}
		for _, en := range errs {
			if en != 0 && en != syscall.EINVAL && en != syscall.ENOENT {
				t.Fatalf("round %d: unexpected error %v", i, en)
			}
			if en != 0 {
				refused++
			}
		}
	}
	rep, err := e.Fsck(context.Background(), fs, false)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck: %v %+v", err, rep)
	}
	if refused != 40 {
		t.Fatalf("%d refusals in 40 rounds", refused)
	}
}

// Collection races writers that commit chunks after random delays: no
// referenced chunk is ever deleted, and a commit of a chunk too old to be
// safe is refused rather than left dangling.
func TestChunkCollectionNeverRemovesReferencedChunks(t *testing.T) {
	e, fs := newEngine(t)
	e.ChunkGrace = 300 * time.Millisecond
	ctx := context.Background()
	file := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: "f", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	stop, stopped := make(chan struct{}), make(chan struct{})
	var collected atomic.Int64
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := e.CollectChunks(ctx, fs)
			if err != nil {
				t.Error(err)
			}
			collected.Add(int64(n))
		}
	}()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < 40; i++ {
				id := fsproto.NewChunkID()
				data := make([]byte, 1000)
				rng.Read(data)
				if err := e.Chunks.Put(context.Background(), fs, id, data); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rng.Intn(250)) * time.Millisecond)
				blk := uint32(rng.Intn(8))
				resp := e.Do(ctx, &fsproto.Request{Op: fsproto.OpCommit, FS: fs, Ino: file, Slices: []fsproto.BlockSlice{{Blk: blk, Slice: fsproto.Slice{Off: uint32(w * 1000), Len: 1000, ID: id}}}})
				switch resp.Errno {
				case 0:
					ok.Add(1)
				case fsproto.ErrChunkExpired:
					refused.Add(1)
				default:
					t.Errorf("commit: %v", resp.Errno)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	<-stopped
	rep, err := e.Fsck(ctx, fs, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if strings.HasSuffix(p, "(data lost)") {
			t.Fatalf("a referenced chunk was collected: %s", p)
		}
	}
	if ok.Load() == 0 || refused.Load() == 0 || collected.Load() == 0 {
		t.Fatalf("race not exercised: %d commits, %d refused, %d collected", ok.Load(), refused.Load(), collected.Load())
	}
	t.Logf("%d commits, %d refused as too old, %d chunks collected", ok.Load(), refused.Load(), collected.Load())
}

// fsck finds damaged metadata and leaked chunks, and repair leaves it clean.
func TestFsckFindsAndRepairs(t *testing.T) {
	e, fs := newEngine(t)
	ctx := context.Background()
	d := mkdir(t, e, fs, fsproto.RootIno, "d")
	f := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: d, Name: "f", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	g := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: d, Name: "g", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	id := fsproto.NewChunkID()
	e.Chunks.Put(context.Background(), fs, id, []byte("data"))
	must(t, e, &fsproto.Request{Op: fsproto.OpCommit, FS: fs, Ino: f, Slices: []fsproto.BlockSlice{{Slice: fsproto.Slice{Len: 4, ID: id}}}})
	if rep, _ := e.Fsck(ctx, fs, false); len(rep.Problems) != 0 {
		t.Fatalf("fresh file system: %+v", rep)
	}
	// Damage: g's inode vanishes (dangling entry); f's link count is wrong;
	// blocks of a missing inode; an old chunk nothing names.
	e.Client.Delete(ctx, state.InodeKey(fs, g))
	n, _ := e.load(ctx, fs, f)
	n.a.Nlink = 5
	e.Client.Put(ctx, state.InodeKey(fs, f), storeAttr(n.a))
	e.Client.Put(ctx, state.BlockKey(fs, 12345, 0), marshal(&Blocks{Slices: []fsproto.Slice{{Len: 4, ID: id}}}))
	leak := fsproto.NewChunkID()
	e.Chunks.Put(context.Background(), fs, leak, []byte("leak"))
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(e.Chunks.(fschunk.Dir).Path, fs, leak[:2], leak), old, old)
	rep, err := e.Fsck(ctx, fs, false)
	if err != nil || len(rep.Problems) != 4 {
		t.Fatalf("want 4 problems: %v %+v", err, rep)
	}
	if rep, _ = e.Fsck(ctx, fs, true); rep.Repaired != 4 {
		t.Fatalf("repair: %+v", rep)
	}
	if rep, _ = e.Fsck(ctx, fs, false); len(rep.Problems) != 0 {
		t.Fatalf("after repair: %+v", rep)
	}
	if a := must(t, e, &fsproto.Request{Op: fsproto.OpGetattr, FS: fs, Ino: f}).Attr; a.Nlink != 1 || a.Size != 4 {
		t.Fatalf("f after repair: %+v", a)
	}
}

// One operation is one transaction: a commit too big for one is refused.
func TestCommitTooBigIsRefusedNotSplit(t *testing.T) {
	e, fs := newEngine(t)
	f := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: "f", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	id := fsproto.NewChunkID()
	e.Chunks.Put(context.Background(), fs, id, make([]byte, 10))
	var ss []fsproto.BlockSlice
	for b := 0; b <= MaxCommitBlocks; b++ {
		ss = append(ss, fsproto.BlockSlice{Blk: uint32(b), Slice: fsproto.Slice{Len: 10, ID: id}})
	}
	if r := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpCommit, FS: fs, Ino: f, Slices: ss}); r.Errno != syscall.EFBIG {
		t.Fatalf("oversized commit: %v", r.Errno)
	}
	if a := must(t, e, &fsproto.Request{Op: fsproto.OpGetattr, FS: fs, Ino: f}).Attr; a.Size != 0 {
		t.Fatalf("a refused commit changed the file: %+v", a)
	}
}

func TestApplyLockSplitsAndMerges(t *testing.T) {
	w := func(s, e uint64) fsproto.Lock {
		return fsproto.Lock{Owner: 1, Type: fsproto.LockWrite, Start: s, End: e}
	}
	ls := applyLock(nil, w(0, 99))
	ls = applyLock(ls, fsproto.Lock{Owner: 1, Type: fsproto.Unlock, Start: 40, End: 59})
	if len(ls) != 2 || ls[0] != w(0, 39) || ls[1] != w(60, 99) {
		t.Fatalf("split: %+v", ls)
	}
	ls = applyLock(ls, w(40, 59))
	if len(ls) != 1 || ls[0] != w(0, 99) {
		t.Fatalf("merge: %+v", ls)
	}
	ls = applyLock(ls, fsproto.Lock{Owner: 1, Type: fsproto.Unlock, Start: 0, End: math.MaxUint64})
	if len(ls) != 0 {
		t.Fatalf("unlock all: %+v", ls)
	}
	other := lockHolder{sess: "s2", Lock: fsproto.Lock{Owner: 1, Type: fsproto.LockRead, Start: 10, End: 20}}
	if conflicts(other, "s1", &fsproto.Lock{Owner: 1, Type: fsproto.LockRead, Start: 0, End: 100}) {
		t.Fatal("two read locks conflict")
	}
	if !conflicts(other, "s1", &fsproto.Lock{Owner: 1, Type: fsproto.LockWrite, Start: 20, End: 30}) {
		t.Fatal("a write lock over a read lock of another session does not conflict")
	}
	if conflicts(other, "s2", &fsproto.Lock{Owner: 1, Type: fsproto.LockWrite, Start: 20, End: 30}) {
		t.Fatal("an owner conflicts with itself")
	}
}

// Many small writes to one block are merged into one slice, and the
// block reads the same before and after.
func TestCompactionMergesSlices(t *testing.T) {
	e, fs := newEngine(t)
	ctx := context.Background()
	f := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: "f", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	want := make([]byte, 4000)
	for i := 0; i < MaxSlices+4; i++ {
		data := []byte(fmt.Sprintf("write%03d", i))
		off := uint32(i * 150)
		id := fsproto.NewChunkID()
		e.Chunks.Put(context.Background(), fs, id, data)
		must(t, e, &fsproto.Request{Op: fsproto.OpCommit, FS: fs, Ino: f, Slices: []fsproto.BlockSlice{{Slice: fsproto.Slice{Off: off, Len: uint32(len(data)), ID: id}}}})
		copy(want[off:], data)
	}
	read := func() ([]byte, int) {
		sl := must(t, e, &fsproto.Request{Op: fsproto.OpReadBlocks, FS: fs, Ino: f, Blk: 0, BlkEnd: 0}).Blocks[0]
		got := make([]byte, 4000)
		for _, s := range sl {
			d, _ := e.Chunks.Get(context.Background(), fs, s.ID)
			copy(got[s.Off:s.Off+s.Len], d[s.ChunkOff:s.ChunkOff+s.Len])
		}
		return got, len(sl)
	}
	before, n := read()
	if n != MaxSlices+4 || string(before) != string(want) {
		t.Fatalf("before: %d slices", n)
	}
	go e.Maintain(ctx, time.Hour) // the commit queued the block
	deadline := time.Now().Add(5 * time.Second)
	for {
		after, n := read()
		if n == 1 {
			if string(after) != string(want) {
				t.Fatal("compaction changed the data")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("block still has %d slices", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A restricted session (an access point's) acts as its identity whatever
// uid the client claims, sees its root as inode 1, and reaches nothing
// outside it, even by naming inode numbers it should not know.
func TestRestrictedSessionConfinement(t *testing.T) {
	e, fs := newEngine(t)
	ctx := context.Background()
	secret := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: "secret", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	outside := mkdir(t, e, fs, fsproto.RootIno, "outside")
	uid, gid := uint32(1000), uint32(1000)
	spec := &Session{Uid: &uid, Gid: &gid}
	resp, err := e.OpenSession(ctx, fs, spec, "/app", &fsproto.Attr{Uid: 1000, Gid: 1000, Mode: 0o750}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sess := resp.Session
	root := e.Do(ctx, &fsproto.Request{Op: fsproto.OpGetattr, FS: fs, Session: sess, Ino: fsproto.RootIno})
	if root.Errno != 0 || root.Attr.Ino != fsproto.RootIno || root.Attr.Uid != 1000 || root.Attr.Mode&0o777 != 0o750 {
		t.Fatalf("the session's root: %v %+v", root.Errno, root.Attr)
	}
	f := e.Do(ctx, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Session: sess, Parent: fsproto.RootIno, Name: "f", Mode: syscall.S_IFREG | 0o644, Uid: 0, Gid: 0})
	if f.Errno != 0 || f.Attr.Uid != 1000 || f.Attr.Gid != 1000 {
		t.Fatalf("a file made by a client claiming root: %v %+v", f.Errno, f.Attr)
	}
	for _, r := range []*fsproto.Request{
		{Op: fsproto.OpGetattr, Ino: secret},
		{Op: fsproto.OpOpen, Ino: secret},
		{Op: fsproto.OpReadBlocks, Ino: secret},
		{Op: fsproto.OpLookup, Parent: outside, Name: "x"},
		{Op: fsproto.OpMknod, Parent: outside, Name: "x", Mode: syscall.S_IFREG | 0o644},
		{Op: fsproto.OpSetattr, Ino: secret, Valid: fsproto.SetMode, Mode: 0o777},
		{Op: fsproto.OpRename, Parent: fsproto.RootIno, Name: "f", NewParent: 999999, NewName: "x"},
	} {
		r.FS, r.Session = fs, sess
		if got := e.Do(ctx, r).Errno; got != syscall.EACCES && got != syscall.ENOENT {
			t.Fatalf("%s outside the root: %v", r.Op, got)
		}
	}
	// Replies say that an inode has xattrs, never their values: reading
	// one is a getxattr, which needs read permission.
	must(t, e, &fsproto.Request{Op: fsproto.OpSetxattr, FS: fs, Ino: secret, Key: "user.k", Value: []byte("v")})
	if a := must(t, e, &fsproto.Request{Op: fsproto.OpGetattr, FS: fs, Ino: secret}).Attr; !a.Xattrs || a.Xattr != nil {
		t.Fatalf("getattr of a file with an xattr: %+v", a)
	}
	if v := must(t, e, &fsproto.Request{Op: fsproto.OpGetxattr, FS: fs, Ino: secret, Key: "user.k"}).Value; string(v) != "v" {
		t.Fatalf("getxattr: %q", v)
	}
	// The file system's own root does not list the file; /app does.
	if l := must(t, e, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: e.mustLookup(t, fs, fsproto.RootIno, "app"), Name: "f"}); l.Attr.Uid != 1000 {
		t.Fatalf("f as the operator sees it: %+v", l.Attr)
	}
	// Not the owner, the session cannot chmod root's files it can see.
	other := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: e.mustLookup(t, fs, fsproto.RootIno, "app"), Name: "roots", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	if got := e.Do(ctx, &fsproto.Request{Op: fsproto.OpSetattr, FS: fs, Session: sess, Ino: other, Valid: fsproto.SetMode, Mode: 0o666}).Errno; got != syscall.EPERM {
		t.Fatalf("chmod of another user's file: %v", got)
	}
	if got := e.Do(ctx, &fsproto.Request{Op: fsproto.OpCommit, FS: fs, Session: sess, Ino: other, Slices: []fsproto.BlockSlice{{Slice: fsproto.Slice{Len: 1, ID: fsproto.NewChunkID()}}}}).Errno; got != syscall.EACCES {
		t.Fatalf("write to a 0644 file of another user: %v", got)
	}
}

func (e *Engine) mustLookup(t *testing.T, fs string, parent uint64, name string) uint64 {
	t.Helper()
	return must(t, e, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: parent, Name: name}).Attr.Ino
}

// A block-list request names 1 to MaxReadBlocks blocks; more, or an
// empty range, is refused with EINVAL.
func TestReadBlocksRange(t *testing.T) {
	e, fs := newEngine(t)
	f := must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: "f", Mode: syscall.S_IFREG | 0o644}).Attr.Ino
	must(t, e, &fsproto.Request{Op: fsproto.OpReadBlocks, FS: fs, Ino: f, Blk: 7, BlkEnd: 7 + fsproto.MaxReadBlocks - 1})
	for _, r := range [][2]uint32{{7, 6}, {0, fsproto.MaxReadBlocks}, {0, 1<<32 - 1}} {
		if got := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpReadBlocks, FS: fs, Ino: f, Blk: r[0], BlkEnd: r[1]}).Errno; got != syscall.EINVAL {
			t.Errorf("readblocks %d-%d: %v, want EINVAL", r[0], r[1], got)
		}
	}
}

// readdir with Plus gives each entry's attributes, as lookup would, as of
// the entries' revision; a restricted session that may read a directory
// but not search it gets EACCES for Plus and the names without.
func TestReaddirPlus(t *testing.T) {
	e, fs := newEngine(t)
	ctx := context.Background()
	var inos []uint64
	for i := 0; i < 2*plusBatch+7; i++ {
		inos = append(inos, must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: fmt.Sprintf("f%03d", i), Mode: syscall.S_IFREG | 0o600 | uint32(i%8)}).Attr.Ino)
	}
	sub := mkdir(t, e, fs, fsproto.RootIno, "sub")
	resp := must(t, e, &fsproto.Request{Op: fsproto.OpReaddir, FS: fs, Ino: fsproto.RootIno, Plus: true})
	if len(resp.Attrs) != len(resp.Entries) || len(resp.Entries) != len(inos)+1 {
		t.Fatalf("%d entries, %d attributes", len(resp.Entries), len(resp.Attrs))
	}
	for i, d := range resp.Entries {
		want := must(t, e, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: fsproto.RootIno, Name: d.Name}).Attr
		if a := resp.Attrs[i]; a == nil || a.Ino != d.Ino || a.Mode != want.Mode || a.Size != want.Size || a.Rev != want.Rev || a.Nlink != want.Nlink {
			t.Fatalf("%s: %+v, lookup says %+v", d.Name, a, want)
		}
	}
	// Directories (whose times are a key of their own, here after a
	// child was made in them) among many entries, read in several
	// batches at once.
	var spread [3]uint64
	for j := range spread {
		spread[j] = mkdir(t, e, fs, fsproto.RootIno, fmt.Sprint("spread", j))
	}
	for i := 0; i < 2*plusBatch+1; i++ {
		for j := range spread {
			mode := uint32(syscall.S_IFREG | 0o644)
			if i%50 == 0 {
				mode = syscall.S_IFDIR | 0o755
			}
			must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: spread[j], Name: fmt.Sprintf("e%03d", i), Mode: mode})
		}
	}
	must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: mustLookup(t, e, fs, spread[1], "e050"), Name: "child", Mode: syscall.S_IFREG | 0o644})
	for _, dir := range []uint64{fsproto.RootIno, spread[0], spread[1]} {
		resp := must(t, e, &fsproto.Request{Op: fsproto.OpReaddir, FS: fs, Ino: dir, Plus: true})
		for i, d := range resp.Entries {
			want := must(t, e, &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: dir, Name: d.Name}).Attr
			if a := resp.Attrs[i]; a == nil || a.Ino != d.Ino || a.Mode != want.Mode || a.Rev != want.Rev || a.Nlink != want.Nlink || a.Mtime != want.Mtime || a.Ctime != want.Ctime {
				t.Fatalf("directory %d, %s: %+v, lookup says %+v", dir, d.Name, a, want)
			}
		}
	}
	if plain := must(t, e, &fsproto.Request{Op: fsproto.OpReaddir, FS: fs, Ino: fsproto.RootIno}); plain.Attrs != nil {
		t.Fatalf("readdir without Plus carries attributes")
	}
	// A restricted session: r-- on sub for others.
	must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: sub, Name: "x", Mode: syscall.S_IFREG | 0o644})
	must(t, e, &fsproto.Request{Op: fsproto.OpSetattr, FS: fs, Ino: sub, Valid: fsproto.SetMode, Mode: 0o744})
	uid, gid := uint32(1000), uint32(1000)
	open, err := e.OpenSession(ctx, fs, &Session{Uid: &uid, Gid: &gid}, "/", nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &fsproto.Request{Op: fsproto.OpReaddir, FS: fs, Session: open.Session, Ino: sub, Plus: true}
	if got := e.Do(ctx, r).Errno; got != syscall.EACCES {
		t.Fatalf("readdirplus of an r-- directory by a restricted session: %v", got)
	}
	r.Plus = false
	if got := e.Do(ctx, r); got.Errno != 0 || len(got.Entries) != 1 || got.Attrs != nil {
		t.Fatalf("readdir of an r-- directory by a restricted session: %v %+v", got.Errno, got.Entries)
	}
}

// An unlink's reply carries the parent's attributes after it, as a
// create's does, so a client need not ask for them.
func TestUnlinkCarriesParent(t *testing.T) {
	e, fs := newEngine(t)
	d := mkdir(t, e, fs, fsproto.RootIno, "d")
	must(t, e, &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: d, Name: "f", Mode: syscall.S_IFREG | 0o644})
	before := must(t, e, &fsproto.Request{Op: fsproto.OpGetattr, FS: fs, Ino: d}).Attr
	time.Sleep(time.Millisecond)
	resp := must(t, e, &fsproto.Request{Op: fsproto.OpUnlink, FS: fs, Parent: d, Name: "f"})
	after := must(t, e, &fsproto.Request{Op: fsproto.OpGetattr, FS: fs, Ino: d}).Attr
	if resp.Dir == nil || resp.Dir.Ino != d || resp.Dir.Mtime != after.Mtime || resp.Dir.Mtime <= before.Mtime || resp.Dir.Nlink != after.Nlink || resp.Dir.Mode != after.Mode {
		t.Fatalf("unlink's reply says the parent is %+v; getattr says %+v", resp.Dir, after)
	}
}

// A session confined to a root is told names only in its root: the change
// stream covers the whole file system, and other names may be outside it.
func TestConfinedSessionEventsNameNothingElsewhere(t *testing.T) {
	e, fs := newEngine(t)
	uid, gid := uint32(1000), uint32(1000)
	open, err := e.OpenSession(context.Background(), fs, &Session{Uid: &uid, Gid: &gid}, "/app", &fsproto.Attr{Uid: 1000, Gid: 1000, Mode: 0o750}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	app := e.mustLookup(t, fs, fsproto.RootIno, "app")
	sub := mkdir(t, e, fs, app, "sub")
	for _, c := range []struct {
		in, want fsproto.Event
	}{
		{fsproto.Event{Parent: app, Name: "x"}, fsproto.Event{Parent: fsproto.RootIno, Name: "x"}},
		{fsproto.Event{Parent: sub, Name: "y"}, fsproto.Event{Parent: sub}},
		{fsproto.Event{Parent: fsproto.RootIno, Name: "secret-name"}, fsproto.Event{}},
		{fsproto.Event{Ino: fsproto.RootIno}, fsproto.Event{}},
		{fsproto.Event{Ino: app}, fsproto.Event{Ino: fsproto.RootIno}},
	} {
		ev := c.in
		e.PresentEvent(open.Session, &ev)
		if ev != c.want {
			t.Errorf("%+v presented as %+v, want %+v", c.in, ev, c.want)
		}
	}
}
