package fsmount

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
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

// TestDiskCacheOffer: an offered chunk is written from the caller's own
// block buffer in the background and the buffer is handed back (done)
// only once it is; a full queue declines at once and keeps nothing.
func TestDiskCacheOffer(t *testing.T) {
	d, err := openDiskCache(t.TempDir(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	buf := getBlockBuf()[:1<<20+5] // not a multiple of 4 KiB: padded on disk
	for i := range buf {
		buf[i] = byte(i)
	}
	want := bytes.Clone(buf)
	id := "00" + strings.Repeat("a", 30)
	done := make(chan struct{})
	if !d.offer("fs-0123456789", id, buf, crc32.Checksum(buf, castagnoli), func() { close(done) }) {
		t.Fatal("an empty queue declined a chunk")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an offered chunk was never written")
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("writing the chunk changed the caller's bytes")
	}
	got, ok := d.get("fs-0123456789", id)
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("cached chunk: %d bytes, %v", len(got), ok)
	}
	if cap(got) != bs {
		t.Fatalf("a cache hit is not in a block buffer (cap %d)", cap(got))
	}

	// A queue that is full declines without calling done.
	blocked := &diskCache{dir: t.TempDir(), max: 1 << 30, queue: make(chan cacheWrite, 1)}
	called := false
	if !blocked.offer("fs-0123456789", id, getBlockBuf()[:10], 0, func() {}) {
		t.Fatal("the first chunk was declined")
	}
	if blocked.offer("fs-0123456789", id, getBlockBuf()[:10], 0, func() { called = true }) || called {
		t.Fatal("a full queue took a chunk, or handed back one it declined")
	}
	// Only block buffers are taken: others have no room for the header.
	if d.offer("fs-0123456789", id, make([]byte, 10), 0, func() {}) {
		t.Fatal("a buffer that is not a block buffer was taken")
	}
}

// TestReadSummed: the checksum taken while reading is the chunk's, however
// the bytes arrive, and a body cut short is an error, not a chunk.
func TestReadSummed(t *testing.T) {
	data := make([]byte, 1<<20+77)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := crc32.Checksum(data, castagnoli)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"halves":   iotest.HalfReader(bytes.NewReader(data)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		b := make([]byte, len(data))
		sum, err := readSummed(r, b)
		if err != nil || sum != want || !bytes.Equal(b, data) {
			t.Fatalf("%s: sum %08x want %08x, err %v", name, sum, want, err)
		}
	}
	if _, err := readSummed(bytes.NewReader(data[:100]), make([]byte, len(data))); err != io.ErrUnexpectedEOF {
		t.Fatalf("a short body: %v", err)
	}
}
