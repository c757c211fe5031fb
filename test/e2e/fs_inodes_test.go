package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestFSLargeDirectoryAndBoundedInodes: a directory of more entries than
// one page a mount holds (8,192) lists every name once, and again after a
// rewind; a mount with --max-inodes keeps about that many inodes, asking
// the kernel to forget the rest (stats of all the files then look most of
// them up again), while a mount without the bound keeps them all (no
// lookup within the entry timeout). Files stay correct either way.
func TestFSLargeDirectoryAndBoundedInodes(t *testing.T) {
	s := startFSServer(t)
	id := s.createFS("many")
	w := s.mountFS(id)
	const n = 9000
	dir := w.path("many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("f%05d", i)
	}
	lookupsFor := func(m *fsMount) int {
		// A listing (readdirplus: every entry with its attributes), then
		// a pause for the mount to trim what it keeps, then a stat of
		// every file well within the 5 s entry timeout.
		d, err := os.Open(m.path("many"))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		names, err := d.Readdirnames(-1)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Fatalf("listed %d names, want %d (first %v)", len(names), n, names[:min(3, len(names))])
		}
		if _, err := d.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		again, err := d.Readdirnames(-1)
		if err != nil || len(again) != n {
			t.Fatalf("after a rewind: %d names, %v", len(again), err)
		}
		if _, err := os.ReadDir(m.path("many")); err != nil { // readdirplus, as ls -l
			t.Fatal(err)
		}
		for i := 0; i < n; i += 7 {
			os.Stat(filepath.Join(m.path("many"), want[i]))
		}
		time.Sleep(1500 * time.Millisecond)
		before := metricSum(t, s.endpoint, "berth_fs_ops_total", `op="lookup"`)
		for i := 0; i < n; i++ {
			st, err := os.Stat(filepath.Join(m.path("many"), want[i]))
			if err != nil || st.Size() != int64(len(fmt.Sprint(i))) {
				t.Fatalf("stat %s: %v %v", want[i], st, err)
			}
		}
		return metricSum(t, s.endpoint, "berth_fs_ops_total", `op="lookup"`) - before
	}
	unbounded := lookupsFor(s.mountFS(id, "--max-inodes", "-1"))
	bounded := lookupsFor(s.mountFS(id, "--max-inodes", "1000"))
	t.Logf("lookups for %d stats: %d unbounded, %d with --max-inodes 1000", n, unbounded, bounded)
	if unbounded > n/10 {
		t.Fatalf("a mount without a bound looked up %d of %d cached files", unbounded, n)
	}
	if bounded < n/2 {
		t.Fatalf("a mount bounded to 1,000 inodes looked up only %d of %d files: it kept them", bounded, n)
	}
	b, err := os.ReadFile(filepath.Join(w.path("many"), "f08999"))
	if err != nil || string(b) != "8999" {
		t.Fatalf("a file's content: %q %v", b, err)
	}
}
