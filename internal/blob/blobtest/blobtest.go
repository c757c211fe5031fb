// Package blobtest is the conformance suite every blob backend runs:
// put, get, ranged get, stat, touch, delete, list by prefix and age, the
// same name put concurrently, missing names, cancelled contexts, and
// objects of 0 B, 1 B, 4 MiB and 64 MiB.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/blob"
)

// Run runs the suite against a fresh, empty store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) blob.Objects) {
	ctx := context.Background()
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	t.Run("sizes", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []int{0, 1, 4 << 20, 64 << 20} {
			name := fmt.Sprintf("size/%d", n)
			data := random(n)
			if err := s.Put(ctx, name, data); err != nil {
				t.Fatalf("put %d B: %v", n, err)
			}
			got, err := s.Get(ctx, name)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get %d B: %d B back, %v", n, len(got), err)
			}
			info, err := s.Stat(ctx, name)
			if err != nil || info.Size != int64(n) || info.Name != name || time.Since(info.ModTime) > time.Hour || time.Until(info.ModTime) > time.Minute {
				t.Fatalf("stat %d B: %+v %v", n, info, err)
			}
		}
	})
	t.Run("range", func(t *testing.T) {
		s := newStore(t)
		data := random(1 << 20)
		if err := s.Put(ctx, "r/obj", data); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ off, n int64 }{{0, 1}, {12345, 4096}, {1<<20 - 10, 10}, {1<<20 - 10, 100}} {
			got, err := s.GetRange(ctx, "r/obj", c.off, c.n)
			want := data[c.off:min(c.off+c.n, int64(len(data)))]
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("range %d+%d: %d B, %v", c.off, c.n, len(got), err)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "no/such"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("get: %v", err)
		}
		if _, err := s.GetRange(ctx, "no/such", 0, 1); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("get range: %v", err)
		}
		if _, err := s.Stat(ctx, "no/such"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("stat: %v", err)
		}
		if ok, err := s.Touch(ctx, "no/such"); ok || err != nil {
			t.Fatalf("touch: %v %v", ok, err)
		}
		if err := s.Delete(ctx, "no/such"); err != nil {
			t.Fatalf("delete: %v", err)
		}
	})
	t.Run("replace-delete", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, "d/x", []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "d/x", []byte("two!")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "d/x"); err != nil || string(got) != "two!" {
			t.Fatalf("after replace: %q %v", got, err)
		}
		if err := s.Delete(ctx, "d/x"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "d/x"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
	t.Run("delete-many", func(t *testing.T) {
		s := newStore(t)
		var names []string
		for i := 0; i < 1100; i++ { // more than one S3 batch
			names = append(names, fmt.Sprintf("m/%04d", i))
		}
		for _, n := range names[:1050] {
			if err := s.Put(ctx, n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(ctx, "keep/1", []byte("k")); err != nil {
			t.Fatal(err)
		}
		// Some of the names were never there.
		if err := blob.DeleteAll(ctx, s, names); err != nil {
			t.Fatal(err)
		}
		left := 0
		if err := s.List(ctx, "", func(in blob.Info) error { left++; return nil }); err != nil {
			t.Fatal(err)
		}
		if left != 1 {
			t.Fatalf("%d objects left, want the one kept", left)
		}
	})
	t.Run("list-and-age", func(t *testing.T) {
		s := newStore(t)
		names := []string{"a/1", "a/2", "a/b/3", "b/4"}
		for _, n := range names {
			if err := s.Put(ctx, n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		list := func(prefix string) []string {
			var out []string
			if err := s.List(ctx, prefix, func(in blob.Info) error {
				if in.Size != int64(len(in.Name)) {
					t.Fatalf("listed %s with size %d", in.Name, in.Size)
				}
				out = append(out, in.Name)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			sort.Strings(out)
			return out
		}
		if got := fmt.Sprint(list("a/")); got != "[a/1 a/2 a/b/3]" {
			t.Fatalf("list a/: %s", got)
		}
		if got := fmt.Sprint(list("")); got != "[a/1 a/2 a/b/3 b/4]" {
			t.Fatalf("list all: %s", got)
		}
		before, _ := s.Stat(ctx, "a/1")
		time.Sleep(1100 * time.Millisecond) // stores keep times to the second
		if ok, err := s.Touch(ctx, "a/1"); !ok || err != nil {
			t.Fatalf("touch: %v %v", ok, err)
		}
		after, err := s.Stat(ctx, "a/1")
		if err != nil || !after.ModTime.After(before.ModTime) {
			t.Fatalf("touch did not make the object new: %v -> %v %v", before.ModTime, after.ModTime, err)
		}
		if got, _ := s.Get(ctx, "a/1"); string(got) != "a/1" {
			t.Fatalf("touch changed the object: %q", got)
		}
		stop := errors.New("stop")
		n := 0
		if err := s.List(ctx, "", func(blob.Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Fatalf("an error from fn ends List: %v after %d", err, n)
		}
	})
	t.Run("concurrent-put", func(t *testing.T) {
		s := newStore(t)
		versions := [][]byte{random(256 << 10), random(256 << 10), random(256 << 10), random(256 << 10)}
		var wg sync.WaitGroup
		errs := make(chan error, len(versions))
		for _, v := range versions {
			wg.Add(1)
			go func(v []byte) {
				defer wg.Done()
				errs <- s.Put(ctx, "same/name", v)
			}(v)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Get(ctx, "same/name")
		if err != nil {
			t.Fatal(err)
		}
		whole := false
		for _, v := range versions {
			whole = whole || bytes.Equal(got, v)
		}
		if !whole {
			t.Fatal("concurrent puts of one name left a mix of them")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, "c/x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "c/y", []byte("y")); !errors.Is(err, context.Canceled) {
			t.Fatalf("put: %v", err)
		}
		if _, err := s.Get(cctx, "c/x"); !errors.Is(err, context.Canceled) {
			t.Fatalf("get: %v", err)
		}
		if err := s.List(cctx, "", func(blob.Info) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("list: %v", err)
		}
		if _, err := s.Stat(ctx, "c/y"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("a cancelled put stored the object: %v", err)
		}
	})
	t.Run("invalid-names", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"", "/abs", "a/../b", "a//b", "dir/"} {
			if err := s.Put(ctx, n, []byte("x")); err == nil {
				t.Errorf("put %q succeeded", n)
			}
		}
	})
}
