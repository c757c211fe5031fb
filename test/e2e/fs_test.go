package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/server"
)

// fsServer is a Berth server for shared file system tests.
type fsServer struct {
	t        testing.TB
	bin      string
	endpoint string
	srv      *server.Server
}

func (s *fsServer) post(path string, in, out any) error {
	return (&agent.Client{Endpoint: s.endpoint}).Post(context.Background(), path, in, out)
}

func (s *fsServer) createFS(name string) string {
	s.t.Helper()
	var out server.FSList
	if err := s.post("/berth/v1/fs/create", &server.FSCreateRequest{Name: name}, &out); err != nil {
		s.t.Fatalf("create file system: %v", err)
	}
	return out.FileSystems[0].ID
}

func (s *fsServer) fsck(id string, repair bool) *fsmeta.FsckReport {
	s.t.Helper()
	rep := &fsmeta.FsckReport{}
	if err := s.post("/berth/v1/fs/fsck", &server.FSRef{ID: id, Repair: repair}, rep); err != nil {
		s.t.Fatalf("fsck: %v", err)
	}
	return rep
}

// fsMount is a mount served by a `berth fs mount` process of its own, as
// on a host of its own.
type fsMount struct {
	dir string
	cmd *exec.Cmd
}

// mountFS mounts id with the berth binary and waits until it is mounted.
func (s *fsServer) mountFS(id string, flags ...string) *fsMount {
	s.t.Helper()
	mp := filepath.Join(s.t.TempDir(), "mnt")
	r, w, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, append([]string{"fs", "mount", "--endpoint", s.endpoint, id, mp}, flags...)...)
	cmd.Env = append(os.Environ(), fsproto.ReadyEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	w.Close()
	if ok, why := fsproto.ReadReady(r); !ok {
		cmd.Wait()
		s.t.Fatalf("mount of %s failed: %s", id, why)
	}
	r.Close()
	m := &fsMount{dir: mp, cmd: cmd}
	s.t.Cleanup(func() { m.kill() })
	return m
}

// kill ends the mount process with SIGKILL, as a crash would, and clears
// the dead mount point.
func (m *fsMount) kill() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
	unix.Unmount(m.dir, unix.MNT_DETACH)
}

func (m *fsMount) path(p string) string { return filepath.Join(m.dir, p) }

func startFSServer(t *testing.T, mod ...func(*server.Config)) *fsServer {
	requireFUSE(t)
	s := start(t, append([]func(*server.Config){func(c *server.Config) {
		c.FSSessionTTL = 2 * time.Second
		c.FSOrphanGrace = time.Second
		c.Log = testLogger()
	}}, mod...)...)
	return &fsServer{t: t, bin: buildBerth(t), endpoint: s.Endpoint(), srv: s}
}

func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("these tests need FUSE (/dev/fuse): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root to mount FUSE file systems")
	}
}

// TestFSPosix runs go-fuse's POSIX conformance suite, every test, against
// a Berth mount. One test, FcntlFlockLocksFile, expects a process's second
// descriptor of a file to conflict with the fcntl lock its first holds;
// POSIX (and every kernel file system) says the locks belong to the
// process, and go-fuse's own run of the suite on a local directory skips
// it for that reason. Berth is held to the kernel's behaviour instead: the
// same calls on the local disk and on the mount give the same results.
func TestFSPosix(t *testing.T) {
	s := startFSServer(t)
	runPosix(t, s.mountFS(s.createFS("posix")))
}

func runPosix(t *testing.T, m *fsMount) {
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			dir := m.path(name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if name == "FcntlFlockLocksFile" {
				local, berth := lockTwoDescriptors(t, t.TempDir()), lockTwoDescriptors(t, dir)
				if local != berth || berth != nil {
					t.Fatalf("second descriptor's fcntl lock: local disk %v, Berth %v", local, berth)
				}
				return
			}
			fn(t, dir)
		})
	}
}

// lockTwoDescriptors write-locks a file through one descriptor and then
// read-locks it through a second one of the same process (fcntl locks)
// and through an open file description lock (which must conflict).
func lockTwoDescriptors(t *testing.T, dir string) error {
	f1, err := os.Create(filepath.Join(dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	if err := unix.FcntlFlock(f1.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	f2, err := os.OpenFile(filepath.Join(dir, "test"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if err := unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_RDLCK}); err != unix.EAGAIN {
		t.Fatalf("%s: OFD lock against a held fcntl lock: %v", dir, err)
	}
	return unix.FcntlFlock(f2.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_RDLCK})
}

// TestFSPosixExtras covers what the suite does not: rename flags, times
// with nanoseconds, chmod/chown, sparse files, long names, statfs.
func TestFSPosixExtras(t *testing.T) {
	s := startFSServer(t)
	id := s.createFS("extras")
	m := s.mountFS(id)
	p := m.path
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(p(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "A")
	write("b", "B")
	if err := unix.Renameat2(unix.AT_FDCWD, p("a"), unix.AT_FDCWD, p("b"), unix.RENAME_NOREPLACE); err != unix.EEXIST {
		t.Fatalf("RENAME_NOREPLACE over an existing file: %v", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, p("a"), unix.AT_FDCWD, p("b"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	if a, _ := os.ReadFile(p("a")); string(a) != "B" {
		t.Fatalf("after exchange a = %q", a)
	}
	// A directory cannot move into itself.
	os.MkdirAll(p("x/y"), 0o755)
	if err := os.Rename(p("x"), p("x/y/z")); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("rename into own subdirectory: %v", err)
	}
	// Times with nanoseconds, chmod, chown.
	ts := []unix.Timespec{{Sec: 1700000000, Nsec: 123456789}, {Sec: 1600000000, Nsec: 987654321}}
	if err := unix.UtimesNano(p("a"), ts); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(p("a"), &st)
	if st.Mtim != ts[1] || st.Atim != ts[0] {
		t.Fatalf("times: atime %v mtime %v", st.Atim, st.Mtim)
	}
	if err := os.Chmod(p("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p("a"), 1000, 1001); err != nil {
		t.Fatal(err)
	}
	unix.Stat(p("a"), &st)
	if st.Mode&0o777 != 0o600 || st.Uid != 1000 || st.Gid != 1001 {
		t.Fatalf("mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
	}
	// Sparse file: a write far out leaves zeros before it; a 1 TiB size is fine.
	f, err := os.Create(p("sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 10<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), 1<<40-4); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b := make([]byte, 8)
	g, _ := os.Open(p("sparse"))
	g.ReadAt(b, 10<<20-5)
	tail := make([]byte, 4)
	g.ReadAt(tail, 1<<40-4)
	fi, _ := g.Stat()
	g.Close()
	if !bytes.Equal(b, []byte("\x00\x00\x00\x00\x00end")) || string(tail) != "tail" || fi.Size() != 1<<40 {
		t.Fatalf("sparse: %q %q size %d", b, tail, fi.Size())
	}
	// Truncate down then up reads zeros where the data was.
	write("t", "0123456789")
	os.Truncate(p("t"), 3)
	os.Truncate(p("t"), 6)
	if d, _ := os.ReadFile(p("t")); string(d) != "012\x00\x00\x00" {
		t.Fatalf("truncate: %q", d)
	}
	// Names up to 255 bytes.
	long := strings.Repeat("n", 255)
	write(long, "x")
	if err := os.WriteFile(p(long+"n"), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("256-byte name: %v", err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(m.dir, &sfs); err != nil || sfs.Namelen != 255 || sfs.Blocks == 0 {
		t.Fatalf("statfs: %v %+v", err, sfs)
	}
	// An open, unlinked file keeps its data until the last close.
	h, _ := os.Create(p("tmp"))
	h.WriteString("still here")
	h.Sync()
	os.Remove(p("tmp"))
	time.Sleep(2 * time.Second) // past the orphan grace
	got := make([]byte, 10)
	if _, err := h.ReadAt(got, 0); err != nil || string(got) != "still here" {
		t.Fatalf("open unlinked file: %v %q", err, got)
	}
	h.Close()
	// Once closed, the orphan is freed, and the file system checks clean.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep := s.fsck(id, false)
		if len(rep.Problems) != 0 {
			t.Fatalf("fsck: %+v", rep)
		}
		if rep.Orphans == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan not freed after the last close: %+v", rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFSTwoMounts: two mount processes of one file system, as two hosts.
func TestFSTwoMounts(t *testing.T) {
	s := startFSServer(t)
	id := s.createFS("shared")
	a, b := s.mountFS(id), s.mountFS(id)
	// Sequential reads come to the mount 1 MiB at a time: the mount raised
	// its device's read-ahead above the kernel's default of 128 KiB.
	var st unix.Stat_t
	unix.Stat(a.dir, &st)
	if ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))); err != nil || strings.TrimSpace(string(ra)) != "4096" {
		t.Fatalf("the mount's read-ahead: %q %v, want 4096 KiB", ra, err)
	}

	// Close-to-open: written and closed on A, then opened on B: all of it.
	data := make([]byte, 9<<20+123)
	rand.Read(data)
	if err := os.WriteFile(a.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(b.path("f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("B read %d bytes, err %v; want the %d A wrote", len(got), err, len(data))
	}
	// Overwrite in the middle on B; A's next open sees it.
	f, _ := os.OpenFile(b.path("f"), os.O_WRONLY, 0)
	f.WriteAt([]byte("patched"), 5<<20)
	f.Close()
	copy(data[5<<20:], "patched")
	if got, _ := os.ReadFile(a.path("f")); !bytes.Equal(got, data) {
		t.Fatal("A does not see B's overwrite after reopening")
	}
	// Rename and unlink on A are seen by B well before B's kernel cache
	// entries expire: the server pushes the change.
	os.Stat(b.path("f")) // B caches the entry
	start := time.Now()
	os.Rename(a.path("f"), a.path("g"))
	eventually(t, "B sees the rename", func() bool {
		_, errF := os.Stat(b.path("f"))
		_, errG := os.Stat(b.path("g"))
		return errors.Is(errF, os.ErrNotExist) && errG == nil
	})
	os.Remove(a.path("g"))
	eventually(t, "B sees the unlink", func() bool {
		_, err := os.Stat(b.path("g"))
		return errors.Is(err, os.ErrNotExist)
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("B saw A's rename and unlink after %v; its cached entries live 5s, so the push did not work", took)
	}

	// Extended attributes: B answers "none" for a file it knows has none
	// (the kernel asks before every write), and a change on A is pushed
	// to it well before its attributes time out.
	// B asks for a trusted.* xattr through an open file: as for
	// security.capability, the kernel checks no file permission first, so
	// nothing makes it refresh the file's attributes.
	os.WriteFile(a.path("x"), []byte("x"), 0o644)
	bx, err := os.Open(b.path("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer bx.Close()
	buf := make([]byte, 64)
	if _, err := unix.Fgetxattr(int(bx.Fd()), "trusted.tag", buf); err != unix.ENODATA {
		t.Fatalf("B's getxattr of a file without xattrs: %v", err)
	}
	start = time.Now()
	if err := unix.Setxattr(a.path("x"), "trusted.tag", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees A's xattr", func() bool {
		n, err := unix.Fgetxattr(int(bx.Fd()), "trusted.tag", buf)
		return err == nil && string(buf[:n]) == "blue"
	})
	if n, err := unix.Flistxattr(int(bx.Fd()), buf); err != nil || string(buf[:n]) != "trusted.tag\x00" {
		t.Fatalf("B lists %q, %v", buf[:n], err)
	}
	unix.Removexattr(a.path("x"), "trusted.tag")
	eventually(t, "B sees A's xattr removed", func() bool {
		_, err := unix.Fgetxattr(int(bx.Fd()), "trusted.tag", buf)
		return err == unix.ENODATA
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("B saw A's xattr changes after %v: the push did not reach its xattr knowledge", took)
	}
	// POSIX ACLs and SELinux labels are not supported (as on EFS): said
	// as EOPNOTSUPP, which ls -l remembers for the whole file system
	// instead of asking for every file; other namespaces still work.
	// An ACL of user::rw-, group::r--, other::r-- in the kernel's form.
	acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	os.Mkdir(a.path("acldir"), 0o755)
	for name, target := range map[string]string{"system.posix_acl_access": "x", "system.posix_acl_default": "acldir", "security.selinux": "x"} {
		if _, err := unix.Getxattr(a.path(target), name, buf); err != unix.EOPNOTSUPP {
			t.Fatalf("getxattr %s: %v, want EOPNOTSUPP", name, err)
		}
		value := acl
		if name == "security.selinux" {
			value = []byte("system_u:object_r:tmp_t:s0")
		}
		if err := unix.Setxattr(a.path(target), name, value, 0); err != unix.EOPNOTSUPP {
			t.Fatalf("setxattr %s: %v, want EOPNOTSUPP", name, err)
		}
	}
	if err := unix.Setxattr(a.path("x"), "security.other", []byte("kept"), 0); err != nil {
		t.Fatalf("setxattr security.other: %v", err)
	}
	if n, err := unix.Getxattr(a.path("x"), "security.other", buf); err != nil || string(buf[:n]) != "kept" {
		t.Fatalf("getxattr security.other: %q %v", buf[:n], err)
	}

	// A directory's attributes after creates in it: the creating mount
	// answers from what its create returned; both mounts agree with the
	// server, and B's create in it is seen by A.
	os.Mkdir(a.path("dir"), 0o755)
	dirStat := func(m *fsMount) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Stat(m.path("dir"), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := dirStat(a)
	time.Sleep(20 * time.Millisecond)
	os.WriteFile(a.path("dir/x"), nil, 0o644)
	os.Mkdir(a.path("dir/sub"), 0o755)
	afterA := dirStat(a)
	if afterA.Mtim == before.Mtim || afterA.Nlink != 3 {
		t.Fatalf("A's view of the directory after its creates: mtime %v (was %v), nlink %d", afterA.Mtim, before.Mtim, afterA.Nlink)
	}
	if fresh := dirStat(s.mountFS(id)); fresh.Mtim != afterA.Mtim || fresh.Nlink != afterA.Nlink {
		t.Fatalf("the server has mtime %v nlink %d, A shows %v %d", fresh.Mtim, fresh.Nlink, afterA.Mtim, afterA.Nlink)
	}
	time.Sleep(20 * time.Millisecond)
	os.Mkdir(b.path("dir/fromB"), 0o755)
	eventually(t, "A sees B's mkdir in the directory's attributes", func() bool {
		st := dirStat(a)
		return st.Nlink == 4 && st.Mtim != afterA.Mtim
	})

	// A directory A made itself: A answers the kernel's lookups of missing
	// names there without asking the server, yet B's change is pushed to
	// A well before A's own knowledge would expire (5 s), a name B makes
	// is never created twice, and a create without O_EXCL opens B's file.
	for _, d := range []string{"mine", "mine2"} {
		if err := os.Mkdir(a.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(a.path(d+"/a"), []byte("from A"), 0o644)
		for _, n := range []string{"b", "c"} {
			if err := os.WriteFile(b.path(d+"/"+n), []byte("from B"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	pushed := time.Now()
	eventually(t, "A sees B's file in a directory A made", func() bool {
		got, err := os.ReadFile(a.path("mine/b"))
		return err == nil && string(got) == "from B"
	})
	if took := time.Since(pushed); took > 2*time.Second {
		t.Fatalf("A saw B's file after %v: not pushed", took)
	}
	if _, err := os.OpenFile(a.path("mine2/b"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, os.ErrExist) {
		t.Fatalf("A created %q that B had made: %v", "mine2/b", err)
	}
	if fc, err := os.OpenFile(a.path("mine2/c"), os.O_CREATE|os.O_RDWR, 0o644); err != nil {
		t.Fatal(err)
	} else {
		got, _ := io.ReadAll(fc)
		fc.Close()
		if string(got) != "from B" {
			t.Fatalf("A's O_CREAT open of B's file reads %q", got)
		}
	}
	if got, err := os.ReadFile(b.path("mine/a")); err != nil || string(got) != "from A" {
		t.Fatalf("B reads A's file: %q %v", got, err)
	}

	// Concurrent appends under flock from both mounts lose nothing.
	const perMount = 200
	var wg sync.WaitGroup
	for i, m := range []*fsMount{a, b} {
		wg.Add(1)
		go func(i int, m *fsMount) {
			defer wg.Done()
			fh, err := os.OpenFile(m.path("log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			defer fh.Close()
			for j := 0; j < perMount; j++ {
				if err := unix.Flock(int(fh.Fd()), unix.LOCK_EX); err != nil {
					t.Error(err)
					return
				}
				fmt.Fprintf(fh, "mount%d line%03d\n", i, j)
				if err := unix.Flock(int(fh.Fd()), unix.LOCK_UN); err != nil {
					t.Error(err)
					return
				}
			}
		}(i, m)
	}
	wg.Wait()
	logData, _ := os.ReadFile(a.path("log"))
	lines := strings.Split(strings.TrimSuffix(string(logData), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	if len(lines) != 2*perMount || len(seen) != 2*perMount {
		t.Fatalf("appends under flock: %d lines, %d distinct, want %d", len(lines), len(seen), 2*perMount)
	}

	// A byte-range lock held on A blocks B.
	fa, _ := os.OpenFile(a.path("locked"), os.O_CREATE|os.O_RDWR, 0o644)
	defer fa.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 100, Len: 50}
	if err := unix.FcntlFlock(fa.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	fb, _ := os.OpenFile(b.path("locked"), os.O_RDWR, 0)
	defer fb.Close()
	try := unix.Flock_t{Type: unix.F_WRLCK, Start: 120, Len: 10}
	if err := unix.FcntlFlock(fb.Fd(), unix.F_SETLK, &try); err != unix.EAGAIN {
		t.Fatalf("B locked a range A holds: %v", err)
	}
	probe := unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 0}
	if err := unix.FcntlFlock(fb.Fd(), unix.F_GETLK, &probe); err != nil || probe.Type != unix.F_WRLCK || probe.Start != 100 || probe.Len != 50 {
		t.Fatalf("F_GETLK on B: %v %+v", err, probe)
	}
	free := unix.Flock_t{Type: unix.F_WRLCK, Start: 200, Len: 10}
	if err := unix.FcntlFlock(fb.Fd(), unix.F_SETLK, &free); err != nil {
		t.Fatalf("B could not lock a free range: %v", err)
	}
	// A blocking lock on B waits until A releases.
	got := make(chan error, 1)
	go func() {
		w := unix.Flock_t{Type: unix.F_WRLCK, Start: 100, Len: 1}
		got <- unix.FcntlFlock(fb.Fd(), unix.F_SETLKW, &w)
	}()
	select {
	case err := <-got:
		t.Fatalf("F_SETLKW returned while A held the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	un := unix.Flock_t{Type: unix.F_UNLCK, Start: 100, Len: 50}
	unix.FcntlFlock(fa.Fd(), unix.F_SETLK, &un)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("F_SETLKW did not get the lock after A released it")
	}
}

// TestFSMountKilledMidWrite: a mount killed with SIGKILL while writing
// and holding a lock leaves fsck clean, and its lock is released once its
// session lease expires.
func TestFSMountKilledMidWrite(t *testing.T) {
	s := startFSServer(t)
	id := s.createFS("crashy")
	a, b := s.mountFS(id), s.mountFS(id)
	fb, err := os.OpenFile(b.path("data"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(fb.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// B writes without end; kill it in the middle.
	go func() {
		buf := make([]byte, 1<<20)
		for i := 0; ; i++ {
			if _, err := fb.Write(buf); err != nil {
				return
			}
			if i%8 == 7 {
				fb.Sync()
			}
		}
	}()
	time.Sleep(time.Second)
	b.kill()
	fa, err := os.OpenFile(a.path("data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	if err := unix.Flock(int(fa.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Fatalf("lock of the killed mount was free at once: %v", err)
	}
	eventually(t, "the killed mount's lock is released after its lease", func() bool {
		return unix.Flock(int(fa.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
	})
	if rep := s.fsck(id, false); len(rep.Problems) != 0 {
		t.Fatalf("fsck after a killed mount: %+v", rep)
	}
}

// TestFSServerKill9: SIGKILL of the server in the middle of a stream of
// creates, renames and writes; after a restart every write acknowledged by
// fsync and close is intact and fsck is clean. The writer is a process of
// its own, as an application is: a process holding a file open on the
// mount would wait in its own fork of the new server (the child's close of
// the inherited descriptor flushes the file, which waits for the server).
func TestFSServerKill9(t *testing.T) {
	requireFUSE(t)
	bin := buildBerth(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startProcess(t, bin, dir, addr)
	defer func() { srv.Process.Kill(); srv.Wait() }()
	s := &fsServer{t: t, bin: bin, endpoint: "http://" + addr}
	id := s.createFS("durable")
	m := s.mountFS(id)

	stopWriter := startWriter(t, m.dir)
	time.Sleep(1500 * time.Millisecond)
	srv.Process.Kill() // SIGKILL
	srv.Wait()
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	srv = startProcess(t, bin, dir, addr)
	t.Logf("server restarted in %v", time.Since(t0).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	t0 = time.Now()
	acked := stopWriter()
	t.Logf("writer stopped %v after being told", time.Since(t0).Round(time.Millisecond))
	if len(acked) < 10 {
		t.Fatalf("only %d files were acknowledged", len(acked))
	}
	fresh := s.mountFS(id) // no cache of the writer's: what the server has
	for _, i := range acked {
		name, data := writerFile(i)
		got, err := os.ReadFile(fresh.path(name))
		if err != nil || !bytes.Equal(got, data) {
			first := -1
			for i := 0; i < min(len(got), len(data)); i++ {
				if got[i] != data[i] {
					first = i
					break
				}
			}
			st1, _ := os.Stat(fresh.path(name))
			st2, _ := os.Stat(m.path(name))
			viaWriter, _ := os.ReadFile(m.path(name))
			var s1, s2 int64 = -1, -1
			if st1 != nil {
				s1 = st1.Size()
			}
			if st2 != nil {
				s2 = st2.Size()
			}
			t.Fatalf("acknowledged file %s: err %v; read %d bytes, wrote %d, first difference at %d; size %d on a fresh mount, %d on the writer's (which reads %d bytes)",
				name, err, len(got), len(data), first, s1, s2, len(viaWriter))
		}
	}
	if rep := s.fsck(id, false); len(rep.Problems) != 0 {
		t.Fatalf("fsck after kill -9: %+v", rep)
	}
	t.Logf("%d acknowledged files intact across the server's kill -9", len(acked))
}

// startWriter runs writerMain in a process of its own, writing into dir;
// stop tells it to finish and returns the files it acknowledged.
func startWriter(t *testing.T, dir string) (stop func() []int) {
	t.Helper()
	writer := exec.Command(os.Args[0])
	writer.Env = append(os.Environ(), "BERTH_TEST_WRITER="+dir)
	writer.Stderr = os.Stderr
	in, err := writer.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := writer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill() })
	acks := make(chan []int, 1)
	go func() {
		var got []int
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var i int
			if _, err := fmt.Sscan(sc.Text(), &i); err == nil {
				got = append(got, i)
			}
		}
		acks <- got
	}()
	return func() []int {
		in.Close()
		acked := <-acks
		if err := writer.Wait(); err != nil {
			t.Fatalf("writer: %v", err)
		}
		return acked
	}
}

// writerFile is the name and content of the writer's i-th file.
func writerFile(i int) (string, []byte) {
	data := make([]byte, 1000+i*37%300000)
	r := mrand.New(mrand.NewPCG(uint64(i), 7))
	for k := range data {
		data[k] = byte(r.Uint32())
	}
	return fmt.Sprintf("f%05d", i), data
}

// writerMain is TestFSServerKill9's writer process: it writes files into
// dir (create, write, fsync, close, rename) until its standard input
// closes, printing the number of each file once all of that succeeded.
func writerMain(dir string) int {
	var stopped atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stopped.Store(true)
	}()
	for i := 0; !stopped.Load(); i++ {
		name, data := writerFile(i)
		tmp := filepath.Join(dir, "tmp-"+name)
		f, err := os.Create(tmp)
		if err != nil {
			continue
		}
		_, werr := f.Write(data)
		serr := f.Sync()
		cerr := f.Close()
		if werr != nil || serr != nil || cerr != nil {
			continue
		}
		if os.Rename(tmp, filepath.Join(dir, name)) != nil {
			continue
		}
		fmt.Println(i)
	}
	return 0
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFSCommands: berth fs create/ls/rm/fsck through the binary, a mounted
// file system cannot be removed, and with access keys the server refuses
// an unsigned mount.
func TestFSCommands(t *testing.T) {
	requireFUSE(t)
	s := start(t, func(c *server.Config) {
		c.Credentials = map[string]string{"AKIDFS": "fs-secret"}
		c.RequireAuth = true
	})
	bin := buildBerth(t)
	run := func(env []string, args ...string) (string, error) {
		if args[1] != "umount" {
			args = append(args, "--endpoint", s.Endpoint())
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	creds := []string{"AWS_ACCESS_KEY_ID=AKIDFS", "AWS_SECRET_ACCESS_KEY=fs-secret"}
	if out, err := run(nil, "fs", "create", "nokey"); err == nil || !strings.Contains(out, "UnrecognizedClientException") {
		t.Fatalf("unsigned create: %v %s", err, out)
	}
	out, err := run(creds, "fs", "create", "data", "-o", "json")
	if err != nil {
		t.Fatal(err, out)
	}
	var created []server.FSDescription
	json.Unmarshal([]byte(out), &created)
	if len(created) != 1 || !fsproto.ValidFSID(created[0].ID) {
		t.Fatalf("create: %s", out)
	}
	id := created[0].ID
	if out, err := run(creds, "fs", "create", "data"); err == nil || !strings.Contains(out, "FileSystemAlreadyExists") {
		t.Fatalf("second create with one name: %v %s", err, out)
	}
	mp := filepath.Join(t.TempDir(), "m")
	if out, err := run(nil, "fs", "mount", "--detach", id, mp); err == nil {
		t.Fatalf("an unsigned mount was served: %s", out)
	}
	if out, err := run(creds, "fs", "mount", "--detach", id, mp); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer unix.Unmount(mp, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(mp, "hello"), []byte("world"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without a signature or a mount token nothing is read or written.
	for _, probe := range []struct{ method, path, body string }{
		{"POST", "/berth/v1/fs/op", `{"op":"lookup","fs":"` + id + `","parent":1,"name":"hello"}`},
		{"POST", "/berth/v1/fs/op", `{"op":"session.open","fs":"` + id + `"}`},
		{"GET", "/berth/v1/fs/chunks/" + id + "/" + fsproto.NewChunkID(), ""},
		{"PUT", "/berth/v1/fs/chunks/" + id + "/" + fsproto.NewChunkID(), "data"},
		{"GET", "/berth/v1/fs/events?fs=" + id, ""},
	} {
		req, _ := http.NewRequest(probe.method, s.Endpoint()+probe.path, strings.NewReader(probe.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || !strings.Contains(string(b), "UnrecognizedClientException") {
			t.Fatalf("unsigned %s %s: HTTP %d %s", probe.method, probe.path, resp.StatusCode, b)
		}
	}
	if out, _ := run(creds, "fs", "ls"); !strings.Contains(out, id) || !strings.Contains(out, "data") {
		t.Fatalf("ls: %s", out)
	}
	if out, err := run(creds, "fs", "rm", id); err == nil || !strings.Contains(out, "FileSystemInUse") {
		t.Fatalf("rm while mounted: %v %s", err, out)
	}
	// A detached mount that fails says why, and leaves no directory behind.
	nowhere := filepath.Join(t.TempDir(), "nowhere")
	if out, err := run(creds, "fs", "mount", "--detach", "fs-0123456789abcdef0", nowhere); err == nil || !strings.Contains(out, "does not exist") || fileExists(nowhere) {
		t.Fatalf("a failed detached mount: %v %s (directory left: %v)", err, out, fileExists(nowhere))
	}
	if out, err := run(creds, "fs", "fsck", id); err != nil || !strings.Contains(out, "clean") {
		t.Fatalf("fsck: %v %s", err, out)
	}
	// Mount targets and access points; a mount through the access point, over TLS.
	if out, err := run(creds, "fs", "mount-target", "create", id, "us-east-1a"); err != nil || !strings.Contains(out, "us-east-1a") {
		t.Fatalf("mount-target create: %v %s", err, out)
	}
	out, err = run(creds, "fs", "access-point", "create", id, "--uid", "1000", "--gid", "1000", "--path", "/ap",
		"--owner-uid", "1000", "--owner-gid", "1000", "--permissions", "0700", "-o", "json")
	var aps []struct{ AccessPointId string }
	if json.Unmarshal([]byte(out), &aps); err != nil || len(aps) != 1 {
		t.Fatalf("access-point create: %v %s", err, out)
	}
	mp2 := filepath.Join(t.TempDir(), "ap")
	if out, err := run(creds, "fs", "mount", "--detach", "--tls", "--access-point", aps[0].AccessPointId, id, mp2); err != nil {
		t.Fatalf("mount through the access point: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(mp2, "mine"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mp, "ap", "mine"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("file written as root through the access point: %v uid %d", err, st.Uid)
	}
	if out, err := run(nil, "fs", "umount", mp2); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	if out, err := run(creds, "fs", "access-point", "ls", id); err != nil || !strings.Contains(out, "1000:1000") || !strings.Contains(out, "/ap") {
		t.Fatalf("access-point ls: %v %s", err, out)
	}
	out, _ = run(creds, "fs", "mount-target", "ls", id, "-o", "json")
	var mts []struct{ MountTargetId string }
	json.Unmarshal([]byte(out), &mts)
	if len(mts) != 1 {
		t.Fatalf("mount-target ls: %s", out)
	}
	if out, err := run(nil, "fs", "umount", mp); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	// Unmounted but with a mount target: rm says that is why.
	eventually(t, "rm names the mount target", func() bool {
		out, err := run(creds, "fs", "rm", id)
		return err != nil && strings.Contains(out, "has mount targets (in us-east-1a)")
	})
	if out, err := run(creds, "fs", "mount-target", "rm", mts[0].MountTargetId); err != nil {
		t.Fatalf("mount-target rm: %v %s", err, out)
	}
	eventually(t, "the session closes after unmount", func() bool {
		out, err := run(creds, "fs", "rm", id)
		return err == nil && out == ""
	})
	if out, err := run(creds, "fs", "ls", id); err == nil || !strings.Contains(out, "FileSystemNotFound") {
		t.Fatalf("ls of a removed file system: %v %s", err, out)
	}
}

// postWithToken posts JSON to the mount API with a mount token, over TLS
// verified against ca when it is given.
func postWithToken(ca []byte, endpoint, token string, in, out any) error {
	body, _ := json.Marshal(in)
	hc := http.DefaultClient
	if ca != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		endpoint = "https://" + strings.TrimPrefix(endpoint, "http://")
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/berth/v1/fs/op", bytes.NewReader(body))
	req.Header.Set("X-Berth-Mount-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
