package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFSListingCarriesAttributes: a mount lists a directory another mount
// filled with its entries' attributes (readdirplus), so `ls -l` costs no
// lookup per entry, and what it shows is right: sizes and modes as
// written, a file the writer's mount changed (then died, kill -9) and one
// it removed show as they are now, not as listed before. (What a session
// that may list but not search a directory gets: fsmeta's
// TestReaddirPlus.)
func TestFSListingCarriesAttributes(t *testing.T) {
	s := startFSServer(t)
	id := s.createFS("list")
	w, r := s.mountFS(id), s.mountFS(id)
	const n = 300
	if err := os.Mkdir(w.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		p := w.path(fmt.Sprintf("d/f%03d", i))
		if err := os.WriteFile(p, make([]byte, i), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, os.FileMode(0o600+i%64)); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	lookups := func() int { return metricSum(t, s.endpoint, "berth_fs_ops_total", `op="lookup"`) }
	before := lookups()
	out, err := exec.Command("ls", "-ln", r.path("d")).CombinedOutput()
	if err != nil {
		t.Fatalf("ls -l: %v: %s", err, out)
	}
	if l := lookups() - before; l > 2 {
		t.Fatalf("ls -l of %d entries made %d lookups", n, l)
	}
	check := func(name string, size int64, mode os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(r.path("d/" + name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != size || fi.Mode().Perm() != mode {
			t.Fatalf("%s: size %d mode %v, want %d %v", name, fi.Size(), fi.Mode().Perm(), size, mode)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")[1:] // "total …" first
	if len(lines) != n {
		t.Fatalf("ls -l shows %d entries, want %d", len(lines), n)
	}
	for i, line := range lines {
		f := strings.Fields(line)
		if want := fmt.Sprintf("f%03d", i); f[len(f)-1] != want || f[4] != fmt.Sprint(i) {
			t.Fatalf("ls -l line %d: %q, want %s of %d bytes", i, line, want, i)
		}
		check(fmt.Sprintf("f%03d", i), int64(i), os.FileMode(0o600+i%64))
	}
	// The writer changes one file and removes another, then dies.
	if err := os.Truncate(w.path("d/f010"), 12345); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(w.path("d/f010"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(w.path("d/f020")); err != nil {
		t.Fatal(err)
	}
	w.kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Listing again gives the entries' attributes anew.
		ents, err := os.ReadDir(r.path("d"))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(r.path("d/f010"))
		_, gone := os.Lstat(r.path("d/f020"))
		if err == nil && fi.Size() == 12345 && fi.Mode().Perm() == 0o640 && len(ents) == n-1 && os.IsNotExist(gone) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the other mount's changes: %d entries, f010 %v %v, f020 %v", len(ents), fi, err, gone)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
