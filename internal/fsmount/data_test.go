package fsmount

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/server"
)

// flaky is a transport that fails chunk uploads or commits while told to,
// as a server that went away does.
type flaky struct {
	rt          http.RoundTripper
	failPuts    atomic.Bool
	failCommits atomic.Bool
	puts        atomic.Int32
}

func (t *flaky) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		t.puts.Add(1)
		if t.failPuts.Load() {
			return nil, errors.New("connection refused (injected)")
		}
	}
	if t.failCommits.Load() && r.Body != nil && strings.HasSuffix(r.URL.Path, "/fs/op") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(string(body), `"op":"commit"`) {
			return nil, errors.New("connection refused (injected)")
		}
	}
	return t.rt.RoundTrip(r)
}

// testFS starts a real server (embedded etcd, chunk directory) with a file
// system and returns a mount's FS for it, not attached to the kernel, whose
// traffic goes through tr when given.
func testFS(t *testing.T, cfg server.Config) (func(tr *flaky) *FS, string) {
	t.Helper()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	resp, err := http.Post(s.Endpoint()+"/berth/v1/fs/create", "application/json", strings.NewReader(`{"name":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list server.FSList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.FileSystems) != 1 {
		t.Fatalf("create: %v %+v", err, list)
	}
	id := list.FileSystems[0].ID
	return func(tr *flaky) *FS {
		c := &Conn{Endpoint: s.Endpoint(), FS: id, Patience: 300 * time.Millisecond}
		c.init(nil)
		if tr != nil {
			tr.rt = c.HTTP.Transport
			c.HTTP = &http.Client{Transport: tr}
		}
		r, e := c.Op(context.Background(), &fsproto.Request{Op: fsproto.OpSessionOpen, Host: "test"})
		if e != 0 {
			t.Fatal(e)
		}
		c.session = r.Session
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		return newFS(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)), 64<<20, c.fetch)
	}, id
}

func root() fuse.InHeader { return fuse.InHeader{NodeId: fsproto.RootIno} }

// create makes a file through f and writes data to it (buffered).
func create(t *testing.T, f *FS, name string, data []byte) (ino, fh uint64) {
	t.Helper()
	var out fuse.CreateOut
	if s := f.Create(nil, &fuse.CreateIn{InHeader: root(), Mode: 0o644, Flags: syscall.O_RDWR}, name, &out); !s.Ok() {
		t.Fatalf("create: %v", s)
	}
	ino, fh = out.NodeId, out.Fh
	if n, s := f.Write(nil, &fuse.WriteIn{InHeader: fuse.InHeader{NodeId: ino}, Fh: fh}, data); !s.Ok() || int(n) != len(data) {
		t.Fatalf("write: %v %d", s, n)
	}
	return ino, fh
}

// readBack reads a file through a fresh mount, which has nothing cached.
func readBack(t *testing.T, f *FS, name string) []byte {
	t.Helper()
	var e fuse.EntryOut
	if s := f.Lookup(nil, &fuse.InHeader{NodeId: fsproto.RootIno}, name, &e); !s.Ok() {
		t.Fatalf("lookup %s: %v", name, s)
	}
	var o fuse.OpenOut
	if s := f.Open(nil, &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: e.NodeId}, Flags: syscall.O_RDONLY}, &o); !s.Ok() {
		t.Fatalf("open: %v", s)
	}
	buf := make([]byte, e.Attr.Size)
	r, s := f.Read(nil, &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: e.NodeId}, Fh: o.Fh, Size: uint32(len(buf))}, buf)
	if !s.Ok() {
		t.Fatalf("read: %v", s)
	}
	got, _ := r.Bytes(buf)
	return got
}

func wantFlush(t *testing.T, f *FS, n *inode, want syscall.Errno, what string) {
	t.Helper()
	if e := f.flush(context.Background(), n); e != want {
		t.Fatalf("%s: %v, want %v", what, e, want)
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestFlushFailureIsNotSwallowed: when a chunk upload fails, every flush
// (a forked child's close, then the writer's own fsync) fails until one
// gets the data to the server; none of them reports success for data that
// was not committed, and the buffered data is committed once it can be.
func TestFlushFailureIsNotSwallowed(t *testing.T) {
	mount, _ := testFS(t, server.Config{})
	tr := &flaky{}
	f := mount(tr)
	data := randomBytes(300<<10, 1)
	ino, _ := create(t, f, "acked", data)
	n := f.node(ino, false)
	tr.failPuts.Store(true)
	ctx := context.Background()
	wantFlush(t, f, n, syscall.EIO, "the first flush while uploads fail")
	wantFlush(t, f, n, syscall.EIO, "a second flush while uploads fail (the first must not consume the error)")
	if got := readBack(t, mount(nil), "acked"); len(got) != 0 {
		t.Fatalf("a fresh mount sees %d bytes that were never committed", len(got))
	}
	// The writer reads its own data meanwhile.
	buf := make([]byte, len(data))
	got, release, e := f.read(ctx, n, buf, 0)
	if release != nil {
		defer release()
	}
	if e != 0 || !bytes.Equal(got, data) {
		t.Fatalf("the writer's read of its buffered data: %v, %d bytes", e, len(got))
	}
	tr.failPuts.Store(false)
	wantFlush(t, f, n, 0, "a flush after the server came back")
	if got := readBack(t, mount(nil), "acked"); !bytes.Equal(got, data) {
		t.Fatalf("a fresh mount reads %d bytes, want the %d written", len(got), len(data))
	}
}

// TestCommitOfExpiredChunk: data whose commit could not reach the server
// until its chunks were too old to be committed safely is uploaded again
// under new ids, and the flush that commits it succeeds.
func TestCommitOfExpiredChunk(t *testing.T) {
	mount, _ := testFS(t, server.Config{FSChunkGrace: 4 * time.Second})
	tr := &flaky{}
	f := mount(tr)
	data := randomBytes(5<<20, 2) // one whole block and a part of the next
	ino, _ := create(t, f, "late", data)
	n := f.node(ino, false)
	tr.failCommits.Store(true)
	wantFlush(t, f, n, syscall.EIO, "a flush while commits fail")
	puts := tr.puts.Load()
	time.Sleep(2500 * time.Millisecond) // older than half the grace, younger than all of it
	tr.failCommits.Store(false)
	wantFlush(t, f, n, 0, "a flush after the server came back")
	if again := tr.puts.Load() - puts; again != 2 {
		t.Fatalf("%d chunks uploaded again, want the 2 that expired", again)
	}
	if got := readBack(t, mount(nil), "late"); !bytes.Equal(got, data) {
		t.Fatalf("a fresh mount reads %d bytes, want the %d written", len(got), len(data))
	}
}
