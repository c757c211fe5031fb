package fsmeta

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/berth-project/berth/internal/fsproto"
)

// BenchmarkCreate is the metadata engine's create (one guarded etcd
// transaction) on a real embedded etcd, without HTTP or FUSE: the floor
// under the mount's create rate. Parallel creates go to one directory per
// goroutine.
func BenchmarkCreate(b *testing.B) {
	e, fs := newEngine(b)
	var dirs atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		d := dirs.Add(1)
		dir := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: fmt.Sprint("d", d), Mode: syscall.S_IFDIR | 0o755}).Attr.Ino
		i := 0
		for pb.Next() {
			i++
			if r := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: dir, Name: fmt.Sprint("f", i), Mode: syscall.S_IFREG | 0o644, Excl: true}); r.Errno != 0 {
				b.Fatal(r.Errno)
			}
		}
	})
}

func BenchmarkCreateSerial(b *testing.B) {
	e, fs := newEngine(b)
	for i := 0; i < b.N; i++ {
		if r := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: fmt.Sprint("f", i), Mode: syscall.S_IFREG | 0o644, Excl: true}); r.Errno != 0 {
			b.Fatal(r.Errno)
		}
	}
}

// BenchmarkLookupMissing is a lookup of a name that does not exist (what
// the kernel asks before every create), serially.
func BenchmarkLookupMissing(b *testing.B) {
	e, fs := newEngine(b)
	for i := 0; i < b.N; i++ {
		if r := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpLookup, FS: fs, Parent: fsproto.RootIno, Name: fmt.Sprint("f", i)}); r.Errno != syscall.ENOENT {
			b.Fatal(r.Errno)
		}
	}
}

// BenchmarkReaddirPlus reads a page of 1,000 entries with their
// attributes (what a mount asks to answer READDIRPLUS), beside the names
// alone.
func BenchmarkReaddirPlus(b *testing.B) {
	e, fs := newEngine(b)
	for i := 0; i < 1000; i++ {
		if r := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpMknod, FS: fs, Parent: fsproto.RootIno, Name: fmt.Sprint("f", i), Mode: syscall.S_IFREG | 0o644}); r.Errno != 0 {
			b.Fatal(r.Errno)
		}
	}
	for _, plus := range []bool{false, true} {
		b.Run(fmt.Sprint("plus=", plus), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if r := e.Do(context.Background(), &fsproto.Request{Op: fsproto.OpReaddir, FS: fs, Ino: fsproto.RootIno, Plus: plus}); r.Errno != 0 || len(r.Entries) != 1000 {
					b.Fatal(r.Errno, len(r.Entries))
				}
			}
		})
	}
}
