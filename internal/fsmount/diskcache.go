package fsmount

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// diskCache keeps fetched chunks on the host's disk, shared by every mount
// (and every restart of one) that names the same directory: chunks never
// change once written, so a cached chunk needs no coherence. Each file is
// a 4 KiB header (magic, length, CRC-32C) and the bytes, padded to 4 KiB;
// a file that does not match its header (torn by a crash, cut short,
// changed) is never served and is removed. A chunk fetched from the store
// is written in the background, with direct I/O, from the very buffer it
// was fetched into (block buffers have room for the header before them),
// with the checksum the fetch took as the bytes arrived: filling the
// cache costs a cold read no copy, no second pass over the data and no
// second copy in the page cache, and a read never waits on the cache's
// disk. The cache is bounded by bytes: past the bound, the
// chunks read least recently go (a hit makes a chunk recent).
type diskCache struct {
	dir string
	max int64

	mu   sync.Mutex
	size int64 // bytes this process believes are cached (others add too)

	queue chan cacheWrite
}

type cacheWrite struct {
	fsid, id string
	data     []byte // a block buffer, borrowed
	crc      uint32 // data's CRC-32C
	done     func() // gives it back
}

var diskMagic = [8]byte{'b', 'e', 'r', 't', 'h', 'c', 'c', '3'}

// diskHeader is the header block: magic, length, CRC-32C, zeros.
const diskHeader = 4096

func padded(n int) int { return (n + 4095) &^ 4095 }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openDiskCache uses dir, bounded to max bytes; it reads the size cached.
func openDiskCache(dir string, max int64) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &diskCache{dir: dir, max: max, queue: make(chan cacheWrite, 16)}
	go func() {
		for w := range d.queue {
			d.store(w)
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

// get returns a cached chunk, checked against its header, in a block
// buffer (the caller gives it back with putBlockBuf). It reads with direct
// I/O where it can: the chunk is kept in memory by the mount, not twice.
func (d *diskCache) get(fsid, id string) ([]byte, bool) {
	p := d.path(fsid, id)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err == unix.EINVAL { // no direct I/O here (tmpfs)
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	bad := func() ([]byte, bool) {
		os.Remove(p)
		return nil, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return nil, false
	}
	if st.Size < diskHeader || st.Size > diskHeader+bs || st.Size%4096 != 0 {
		return bad()
	}
	buf := getBlockBuf()
	b := withHeader(buf)[:st.Size]
	err = readFull(fd, b)
	if err == unix.EINVAL { // the flag was taken, direct reads are not
		if fl, ferr := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); ferr == nil {
			if _, ferr := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT); ferr == nil {
				unix.Seek(fd, 0, io.SeekStart)
				err = readFull(fd, b)
			}
		}
	}
	if err != nil {
		putBlockBuf(buf)
		if err == io.ErrUnexpectedEOF {
			return bad()
		}
		return nil, false
	}
	size := binary.BigEndian.Uint64(b[8:16])
	if !bytes.Equal(b[:8], diskMagic[:]) || size > bs || int(st.Size) != diskHeader+padded(int(size)) ||
		crc32.Checksum(buf[:size], castagnoli) != binary.BigEndian.Uint32(b[16:20]) {
		putBlockBuf(buf)
		return bad()
	}
	now := time.Now()
	os.Chtimes(p, now, now) // recently read
	return buf[:size], true
}

// readFull fills b from fd; a file that ends first is io.ErrUnexpectedEOF.
func readFull(fd int, b []byte) error {
	for n := 0; n < len(b); {
		m, err := unix.Read(fd, b[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case m == 0:
			return io.ErrUnexpectedEOF
		}
		n += m
	}
	return nil
}

// offer queues a chunk fetched into a block buffer, with its CRC-32C, for
// the cache, which uses the buffer as it is and calls done once it has
// written it. When the queue is full it declines (false), and done is not
// called: a read never waits for the cache.
func (d *diskCache) offer(fsid, id string, data []byte, crc uint32, done func()) bool {
	if len(data) > bs || cap(data) != bs {
		return false
	}
	select {
	case d.queue <- cacheWrite{fsid, id, data, crc, done}:
		return true
	default:
		return false
	}
}

// write caches a copy of a chunk now (whole or not at all: a temp file
// renamed into place) and trims the cache past its bound.
func (d *diskCache) write(fsid, id string, data []byte) {
	if len(data) > bs {
		return
	}
	buf := getBlockBuf()[:len(data)]
	copy(buf, data)
	d.store(cacheWrite{fsid, id, buf, crc32.Checksum(buf, castagnoli), func() { putBlockBuf(buf) }})
}

// store writes one chunk, with direct I/O where the file system allows
// it: the header goes into the room before the buffer, zeros after the
// data to the next 4 KiB. It gives the buffer back when done.
func (d *diskCache) store(w cacheWrite) {
	defer w.done()
	p := d.path(w.fsid, w.id)
	if _, err := os.Stat(p); err == nil {
		return
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	n := len(w.data)
	b := withHeader(w.data)[:diskHeader+padded(n)]
	clear(b[:diskHeader])
	copy(b[:8], diskMagic[:])
	binary.BigEndian.PutUint64(b[8:16], uint64(n))
	binary.BigEndian.PutUint32(b[16:20], w.crc)
	clear(b[diskHeader+n:])
	tmp := filepath.Join(dir, fmt.Sprintf(".tmp-%d-%d", os.Getpid(), tmpSeq.Add(1)))
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if err == unix.EINVAL { // no direct I/O here (tmpfs)
		fd, err = unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(b)
	if errors.Is(werr, unix.EINVAL) { // the flag was taken, direct writes are not
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT); err == nil {
				_, werr = f.WriteAt(b, 0)
			}
		}
	}
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(tmp, p) != nil {
		os.Remove(tmp)
		return
	}
	d.mu.Lock()
	d.size += int64(len(b))
	over := d.size > d.max
	d.mu.Unlock()
	if over {
		d.trim()
	}
}

var tmpSeq atomic.Uint64

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
