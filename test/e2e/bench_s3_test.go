package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berth-project/berth/internal/server"
)

// BenchmarkSharedFSOnS3 measures a mount whose file system is on S3
// (versitygw on this machine's disk) side by side with the store's own
// throughput from the AWS SDK (4 MiB objects, 8 in flight, as the mount
// uploads), and the server's CPU per GiB a mount moves on S3 against the
// same on the default local store. The mount's bytes go straight to the
// store; the server signs their URLs, in batches.
func BenchmarkSharedFSOnS3(b *testing.B) {
	s3srv, store := s3Store(b, "fs")
	onS3 := start(b, func(c *server.Config) { c.Blobs = store; c.Log = testLogger() })
	local := start(b, func(c *server.Config) { c.Log = testLogger() })
	bin := buildBerth(b)
	fsOn := func(srv *server.Server) (*fsServer, string) {
		s := &fsServer{t: b, bin: bin, endpoint: srv.Endpoint(), srv: srv}
		return s, s.createFS("bench")
	}
	s3fs, s3id := fsOn(onS3)
	lfs, lid := fsOn(local)
	cli := s3srv.Client()
	const objects, size, inflight = 256, 4 << 20, 8
	payload := make([]byte, size)
	crand.Read(payload)
	parallel := func(fn func(i int)) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for w := 0; w < inflight; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					fn(i)
				}
			}()
		}
		for i := 0; i < objects; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		return float64(objects*size>>20) / time.Since(start).Seconds()
	}
	rawPut := func() float64 {
		return parallel(func(i int) {
			if _, err := cli.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("berth"), Key: aws.String(fmt.Sprintf("raw/%d", i)),
				Body: bytes.NewReader(payload), ContentLength: aws.Int64(size)}); err != nil {
				b.Fatal(err)
			}
		})
	}
	rawGet := func() float64 {
		return parallel(func(i int) {
			out, err := cli.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("berth"), Key: aws.String(fmt.Sprintf("raw/%d", i))})
			if err != nil {
				b.Fatal(err)
			}
			buf := bytes.NewBuffer(make([]byte, 0, size))
			buf.ReadFrom(out.Body)
			out.Body.Close()
		})
	}
	cpu := processCPU
	var idle float64
	// mountSeq writes 1 GiB through a fresh mount and reads it back twice
	// through others (nothing cached in them, each with an empty host
	// cache): once as the store left it after the write, as rawGet reads
	// right after rawPut, and once with the machine's page cache dropped,
	// so the store reads its disk. It returns MiB/s and the server's CPU
	// seconds per GiB over all three.
	mountSeq := func(s *fsServer, id string) (write, read, coldRead, cpuPerGiB float64) {
		// Only the transfers are measured: starting and stopping mounts
		// and dropping the page cache (whose kernel time is charged to
		// this process) are not the servers' work.
		var used float64
		measure := func(fn func()) {
			c0, t0 := cpu(), time.Now()
			fn()
			used += (cpu() - c0).Seconds() - idle*time.Since(t0).Seconds()
		}
		w := s.mountFS(id)
		os.Remove(w.path("bench.0.0"))
		measure(func() {
			_, write = fioJob(b, w.dir, "--rw=write", "--bs=1M", "--size=1G", "--ioengine=psync", "--end_fsync=1")
		})
		w.kill()
		r := s.mountFS(id, "--cache-dir", b.TempDir())
		measure(func() {
			_, read = fioJob(b, r.dir, "--rw=read", "--bs=1M", "--size=1G", "--ioengine=psync")
		})
		r.kill()
		r = s.mountFS(id, "--cache-dir", b.TempDir())
		dropCaches()
		measure(func() {
			_, coldRead = fioJob(b, r.dir, "--rw=read", "--bs=1M", "--size=1G", "--ioengine=psync")
		})
		os.Remove(r.path("bench.0.0"))
		r.kill()
		return write, read, coldRead, used / 3
	}
	// The process's CPU while nothing moves (etcd, the servers' loops) is
	// taken off what a mount's work costs.
	c0 := cpu()
	time.Sleep(5 * time.Second)
	idle = (cpu() - c0).Seconds() / 5
	b.Logf("idle CPU of the servers' process: %.3f s/s", idle)
	// warmReread reads a 1 GiB file through a mount whose host cache
	// already holds it (a first mount read it), page cache dropped, beside
	// a cold read of the same file on the local disk.
	localDir := b.TempDir()
	warmReread := func() (mount, local float64) {
		cache := b.TempDir()
		w := s3fs.mountFS(s3id)
		fioJob(b, w.dir, "--rw=write", "--bs=1M", "--size=1G", "--ioengine=psync", "--end_fsync=1")
		w.kill()
		first := s3fs.mountFS(s3id, "--cache-dir", cache)
		fioJob(b, first.dir, "--rw=read", "--bs=1M", "--size=1G", "--ioengine=psync")
		first.kill()
		again := s3fs.mountFS(s3id, "--cache-dir", cache)
		dropCaches()
		_, mount = fioJob(b, again.dir, "--rw=read", "--bs=1M", "--size=1G", "--ioengine=psync")
		os.Remove(again.path("bench.0.0"))
		again.kill()
		fioJob(b, localDir, "--rw=write", "--bs=1M", "--size=1G", "--ioengine=psync", "--end_fsync=1")
		dropCaches()
		_, local = fioJob(b, localDir, "--rw=read", "--bs=1M", "--size=1G", "--ioengine=psync")
		return mount, local
	}
	for i := 0; i < b.N; i++ {
		var warm, cold []float64
		for round := 0; round < 3; round++ {
			m, l := warmReread()
			warm, cold = append(warm, m), append(cold, l)
			b.Logf("round %d: reread from the host cache %.0f MiB/s, local disk cold read %.0f MiB/s", round, m, l)
		}
		b.ReportMetric(median(warm), "reread-cached-MiB/s")
		b.ReportMetric(median(cold), "reread-local-MiB/s")
		b.ReportMetric(100*median(warm)/median(cold), "reread-%")
		var put, get, coldGet, mw, mr, mcr, s3cpu, lcpu []float64
		for round := 0; round < 3; round++ {
			put = append(put, rawPut())
			get = append(get, rawGet())
			dropCaches()
			coldGet = append(coldGet, rawGet())
			w, r, cr, c := mountSeq(s3fs, s3id)
			mw, mr, mcr, s3cpu = append(mw, w), append(mr, r), append(mcr, cr), append(s3cpu, c)
			_, _, _, c = mountSeq(lfs, lid)
			lcpu = append(lcpu, c)
			b.Logf("round %d: raw put %.0f get %.0f (store's disk %.0f) MiB/s; mount on S3 write %.0f read %.0f (store's disk %.0f) MiB/s; server CPU per GiB: S3 %.3f s, local %.3f s",
				round, put[round], get[round], coldGet[round], w, r, cr, s3cpu[round], lcpu[round])
		}
		b.ReportMetric(median(put), "raw-put-MiB/s")
		b.ReportMetric(median(mw), "mount-write-MiB/s")
		b.ReportMetric(100*median(mw)/median(put), "write-%")
		b.ReportMetric(median(get), "raw-get-MiB/s")
		b.ReportMetric(median(mr), "mount-read-MiB/s")
		b.ReportMetric(100*median(mr)/median(get), "read-%")
		b.ReportMetric(median(coldGet), "raw-get-disk-MiB/s")
		b.ReportMetric(median(mcr), "mount-read-disk-MiB/s")
		b.ReportMetric(100*median(mcr)/median(coldGet), "read-disk-%")
		b.ReportMetric(median(s3cpu), "server-cpu-s3-s/GiB")
		b.ReportMetric(median(lcpu), "server-cpu-local-s/GiB")
		b.ReportMetric(100*median(s3cpu)/median(lcpu), "server-cpu-%")
	}
}

// processCPU is the CPU time this process (the servers in it) has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
