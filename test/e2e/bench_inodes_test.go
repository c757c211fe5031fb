package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/fsproto"
)

// BenchmarkMountMemory: the resident memory of a mount that has listed
// (ls -l, readdirplus) a directory of 1,000,000 files, so the kernel was
// told of a million inodes: without a bound, with the default bound
// (--max-inodes 500000) and with 100,000. The files are made through the
// server's file system API directly (a million creates through FUSE would
// take a quarter of an hour here).
func BenchmarkMountMemory(b *testing.B) {
	srv, _ := benchServer(b, "berth-bench-inodes-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	id := s.createFS("million")
	const n = 1_000_000
	op := func(r *fsproto.Request) (*fsproto.Response, error) {
		r.FS = id
		body, _ := json.Marshal(r)
		resp, err := http.Post(srv.Endpoint()+"/berth/v1/fs/op", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out := &fsproto.Response{}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, err
		}
		if out.Errno != 0 {
			return nil, out.Errno
		}
		return out, nil
	}
	dir, err := op(&fsproto.Request{Op: fsproto.OpMknod, Parent: fsproto.RootIno, Name: "big", Mode: syscall.S_IFDIR | 0o755})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				if _, err := op(&fsproto.Request{Op: fsproto.OpMknod, Parent: dir.Attr.Ino, Name: fmt.Sprintf("f%07d", i), Mode: syscall.S_IFREG | 0o644}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Logf("%d files made in %v", n, time.Since(start).Round(time.Second))
	status := func(pid int, field string) float64 {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
		return 0
	}
	for i := 0; i < b.N; i++ {
		for _, bound := range []string{"-1", "500000", "100000"} {
			m := s.mountFS(id, "--max-inodes", bound)
			dropCaches()
			t0 := time.Now()
			ls := exec.Command("ls", "-l", m.path("big"))
			var out bytes.Buffer
			ls.Stdout = &out
			if err := ls.Run(); err != nil {
				b.Fatal(err)
			}
			took := time.Since(t0)
			lines := bytes.Count(out.Bytes(), []byte("\n"))
			time.Sleep(3 * time.Second) // the mount trims what it keeps every 0.5 s
			pid := m.cmd.Process.Pid
			rss, peak := status(pid, "VmRSS"), status(pid, "VmHWM")
			b.Logf("--max-inodes %s: ls -l of %d entries in %v; mount resident %.0f MiB (peak %.0f MiB)", bound, lines-1, took.Round(time.Millisecond), rss, peak)
			b.ReportMetric(rss, "rss-MiB-max-"+bound)
			m.kill()
		}
	}
}
