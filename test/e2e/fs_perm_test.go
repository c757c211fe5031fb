package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFSRevokedPermissionTakesEffectAtOnce: taking a directory's search
// or write permission away (chmod, chown) stops the next call through
// it at once on the same mount, as on ext4, and on another mount as soon
// as the change is pushed, whatever the kernels cache.
func TestFSRevokedPermissionTakesEffectAtOnce(t *testing.T) {
	s := startFSServer(t)
	id := s.createFS("perm")
	a, b := s.mountFS(id), s.mountFS(id)
	for _, m := range []*fsMount{a, b} { // test dirs are 0700: let uid 65534 reach the mounts
		for d := filepath.Dir(m.dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
	}
	nobody := func(args ...string) error {
		out, err := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("%v: %v %s", args, err, out)
		}
		return err
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range []*fsMount{a, b} {
		p := m.path
		dir := []string{"na", "nb"}[i]
		must(os.Mkdir(p(dir), 0o755))
		must(os.Chown(p(dir), 65534, 65534))
		// Warm the kernel's caches of both mounts with the path.
		if nobody("touch", p(dir+"/n2"), p(dir+"/n3")) != nil {
			t.Fatal("the owner cannot create in its directory")
		}
		other := a
		if m == a {
			other = b
		}
		if nobody("chmod", "0600", other.path(dir+"/n2")) != nil {
			t.Fatal("the owner cannot chmod through the other mount")
		}
		// Search permission goes: the very next call fails on this mount.
		must(os.Chmod(p(dir), 0o644))
		for _, args := range [][]string{{"chmod", "0600", p(dir + "/n2")}, {"truncate", "-s", "0", p(dir + "/n2")}, {"cat", p(dir + "/n2")}, {"ln", p(dir + "/n2"), p(dir + "/n4")}} {
			if nobody(args...) == nil {
				t.Fatalf("%v succeeded right after the directory's search permission was removed", args)
			}
		}
		// And on the other mount once the change is pushed.
		deadline := time.Now().Add(3 * time.Second)
		for nobody("chmod", "0600", other.path(dir+"/n2")) == nil {
			if time.Now().After(deadline) {
				t.Fatal("the other mount still walks through the directory 3 s after its search permission was removed")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Write permission goes: no unlink on this mount.
		must(os.Chmod(p(dir), 0o555))
		if nobody("rm", "-f", p(dir+"/n3")) == nil {
			t.Fatal("unlink succeeded right after the directory's write permission was removed")
		}
		// Ownership goes: a 0700 directory now root's is closed to the old owner.
		must(os.Chmod(p(dir), 0o700))
		if nobody("chmod", "0644", p(dir+"/n2")) != nil {
			t.Fatal("the owner lost access to its own 0700 directory")
		}
		must(os.Chown(p(dir), 0, 0))
		if nobody("chmod", "0644", p(dir+"/n2")) == nil {
			t.Fatal("chmod through a directory succeeded right after its owner changed")
		}
	}
}
