package e2e

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/cli"
	"github.com/berth-project/berth/internal/volume/block"
)

// BenchmarkBlockSnapshot snapshots a mounted xfs volume holding 1 GiB of
// random data into the server's chunk store over HTTP, as an agent does,
// then changes 10 MiB and snapshots again, and restores the second
// snapshot into a new image. It reports how long writes to the volume
// were suspended for each snapshot and the rates in MiB/s of volume data.
func BenchmarkBlockSnapshot(b *testing.B) {
	s, dir := benchServer(b, "berth-bench-snap-")
	blobs := agent.Blobs{C: &agent.Client{Endpoint: s.Endpoint(), HTTP: cli.NewHTTPClient()}}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		v := block.Paths(filepath.Join(dir, "agent"), "vol-bench")
		if err := v.Create(4 << 30); err != nil {
			b.Fatal(err)
		}
		if err := v.Format("xfs"); err != nil {
			b.Fatal(err)
		}
		if _, err := v.Mount("xfs"); err != nil {
			b.Fatal(err)
		}
		file := filepath.Join(v.MountPoint, "data")
		fillRandom(b, file, 0, 1<<30, int64(i))
		var prev *block.Manifest
		var key string
		snap := func() (time.Duration, time.Duration, block.Stats) {
			start := time.Now()
			var frozen time.Duration
			k, st, err := block.Snapshot(ctx, v.Image, blobs, prev, v.Freeze, func() error {
				frozen = time.Since(start)
				return v.Thaw()
			})
			if err != nil {
				b.Fatal(err)
			}
			if prev, err = block.ReadManifest(ctx, blobs, k); err != nil {
				b.Fatal(err)
			}
			key = k
			return frozen, time.Since(start), st
		}
		frozen1, took1, st1 := snap()
		fillRandom(b, file, 300<<20, 10<<20, int64(i)+100)
		frozen2, took2, st2 := snap()
		r := block.Paths(filepath.Join(dir, "restored"), "vol-bench")
		start := time.Now()
		if _, err := block.Restore(ctx, blobs, key, r.Image, 4<<30, nil); err != nil {
			b.Fatal(err)
		}
		took3 := time.Since(start)
		b.Logf("first: %d MiB uploaded, frozen %v, took %v; second: %d KiB uploaded, frozen %v, took %v; restore %v",
			st1.UploadedBytes>>20, frozen1, took1, st2.UploadedBytes>>10, frozen2, took2, took3)
		b.ReportMetric(frozen1.Seconds(), "first-frozen-s")
		b.ReportMetric(1024/took1.Seconds(), "first-MiB/s")
		b.ReportMetric(frozen2.Seconds(), "incremental-frozen-s")
		b.ReportMetric(1024/took2.Seconds(), "incremental-MiB/s")
		b.ReportMetric(1024/took3.Seconds(), "restore-MiB/s")
		v.Remove()
		r.Remove()
		os.RemoveAll(filepath.Join(dir, "server", "blobs"))
	}
}

// fillRandom writes n pseudo-random bytes at off and fsyncs.
func fillRandom(b *testing.B, path string, off, n, seed int64) {
	b.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewSource(seed))
	buf := make([]byte, 1<<20)
	for done := int64(0); done < n; done += int64(len(buf)) {
		r.Read(buf)
		if _, err := f.WriteAt(buf, off+done); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}
