package fsmount

import (
	"context"
	"runtime"
	"testing"
)

// BenchmarkKnownInodes reports the mount's memory per inode the kernel
// knows (a cached entry): a mount may be told of millions.
func BenchmarkKnownInodes(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		f := newFS(context.Background(), &Conn{}, nil, 0, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for ino := uint64(2); ino < n+2; ino++ {
			f.node(ino, true)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/inode")
		runtime.KeepAlive(f)
	}
}
