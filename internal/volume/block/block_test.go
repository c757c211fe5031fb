package block

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/blob"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("block volume tests need root (loop devices, mount)")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Fatalf("block volume tests need loop devices: %v", err)
	}
}

func writeRandom(t *testing.T, path string, off, n int64, seed int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewSource(seed))
	buf := make([]byte, 1<<20)
	for done := int64(0); done < n; done += int64(len(buf)) {
		r.Read(buf)
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), n-done)], off+done); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestIncrementalSnapshotAndRestore writes 1 GiB into an xfs volume on a
// loop device, snapshots it, changes 10 MiB, snapshots again, and checks
// the second upload is at most 11 MiB, that a restore is byte-identical, and
// that the second snapshot stays restorable without the first's manifest.
func TestIncrementalSnapshotAndRestore(t *testing.T) {
	requireRoot(t)
	for _, fs := range []string{"xfs"} {
		t.Run(fs, func(t *testing.T) {
			dir := t.TempDir()
			v := Paths(dir, "vol-a")
			if err := v.Create(2 << 30); err != nil {
				t.Fatal(err)
			}
			if err := v.Format(fs); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Mount(fs); err != nil {
				t.Fatal(err)
			}
			defer v.Remove()
			file := filepath.Join(v.MountPoint, "data")
			writeRandom(t, file, 0, 1<<30, 1)
			store := blob.Dir{Path: filepath.Join(dir, "blobs")}
			ctx := context.Background()
			snap := func() (string, Stats) {
				if err := v.Freeze(); err != nil {
					t.Fatal(err)
				}
				defer v.Thaw()
				key, st, err := Snapshot(ctx, v.Image, store)
				if err != nil {
					t.Fatal(err)
				}
				return key, st
			}
			first, st1 := snap()
			if st1.UploadedBytes < 1<<30 {
				t.Fatalf("first snapshot uploaded only %d bytes", st1.UploadedBytes)
			}
			writeRandom(t, file, 300<<20, 10<<20, 2)
			second, st2 := snap()
			t.Logf("%s: first snapshot %d MiB, second %d MiB (%d chunks)", fs, st1.UploadedBytes>>20, st2.UploadedBytes>>20, st2.Uploaded)
			if st2.UploadedBytes > 11<<20 {
				t.Fatalf("second snapshot uploaded %d bytes, want ≤ 11 MiB", st2.UploadedBytes)
			}
			want := fileSum(t, file)
			// The first snapshot's manifest goes; its chunks the second needs stay.
			if err := store.Delete(ctx, first); err != nil {
				t.Fatal(err)
			}
			r := Paths(filepath.Join(dir, "elsewhere"), "vol-b")
			if _, err := Restore(ctx, store, second, r.Image, 2<<30, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Mount(fs); err != nil {
				t.Fatal(err)
			}
			defer r.Remove()
			if got := fileSum(t, filepath.Join(r.MountPoint, "data")); got != want {
				t.Fatal("restored file differs")
			}
		})
	}
}

// BenchmarkSnapshotRestore measures a full snapshot of a 256 MiB image of
// random data into a local chunk store, and its restore, in MiB/s.
func BenchmarkSnapshotRestore(b *testing.B) {
	dir := b.TempDir()
	img := filepath.Join(dir, "img")
	f, _ := os.Create(img)
	r := rand.New(rand.NewSource(1))
	buf := make([]byte, 1<<20)
	for i := 0; i < 256; i++ {
		r.Read(buf)
		f.Write(buf)
	}
	f.Sync()
	f.Close()
	ctx := context.Background()
	var snapDur, restDur time.Duration
	for i := 0; i < b.N; i++ {
		store := blob.Dir{Path: filepath.Join(dir, fmt.Sprintf("blobs%d", i))}
		start := time.Now()
		key, _, err := Snapshot(ctx, img, store)
		if err != nil {
			b.Fatal(err)
		}
		snapDur += time.Since(start)
		start = time.Now()
		if _, err := Restore(ctx, store, key, filepath.Join(dir, fmt.Sprintf("restored%d", i)), 256<<20, nil); err != nil {
			b.Fatal(err)
		}
		restDur += time.Since(start)
	}
	b.ReportMetric(float64(256*b.N)/snapDur.Seconds(), "snapshot-MiB/s")
	b.ReportMetric(float64(256*b.N)/restDur.Seconds(), "restore-MiB/s")
}
