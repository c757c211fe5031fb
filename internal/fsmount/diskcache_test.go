package fsmount

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDiskCache: a chunk comes back as it went in; a torn or changed file
// is never served (and is removed); past its bound the cache keeps the
// chunks read most recently.
func TestDiskCache(t *testing.T) {
	dir := t.TempDir()
	d, err := openDiskCache(dir, 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	const fs = "fs-0123456789"
	id := func(i int) string { return fmt.Sprintf("%02x%030x", i, i) }
	data := bytes.Repeat([]byte("chunk"), 1<<18) // 1.25 MiB
	d.write(fs, id(0), data)
	if got, ok := d.get(fs, id(0)); !ok || !bytes.Equal(got, data) {
		t.Fatalf("round trip: %d bytes, %v", len(got), ok)
	}
	// Another process of the host (a restart) finds it.
	d2, _ := openDiskCache(dir, 10<<20)
	if _, ok := d2.get(fs, id(0)); !ok || d2.size == 0 {
		t.Fatal("a new cache on the same directory does not find the chunk")
	}
	// Torn: cut short.
	p := d.path(fs, id(0))
	os.Truncate(p, 100)
	if _, ok := d.get(fs, id(0)); ok {
		t.Fatal("a torn chunk was served")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("a torn chunk was kept")
	}
	// Changed: one byte flipped.
	d.write(fs, id(1), data)
	b, _ := os.ReadFile(d.path(fs, id(1)))
	b[len(b)-1] ^= 1
	os.WriteFile(d.path(fs, id(1)), b, 0o600)
	if _, ok := d.get(fs, id(1)); ok {
		t.Fatal("a changed chunk was served")
	}
	// Bounded, least recently read first.
	for i := 2; i < 12; i++ {
		d.write(fs, id(i), data)
		if i == 2 {
			time.Sleep(10 * time.Millisecond)
		}
		d.get(fs, id(2)) // keep reading the first one
		time.Sleep(10 * time.Millisecond)
	}
	if d.size > 10<<20 {
		t.Fatalf("cache holds %d bytes, bound 10 MiB", d.size)
	}
	if _, ok := d.get(fs, id(2)); !ok {
		t.Fatal("the chunk read most recently was trimmed")
	}
	if _, ok := d.get(fs, id(3)); ok {
		t.Fatal("an old chunk survived trimming")
	}
}

// TestDiskCachePutIsInTheBackground: a put returns at once; the chunk is
// in the cache soon after, from a copy (the caller may reuse its buffer).
func TestDiskCachePutIsInTheBackground(t *testing.T) {
	d, err := openDiskCache(t.TempDir(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{7}, 1<<20)
	d.put("fs-0123456789", "00"+strings.Repeat("a", 30), buf)
	buf[0] = 9 // the caller's buffer goes back to its pool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, ok := d.get("fs-0123456789", "00"+strings.Repeat("a", 30)); ok {
			if got[0] != 7 {
				t.Fatal("the cache wrote the caller's reused buffer")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a put chunk never reached the cache")
		}
	}
}
