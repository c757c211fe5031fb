package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSharedFSCreateRates: creates (open O_CREAT + close of an empty
// file) through a mount, beside raw etcd transactions of a create's shape
// on the same server in the same run: one process making 10,000 files in
// one directory (Python, as the issue measures), against one transaction
// at a time; and 16 processes, each in a directory of its own and all in
// one shared directory, against 16 transactions at a time.
func BenchmarkSharedFSCreateRates(b *testing.B) {
	srv, _ := benchServer(b, "berth-bench-creates-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	m := s.mountFS(s.createFS("creates"))
	defer m.kill()
	py := func(dir string, n int) *exec.Cmd {
		return exec.Command("python3", "-c", fmt.Sprintf(`
import os
os.chdir(%q)
for i in range(%d):
    os.close(os.open("f%%07d" %% i, os.O_CREAT|os.O_WRONLY, 0o644))
`, dir, n))
	}
	run := func(dirs []string, n int) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for i, d := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := py(d, n)
				if len(dirs) > 1 && dirs[0] == dirs[len(dirs)-1] {
					cmd = exec.Command("python3", "-c", strings.Replace(cmd.Args[2], `"f%07d"`, fmt.Sprintf(`"p%d-%%07d"`, i), 1))
				}
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Errorf("python: %v %s", err, out)
				}
			}()
		}
		wg.Wait()
		return float64(n*len(dirs)) / time.Since(start).Seconds()
	}
	for i := 0; i < b.N; i++ {
		one := m.path(fmt.Sprint("one", i))
		os.Mkdir(one, 0o755)
		single := run([]string{one}, 10000)
		raw1 := rawCreateTxns(b, srv.Client(), 1, 5*time.Second)
		var own []string
		shared := m.path(fmt.Sprint("shared", i))
		os.Mkdir(shared, 0o755)
		var same []string
		for p := 0; p < 16; p++ {
			d := m.path(fmt.Sprintf("own%d-%d", i, p))
			os.Mkdir(d, 0o755)
			own = append(own, d)
			same = append(same, shared)
		}
		par := run(own, 1000)
		parShared := run(same, 1000)
		raw16 := rawCreateTxns(b, srv.Client(), 16, 5*time.Second)
		b.Logf("1 process: %.0f creates/s (%.0f µs), raw etcd %.0f txn/s (%.0f µs): %.2fx the latency", single, 1e6/single, raw1, 1e6/raw1, raw1/single)
		b.Logf("16 processes: %.0f/s in 16 directories, %.0f/s in one; raw etcd 16 at a time %.0f txn/s: %.0f %% and %.0f %%", par, parShared, raw16, 100*par/raw16, 100*parShared/raw16)
		b.ReportMetric(single, "creates-1/s")
		b.ReportMetric(raw1/single, "x-raw-latency")
		b.ReportMetric(par, "creates-16dirs/s")
		b.ReportMetric(parShared, "creates-1dir-16procs/s")
		b.ReportMetric(100*par/raw16, "pct-raw-16")
	}
}
