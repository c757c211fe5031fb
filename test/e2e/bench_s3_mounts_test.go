package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/server"
)

// BenchmarkSharedFSOnS3Mounts measures eight mount processes writing at
// once to one file system on S3 (versitygw on this machine) against one
// mount writing alone, the same bytes in all: 1 GiB (eight files of
// 128 MiB, or one of 1 GiB), fio with 1 MiB writes and a final fsync.
// The mounts move the bytes to the store themselves, so the server's CPU
// per GiB should not grow with the number of mounts.
func BenchmarkSharedFSOnS3Mounts(b *testing.B) {
	_, store := s3Store(b, "mounts")
	srv := start(b, func(c *server.Config) { c.Blobs = store; c.Log = testLogger() })
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint(), srv: srv}
	id := s.createFS("mounts")
	// write runs n mounts, each writing size MiB, and returns the
	// aggregate MiB/s and the server's CPU seconds per GiB.
	write := func(n, size int) (float64, float64) {
		var mounts []*fsMount
		for i := 0; i < n; i++ {
			mounts = append(mounts, s.mountFS(id))
		}
		errs := make(chan error, n)
		var wg sync.WaitGroup
		c0, t0 := processCPU(), time.Now()
		for i, m := range mounts {
			wg.Add(1)
			go func(i int, m *fsMount) {
				defer wg.Done()
				out, err := exec.Command("fio", "--name=w", "--directory="+m.dir, fmt.Sprintf("--filename=f%d", i), "--rw=write", "--bs=1M",
					fmt.Sprintf("--size=%dM", size), "--ioengine=psync", "--end_fsync=1").CombinedOutput()
				if err != nil {
					errs <- fmt.Errorf("fio on mount %d: %v: %s", i, err, out)
				}
			}(i, m)
		}
		wg.Wait()
		took, used := time.Since(t0), processCPU()-c0
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		for i, m := range mounts {
			os.Remove(fmt.Sprintf("%s/f%d", m.dir, i))
			m.kill()
		}
		mib := float64(n * size)
		return mib / took.Seconds(), used.Seconds() / (mib / 1024)
	}
	for i := 0; i < b.N; i++ {
		var one, eight, cpuOne, cpuEight []float64
		for round := 0; round < 3; round++ {
			r1, c1 := write(1, 1024)
			r8, c8 := write(8, 128)
			one, eight, cpuOne, cpuEight = append(one, r1), append(eight, r8), append(cpuOne, c1), append(cpuEight, c8)
			b.Logf("round %d: one mount %.0f MiB/s (server %.3f s/GiB); eight mounts %.0f MiB/s together (server %.3f s/GiB)", round, r1, c1, r8, c8)
		}
		b.ReportMetric(median(one), "one-mount-MiB/s")
		b.ReportMetric(median(eight), "eight-mounts-MiB/s")
		b.ReportMetric(median(cpuOne), "server-cpu-one-s/GiB")
		b.ReportMetric(median(cpuEight), "server-cpu-eight-s/GiB")
	}
}
