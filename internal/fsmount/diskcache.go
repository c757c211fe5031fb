package fsmount

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// diskCache keeps fetched chunks on the host's disk, shared by every mount
// (and every restart of one) that names the same directory: chunks never
// change once written, so a cached chunk needs no coherence. Each file is
// a header (magic, length, CRC-32C) and the bytes; a file that does not
// match its header (torn by a crash, cut short, changed) is never served
// and is removed. Chunks are written in the background, so a read never
// waits on the cache's disk. The cache is bounded by bytes: past the
// bound, the chunks read least recently go (a hit makes a chunk recent).
type diskCache struct {
	dir string
	max int64

	mu   sync.Mutex
	size int64 // bytes this process believes are cached (others add too)

	queue chan cacheWrite
}

type cacheWrite struct {
	fsid, id string
	data     []byte
}

var diskMagic = [8]byte{'b', 'e', 'r', 't', 'h', 'c', 'c', '2'}

const diskHeader = 8 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openDiskCache uses dir, bounded to max bytes; it reads the size cached.
func openDiskCache(dir string, max int64) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &diskCache{dir: dir, max: max, queue: make(chan cacheWrite, 16)}
	go func() {
		for w := range d.queue {
			d.write(w.fsid, w.id, w.data)
		}
	}()
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				d.size += info.Size()
			}
		}
		return nil
	})
	return d, nil
}

func (d *diskCache) path(fsid, id string) string { return filepath.Join(d.dir, fsid, id[:2], id) }

// get returns a cached chunk, checked against its header.
func (d *diskCache) get(fsid, id string) ([]byte, bool) {
	p := d.path(fsid, id)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	if len(b) < diskHeader || !bytes.Equal(b[:8], diskMagic[:]) || binary.BigEndian.Uint64(b[8:16]) != uint64(len(b)-diskHeader) {
		os.Remove(p)
		return nil, false
	}
	data := b[diskHeader:]
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(b[16:diskHeader]) {
		os.Remove(p)
		return nil, false
	}
	now := time.Now()
	os.Chtimes(p, now, now) // recently read
	return data, true
}

// put queues a copy of a chunk for the cache; when the queue is full the
// chunk is not cached (a read never waits for the cache).
func (d *diskCache) put(fsid, id string, data []byte) {
	select {
	case d.queue <- cacheWrite{fsid, id, append([]byte(nil), data...)}:
	default:
	}
}

// write caches a chunk (whole or not at all: a temp file renamed into
// place) and trims the cache past its bound.
func (d *diskCache) write(fsid, id string, data []byte) {
	p := d.path(fsid, id)
	if _, err := os.Stat(p); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return
	}
	var hdr [diskHeader]byte
	copy(hdr[:8], diskMagic[:])
	binary.BigEndian.PutUint64(hdr[8:16], uint64(len(data)))
	binary.BigEndian.PutUint32(hdr[16:], crc32.Checksum(data, castagnoli))
	_, werr := f.Write(hdr[:])
	if werr == nil {
		_, werr = f.Write(data)
	}
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), p) != nil {
		os.Remove(f.Name())
		return
	}
	d.mu.Lock()
	d.size += int64(diskHeader + len(data))
	over := d.size > d.max
	d.mu.Unlock()
	if over {
		d.trim()
	}
}

// trim removes the least recently read chunks until the cache is at 90 %
// of its bound. Other mounts trim the same directory: a file gone under
// one of them is simply not counted.
func (d *diskCache) trim() {
	type entry struct {
		path string
		size int64
		at   time.Time
	}
	var all []entry
	var total int64
	filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		all = append(all, entry{p, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	target := d.max / 10 * 9
	for _, e := range all {
		if total <= target {
			break
		}
		if err := os.Remove(e.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= e.size
		}
	}
	d.mu.Lock()
	d.size = total
	d.mu.Unlock()
}

// DefaultCacheDir is where mounts on this host share their chunk cache:
// /var/cache/berth/chunks for root, the user's cache directory otherwise.
func DefaultCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/cache/berth/chunks"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "berth", "chunks")
	}
	return ""
}

// DefaultCacheSize is a tenth of the free space where dir is, at most 10 GiB.
func DefaultCacheSize(dir string) int64 {
	for p := dir; p != "" && p != "."; p = filepath.Dir(p) {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil {
			return min(int64(st.Bavail)*int64(st.Bsize)/10, 10<<30)
		}
		if p == "/" {
			break
		}
	}
	return 1 << 30
}
