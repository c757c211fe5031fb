package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/server"
)

// fioJob runs one fio job and returns IOPS and MiB/s.
func fioJob(b *testing.B, dir string, args ...string) (iops, mibps float64) {
	b.Helper()
	cmd := exec.Command("fio", append([]string{"--name=bench", "--directory=" + dir, "--output-format=json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("fio (Debian package fio) in %s: %v", dir, err)
	}
	var r fioResult
	if err := json.Unmarshal(out, &r); err != nil || len(r.Jobs) == 0 {
		b.Fatalf("fio output: %v", err)
	}
	j := r.Jobs[0]
	return j.Read.IOPS + j.Write.IOPS, (j.Read.BW + j.Write.BW) / 1024
}

func dropCaches() { os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0) }

// createFiles creates n empty files in dir from `workers` goroutines and
// returns files per second.
func createFiles(b *testing.B, dir string, n, workers int) float64 {
	b.Helper()
	os.MkdirAll(dir, 0o755)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%07d", i)))
				if err != nil {
					b.Error(err)
					return
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// statFiles stats the first n files createFiles made, round after round,
// for d, after one round that warms the caches.
func statFiles(b *testing.B, dir string, n int, d time.Duration) float64 {
	for i := 1; i <= n; i++ {
		os.Stat(filepath.Join(dir, fmt.Sprintf("f%07d", i)))
	}
	count := 0
	start := time.Now()
	for time.Since(start) < d {
		for i := 1; i <= n; i++ {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%07d", i))); err != nil {
				b.Fatal(err)
			}
		}
		count += n
	}
	return float64(count) / time.Since(start).Seconds()
}

// benchServer starts a server with its data in a temp dir, both gone when
// the benchmark ends.
func benchServer(b *testing.B, name string) (*server.Server, string) {
	dir, _ := os.MkdirTemp("", name)
	s, err := server.Start(context.Background(), server.Config{DataDir: dir + "/server", Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(); os.RemoveAll(dir) })
	return s, dir
}

// BenchmarkSharedFS measures a Berth shared file system mount (the mount
// in a process of its own, the server in this one, both on loopback)
// against the same work on the local disk under the same temp directory,
// side by side in one run.
func BenchmarkSharedFS(b *testing.B) {
	srv, dir := benchServer(b, "berth-bench-fs-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	m := s.mountFS(s.createFS("bench"))
	defer m.kill()
	local := filepath.Join(dir, "local")
	os.MkdirAll(local, 0o755)
	for i := 0; i < b.N; i++ {
		seqRounds(b, m.dir, local)
		for _, side := range []struct{ name, dir string }{{"berth", m.dir}, {"local", local}} {
			// 4 KiB random reads of a 256 MiB file read once before (warm cache).
			args := []string{"--filename=rand.dat", "--size=256M", "--bs=4k", "--ioengine=psync"}
			fioJob(b, side.dir, append([]string{"--rw=write", "--bs=1M", "--end_fsync=1"}, args[:2]...)...)
			fioJob(b, side.dir, append([]string{"--rw=read"}, args...)...)
			iops, _ := fioJob(b, side.dir, append([]string{"--rw=randread", "--runtime=5", "--time_based"}, args...)...)
			b.ReportMetric(iops, "randread4k-warm-"+side.name+"-iops")
			const files = 5000
			cdir := filepath.Join(side.dir, fmt.Sprintf("creates%d", i))
			b.ReportMetric(createFiles(b, cdir, files, 1), "creates-1thread-"+side.name+"/s")
			b.ReportMetric(createParallel(b, cdir+"p", files, 16), "creates-16threads-"+side.name+"/s")
			b.ReportMetric(statFiles(b, cdir, 1000, 2*time.Second), "stat-warm-"+side.name+"/s")
			os.RemoveAll(filepath.Join(side.dir, "rand.dat"))
		}
	}
}

// seqRounds writes 1 GiB sequentially (1 MiB writes to a new file, a
// final fsync) and reads it back after dropping the page cache, through
// the mount and on the local disk, side by side: 5 writes and 5 cold
// reads a side.
func seqRounds(b *testing.B, mount, local string) {
	job := func(dir, rw string) func() float64 {
		return func() float64 {
			args := []string{"--rw=" + rw, "--bs=1M", "--size=1G", "--ioengine=psync"}
			if rw == "write" {
				os.Remove(filepath.Join(dir, "bench.0.0")) // the first write, not an overwrite
				args = append(args, "--end_fsync=1")
			} else {
				dropCaches()
			}
			_, mibps := fioJob(b, dir, args...)
			return mibps
		}
	}
	for _, j := range []struct {
		rw     string
		rounds int
	}{{"write", 5}, {"read", 5}} {
		rw := j.rw
		berth, loc := sideBySide(j.rounds, job(mount, rw), job(local, rw))
		b.Logf("seq%s MiB/s: berth %.0f, local %.0f", rw, berth, loc)
		b.ReportMetric(median(berth), "seq"+rw+"-berth-MiB/s")
		b.ReportMetric(median(loc), "seq"+rw+"-local-MiB/s")
		b.ReportMetric(100*median(berth)/median(loc), "seq"+rw+"-%")
	}
	os.Remove(filepath.Join(mount, "bench.0.0"))
	os.Remove(filepath.Join(local, "bench.0.0"))
}

// createParallel creates n files from `workers` goroutines, each in a
// directory of its own (one directory's creates are serialized by the
// kernel's directory lock, on any file system).
func createParallel(b *testing.B, dir string, n, workers int) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			d := filepath.Join(dir, fmt.Sprint(w))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Error(err)
				return
			}
			for i := 0; i < n/workers; i++ {
				f, err := os.Create(filepath.Join(d, fmt.Sprintf("f%07d", i)))
				if err != nil {
					b.Error(err)
					return
				}
				f.Close()
			}
		}(w)
	}
	wg.Wait()
	return float64(n/workers*workers) / time.Since(start).Seconds()
}

// BenchmarkSharedFSCreates measures creates alone on a fresh mount (in
// BenchmarkSharedFS they come after 2 GiB of fio traffic): 3,000 files
// from one thread, then 8,000 from 16 threads, each in a directory of its
// own.
func BenchmarkSharedFSCreates(b *testing.B) {
	srv, _ := benchServer(b, "berth-bench-fs-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	m := s.mountFS(s.createFS("bench"))
	defer m.kill()
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(m.dir, fmt.Sprint("c", i))
		b.ReportMetric(createFiles(b, dir, 3000, 1), "creates-1thread/s")
		b.ReportMetric(createParallel(b, dir+"p", 8000, 16), "creates-16threads/s")
	}
}

// BenchmarkSharedFSListing times a cold `ls -l` of a directory of 10,000
// empty files: through a fresh mount (nothing cached; another mount made
// the files) against the same on the local disk with the page cache
// dropped, three rounds each, and counts the lookups a listing sent.
func BenchmarkSharedFSListing(b *testing.B) {
	srv, _ := benchServer(b, "berth-bench-fs-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	id := s.createFS("list")
	const n = 10000
	w := s.mountFS(id)
	createFiles(b, filepath.Join(w.dir, "big"), n, 16)
	w.kill()
	local := filepath.Join(b.TempDir(), "big")
	createFiles(b, local, n, 16)
	ls := func(dir string) float64 {
		cmd := exec.Command("ls", "-l", dir)
		cmd.Stdout = io.Discard
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0).Seconds()
	}
	for i := 0; i < b.N; i++ {
		var mount, disk []float64
		var lookups int
		for round := 0; round < 3; round++ {
			m := s.mountFS(id)
			dropCaches()
			l0 := metricSum(b, s.endpoint, "berth_fs_ops_total", `op="lookup"`)
			mount = append(mount, ls(filepath.Join(m.dir, "big")))
			lookups = metricSum(b, s.endpoint, "berth_fs_ops_total", `op="lookup"`) - l0
			m.kill()
			dropCaches()
			disk = append(disk, ls(local))
			b.Logf("round %d: mount %.3f s (%d lookups), local disk %.3f s", round, mount[round], lookups, disk[round])
		}
		b.ReportMetric(median(mount), "mount-s")
		b.ReportMetric(median(disk), "local-s")
		b.ReportMetric(median(mount)/median(disk), "x-local")
		b.ReportMetric(float64(lookups), "lookups")
	}
}
