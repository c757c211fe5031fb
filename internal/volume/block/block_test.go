package block

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/blob"
	blobfile "github.com/berth-project/berth/internal/blob/file"
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

func fileSum(t *testing.T, path string) [32]byte { return sectionSum(t, path, math.MaxInt64) }

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
			store := &watchedStore{Store: blob.Chunks{Objects: blobfile.New(filepath.Join(dir, "blobs"))}}
			ctx := context.Background()
			snap := func(prev *Manifest) (string, Stats) {
				key, st, err := Snapshot(ctx, v.Image, store, prev, func() error {
					store.frozen.Store(true)
					return v.Freeze()
				}, func() error {
					store.frozen.Store(false)
					return v.Thaw()
				})
				if err != nil {
					t.Fatal(err)
				}
				if n := store.putsFrozen.Load(); n != 0 {
					t.Fatalf("%d chunks were sent while writes were suspended", n)
				}
				return key, st
			}
			first, st1 := snap(nil)
			if st1.UploadedBytes < 1<<30 {
				t.Fatalf("first snapshot uploaded only %d bytes", st1.UploadedBytes)
			}
			m1, err := ReadManifest(ctx, store, first)
			if err != nil {
				t.Fatal(err)
			}
			writeRandom(t, file, 300<<20, 10<<20, 2)
			second, st2 := snap(m1)
			t.Logf("%s: first snapshot %d MiB, second %d MiB (%d chunks)", fs, st1.UploadedBytes>>20, st2.UploadedBytes>>20, st2.Uploaded)
			if st2.UploadedBytes > 11<<20 {
				t.Fatalf("second snapshot uploaded %d bytes, want ≤ 11 MiB", st2.UploadedBytes)
			}
			// Without the previous manifest, the store's own answer keeps
			// the snapshot incremental: only what freezing the file system
			// itself wrote is new.
			if _, st3 := snap(nil); st3.UploadedBytes > 1<<20 {
				t.Fatalf("a snapshot of an unchanged volume uploaded %d bytes", st3.UploadedBytes)
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

// watchedStore counts chunks put while the volume is frozen.
type watchedStore struct {
	blob.Store
	frozen     atomic.Bool
	putsFrozen atomic.Int64
}

func (w *watchedStore) Put(ctx context.Context, key string, data []byte) error {
	if w.frozen.Load() {
		w.putsFrozen.Add(1)
	}
	return w.Store.Put(ctx, key, data)
}

// TestSnapshotOfSparseImage snapshots an image that is mostly holes, with
// data regions that start and end inside chunks, and checks the restore
// is byte-identical and as sparse.
func TestSnapshotOfSparseImage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	v := Volume{Image: img}
	if err := v.Create(1 << 30); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, img, 700<<20, 1<<20, 1)
	writeRandom(t, img, ChunkSize-4096, 8192, 2)   // across a chunk boundary
	writeRandom(t, img, 5*ChunkSize+8192, 4096, 3) // inside one chunk
	writeRandom(t, img, (1<<30)-4096, 4096, 4)     // the last block
	ctx := context.Background()
	store := blob.Chunks{Objects: blobfile.New(filepath.Join(dir, "blobs"))}
	nop := func() error { return nil }
	key, st, err := Snapshot(ctx, img, store, nil, nop, nop)
	if err != nil {
		t.Fatal(err)
	}
	// 8 chunks of the 1 MiB region, 2 across the boundary, 1 and 1.
	if data := st.Chunks - st.Zero; st.Chunks != (1<<30)/ChunkSize || data != 12 || st.Uploaded != 12 {
		t.Fatalf("stats %+v, want 12 chunks with data of %d", st, (1<<30)/ChunkSize)
	}
	if _, err := os.Stat(img + ".snapshot"); !os.IsNotExist(err) {
		t.Fatalf("staging file left behind: %v", err)
	}
	restored := filepath.Join(dir, "restored")
	// Progress counts the data, not the holes: it reaches the 12 chunks'
	// worth, rising, and ends there.
	var calls, last, total int64
	progress := func(done, all int64) {
		if done < last || (total != 0 && all != total) {
			t.Errorf("progress went from %d to %d (of %d, then %d)", last, done, total, all)
		}
		calls, last, total = calls+1, done, all
	}
	if _, err := Restore(ctx, store, key, restored, 2<<30, progress); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != 12*ChunkSize || total != 12*ChunkSize {
		t.Fatalf("progress: %d calls, ended at %d of %d, want 12 chunks of data", calls, last, total)
	}
	a, b := fileSum(t, img), sectionSum(t, restored, 1<<30)
	if a != b {
		t.Fatal("restored image differs")
	}
	var s unix.Stat_t
	if err := unix.Stat(restored, &s); err != nil {
		t.Fatal(err)
	}
	if s.Size != 2<<30 || s.Blocks*512 > 4<<20 {
		t.Fatalf("restored image: size %d, %d bytes allocated", s.Size, s.Blocks*512)
	}
}

// sectionSum is the SHA-256 of the first n bytes of a file.
func sectionSum(t *testing.T, path string, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, io.LimitReader(f, n))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestProvisionIsAllOrNothing: an image appears only when filling it
// succeeded; a failed fill, or a partial file a crash left, leaves no image.
func TestProvisionIsAllOrNothing(t *testing.T) {
	v := Paths(t.TempDir(), "vol-p")
	os.MkdirAll(filepath.Dir(v.Image), 0o700)
	// What a crash in the middle of a fill leaves.
	if err := os.WriteFile(v.Image+".partial", []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := v.Provision(func(image string) error {
		if _, err := os.Stat(image); !os.IsNotExist(err) {
			t.Errorf("fill was handed a leftover partial file: %v", err)
		}
		os.WriteFile(image, []byte("some"), 0o600)
		return errors.New("the store went away")
	})
	if err == nil || v.Exists() {
		t.Fatalf("a failed fill: err %v, image exists %v", err, v.Exists())
	}
	if _, err := os.Stat(v.Image + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("a failed fill left its partial file: %v", err)
	}
	if err := v.Provision(func(image string) error { return os.WriteFile(image, []byte("whole"), 0o600) }); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(v.Image); err != nil || string(b) != "whole" {
		t.Fatalf("image after a good fill: %q %v", b, err)
	}
}
