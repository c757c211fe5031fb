package agent

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/agentapi"
)

// TestEnsureVolumeOnceUnderRace: the poll that creates a volume and a task
// placed on it can both make its image at once. Both must succeed, on one
// whole, formatted image.
func TestEnsureVolumeOnceUnderRace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root (mkfs, mount)")
	}
	a := &Agent{cfg: Config{DataDir: t.TempDir()}}
	v := &agentapi.Volume{VolumeID: "vol-0123456789abcdef0", SizeInGiB: 1, FilesystemType: "xfs"}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.ensureVolume(context.Background(), v)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p := a.volumePaths(v.VolumeID)
	defer p.Remove()
	if out, err := exec.Command("xfs_repair", "-n", p.Image).CombinedOutput(); err != nil {
		t.Fatalf("the image is not a whole xfs file system: %v\n%s", err, out)
	}
	if _, err := p.Mount("xfs"); err != nil {
		t.Fatal(err)
	}
}

// TestImageLocks: one holder per image; a caller that must not wait is
// turned away while it is held; nothing is kept for images no one holds.
func TestImageLocks(t *testing.T) {
	var l imageLocks
	unlock := l.lock("vol-a")
	if _, ok := l.tryLock("vol-a"); ok {
		t.Fatal("tryLock got an image that is held")
	}
	other, ok := l.tryLock("vol-b")
	if !ok {
		t.Fatal("tryLock refused an image no one holds")
	}
	other()
	got, done := make(chan struct{}), make(chan struct{})
	go func() {
		unlock := l.lock("vol-a")
		close(got)
		unlock()
		close(done)
	}()
	select {
	case <-got:
		t.Fatal("a second holder got the image")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-done
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.locks) != 0 {
		t.Fatalf("locks kept for images no one holds: %v", l.locks)
	}
}
