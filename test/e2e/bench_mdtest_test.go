package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkSharedFSMdtest is mdtest's easy case on two mounts of one file
// system: 8 workers (4 on each mount, each in a directory of its own)
// create 100,000 empty files, stat each of them through the other mount
// (cold: that mount never saw them), and remove them; beside raw etcd
// transactions of a create's shape on the same server (a compare that
// the entry is absent, three puts: entry, inode, parent's times), 8 at
// a time, through the server's own client.
func BenchmarkSharedFSMdtest(b *testing.B) {
	srv, _ := benchServer(b, "berth-bench-mdtest-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	id := s.createFS("mdtest")
	mounts := []*fsMount{s.mountFS(id), s.mountFS(id)}
	const workers, total = 8, 100000
	per := total / workers
	dir := func(mount, w int) string { return filepath.Join(mounts[mount].dir, fmt.Sprintf("w%d", w)) }
	phase := func(name string, fn func(w, i int) error) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					if err := fn(w, i); err != nil {
						b.Errorf("%s: %v", name, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rate := float64(total) / time.Since(start).Seconds()
		b.Logf("%s: %.0f per s", name, rate)
		return rate
	}
	for w := 0; w < workers; w++ {
		if err := os.Mkdir(dir(w%2, w), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	name := func(i int) string { return fmt.Sprintf("f%07d", i) }
	for n := 0; n < b.N; n++ {
		b.ReportMetric(phase("create", func(w, i int) error {
			f, err := os.Create(filepath.Join(dir(w%2, w), name(i)))
			if err == nil {
				err = f.Close()
			}
			return err
		}), "creates/s")
		b.ReportMetric(phase("stat (other mount)", func(w, i int) error {
			_, err := os.Stat(filepath.Join(dir((w+1)%2, w), name(i)))
			return err
		}), "stats/s")
		b.ReportMetric(phase("remove", func(w, i int) error {
			return os.Remove(filepath.Join(dir(w%2, w), name(i)))
		}), "removes/s")
	}
	b.ReportMetric(rawCreateTxns(b, srv.Client(), workers, 5*time.Second), "etcd-create-txn/s")
}

// rawCreateTxns runs create-shaped transactions for d from n goroutines.
func rawCreateTxns(b *testing.B, cli *clientv3.Client, n int, d time.Duration) float64 {
	var count atomic.Int64
	inode := string(make([]byte, 200))
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				entry := fmt.Sprintf("/bench/create/d%d/e%d", w, i)
				_, err := cli.Txn(context.Background()).If(clientv3.Compare(clientv3.CreateRevision(entry), "=", 0)).
					Then(clientv3.OpPut(entry, "12345"), clientv3.OpPut(fmt.Sprintf("/bench/create/i/%d-%d", w, i), inode),
						clientv3.OpPut(fmt.Sprintf("/bench/create/t/%d", w), "times")).Commit()
				if err != nil {
					b.Error(err)
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / d.Seconds()
}
