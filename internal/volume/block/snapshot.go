package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/blob"
)

// ChunkSize is the unit of incremental snapshots: small enough that a
// change costs little more than its own size, large enough to keep
// manifests small (8,192 entries per GiB).
const ChunkSize = 128 << 10

// Manifest lists a snapshot's chunks: Chunks[i] is the key of bytes
// [i*ChunkSize, (i+1)*ChunkSize) of the image, "" for a chunk of zeros.
type Manifest struct {
	Size      int64    `json:"size"`
	ChunkSize int      `json:"chunkSize"`
	Chunks    []string `json:"chunks"`
}

// Stats reports what a snapshot or restore moved.
type Stats struct {
	Chunks, Uploaded, Zero int
	UploadedBytes          int64
}

var zero = make([]byte, ChunkSize)

// Workers is how many chunks a snapshot or restore moves at once.
const Workers = 8

// window is how much of the image one read takes while scanning.
const window = 32 * ChunkSize

// Snapshot takes a crash-consistent, incremental snapshot of image and
// returns its manifest's key.
//
// freeze suspends writes to the image and thaw resumes them. Between the
// two, Snapshot reads the image's data (holes are skipped) with direct I/O
// and hashes it chunk by chunk. Chunks of prev, the volume's latest
// completed snapshot (nil for none), are in the store already and are not
// sent again. The others are copied into a staging file beside the image,
// so that writes resume before they are sent, unless staging would take
// more than half the disk's free space: past that, chunks are sent while
// writes wait. A chunk is sent only if the store lacks it. The manifest is
// put last, so a snapshot that fails part way references nothing.
func Snapshot(ctx context.Context, image string, store blob.Store, prev *Manifest, freeze, thaw func() error) (string, Stats, error) {
	var st Stats
	known := map[string]bool{}
	if prev != nil {
		for _, k := range prev.Chunks {
			known[k] = true
		}
	}
	// One snapshot of a volume at a time: the agent sees to it. A staging
	// file left by a crash is truncated here, or removed with the volume.
	stage, err := os.OpenFile(stagingPath(image), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", st, err
	}
	defer func() {
		stage.Close()
		os.Remove(stage.Name())
	}()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(stage.Fd()), &fs); err != nil {
		return "", st, err
	}
	budget := int64(fs.Bavail) * fs.Bsize / 2
	up := newUploader(ctx, store, stage, &st)
	if err := freeze(); err != nil {
		up.close()
		return "", st, err
	}
	m, err := scan(image, up, known, budget)
	if terr := thaw(); err == nil {
		err = terr
	}
	if err == nil {
		up.sendStaged()
	}
	if uerr := up.close(); err == nil {
		err = uerr
	}
	if err != nil {
		return "", st, err
	}
	for _, k := range m.Chunks {
		if k == "" {
			st.Zero++
		}
	}
	st.Chunks = len(m.Chunks)
	b, _ := json.Marshal(m)
	key := blob.Key(b)
	if err := store.Put(ctx, key, b); err != nil {
		return "", st, err
	}
	return key, st, nil
}

func stagingPath(image string) string { return image + ".snapshot" }

// scan reads the image's data regions into a manifest and hands the up
// the chunks not in known, once each: staged while staging stays within
// budget bytes, sent now past that.
func scan(image string, up *uploader, known map[string]bool, budget int64) (*Manifest, error) {
	f, err := os.OpenFile(image, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := &Manifest{Size: info.Size(), ChunkSize: ChunkSize, Chunks: make([]string, (info.Size()+ChunkSize-1)/ChunkSize)}
	// One goroutine reads windows while this one hashes the last.
	const nbuf = 3
	mem, err := unix.Mmap(-1, 0, nbuf*window, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(mem)
	type piece struct {
		buf []byte
		off int64 // where buf starts in the image
		err error
	}
	free := make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- mem[i*window : (i+1)*window]
	}
	read := make(chan piece)
	stop, stopped := make(chan struct{}), make(chan struct{})
	defer func() {
		close(stop)
		<-stopped // before the buffers are unmapped
	}()
	go func() {
		defer close(stopped)
		defer close(read)
		err := dataRegions(f, m.Size, func(start, end int64) error {
			// Whole chunks covering [start, end), a window at a time.
			for off := start / ChunkSize * ChunkSize; off < end; off += window {
				n := min(int64(window), (end+ChunkSize-1)/ChunkSize*ChunkSize-off, m.Size-off)
				var buf []byte
				select {
				case buf = <-free:
				case <-stop:
					return errStopped
				}
				got, err := readFull(f, buf[:alignUp(n)], off)
				if err != nil {
					return fmt.Errorf("read %s at %d: %w", image, off, err)
				}
				select {
				case read <- piece{buf: buf[:min(n, int64(got))], off: off}:
				case <-stop:
					return errStopped
				}
			}
			return nil
		})
		if err != nil && err != errStopped {
			select {
			case read <- piece{err: err}:
			case <-stop:
			}
		}
	}()
	seen := map[string]bool{}
	for p := range read {
		if p.err != nil {
			return nil, p.err
		}
		for c := 0; c < len(p.buf); c += ChunkSize {
			chunk := p.buf[c:min(c+ChunkSize, len(p.buf))]
			if bytes.Equal(chunk, zero[:len(chunk)]) {
				continue
			}
			key := blob.Key(chunk)
			m.Chunks[(p.off+int64(c))/ChunkSize] = key
			if known[key] || seen[key] {
				continue
			}
			seen[key] = true
			if err := up.add(key, chunk, budget); err != nil {
				return nil, err
			}
		}
		free <- p.buf[:cap(p.buf)]
	}
	return m, nil
}

var errStopped = errors.New("stopped")

// uploader sends chunks to a store, Workers at a time: chunks handed over
// with send go at once; staged ones wait in the staging file for
// sendStaged.
type uploader struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	store  blob.Store
	stage  *os.File
	st     *Stats
	mu     sync.Mutex
	next   chan stagedChunk
	wg     sync.WaitGroup
	staged []stagedChunk
	size   int64 // bytes staged
}

// stagedChunk is a chunk to send: its bytes, or where they are staged.
type stagedChunk struct {
	key  string
	data []byte
	off  int64
	n    int
}

func newUploader(ctx context.Context, store blob.Store, stage *os.File, st *Stats) *uploader {
	u := &uploader{store: store, stage: stage, st: st, next: make(chan stagedChunk)}
	u.ctx, u.cancel = context.WithCancelCause(ctx)
	for w := 0; w < Workers; w++ {
		u.wg.Add(1)
		go u.work()
	}
	return u
}

func (u *uploader) work() {
	defer u.wg.Done()
	for c := range u.next {
		if err := u.put(c); err != nil {
			u.cancel(fmt.Errorf("chunk %s: %w", c.key, err))
		}
	}
}

func (u *uploader) put(c stagedChunk) error {
	if u.ctx.Err() != nil {
		return nil
	}
	has, err := u.store.Has(u.ctx, c.key)
	if err != nil || has {
		return err
	}
	if c.data == nil {
		c.data = make([]byte, c.n)
		if _, err := u.stage.ReadAt(c.data, c.off); err != nil {
			return err
		}
	}
	if err := u.store.Put(u.ctx, c.key, c.data); err != nil {
		return err
	}
	u.mu.Lock()
	u.st.Uploaded++
	u.st.UploadedBytes += int64(c.n)
	u.mu.Unlock()
	return nil
}

// add stages a chunk, or sends it if staging it would pass budget.
func (u *uploader) add(key string, chunk []byte, budget int64) error {
	if u.size+int64(len(chunk)) > budget {
		return u.send(stagedChunk{key: key, data: append([]byte(nil), chunk...), n: len(chunk)})
	}
	if _, err := u.stage.WriteAt(chunk, u.size); err != nil {
		return err
	}
	u.staged = append(u.staged, stagedChunk{key: key, off: u.size, n: len(chunk)})
	u.size += int64(len(chunk))
	return nil
}

func (u *uploader) send(c stagedChunk) error {
	select {
	case u.next <- c:
		return nil
	case <-u.ctx.Done():
		return context.Cause(u.ctx)
	}
}

func (u *uploader) sendStaged() {
	for _, c := range u.staged {
		if u.send(c) != nil {
			return
		}
	}
}

// close waits for the chunks handed over and returns the first error.
func (u *uploader) close() error {
	close(u.next)
	u.wg.Wait()
	err := context.Cause(u.ctx)
	u.cancel(nil)
	return err
}

// dataRegions calls fn for each region of f that may hold data, in order,
// skipping holes (every region is data where the file system cannot tell).
func dataRegions(f *os.File, size int64, fn func(start, end int64) error) error {
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only a hole remains
		} else if err != nil {
			return fn(off, size)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			end = size
		}
		// A region may end inside a chunk the next one starts in; the
		// chunk is read again then, with the same result.
		if err := fn(start, min(end, size)); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func alignUp(n int64) int64 { return (n + 4095) &^ 4095 }

// readFull reads len(buf) bytes at off, or fewer at the end of the file.
func readFull(f *os.File, buf []byte, off int64) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := f.ReadAt(buf[n:], off+int64(n))
		n += k
		if err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadManifest fetches a manifest.
func ReadManifest(ctx context.Context, store blob.Store, key string) (*Manifest, error) {
	b, err := store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	return m, nil
}

// Restore writes a snapshot into a new sparse image of at least the
// snapshot's size (size may be larger: the volume grows, the file system
// does not), fetching Workers chunks at a time. progress, if set, is called
// with the bytes of data restored so far and in all (holes excluded), from
// one goroutine at a time. On error the image is removed.
func Restore(ctx context.Context, store blob.Store, manifestKey, image string, size int64, progress func(done, total int64)) (Stats, error) {
	var st Stats
	m, err := ReadManifest(ctx, store, manifestKey)
	if err != nil {
		return st, err
	}
	if size < m.Size {
		return st, fmt.Errorf("volume size %d is smaller than the snapshot's %d", size, m.Size)
	}
	v := Volume{Image: image}
	if err := v.Create(size); err != nil {
		return st, err
	}
	if err := restoreChunks(ctx, store, m, image, &st, progress); err != nil {
		os.Remove(image)
		return st, err
	}
	return st, nil
}

func restoreChunks(ctx context.Context, store blob.Store, m *Manifest, image string, st *Stats, progress func(done, total int64)) error {
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Progress counts the chunks that hold data: holes cost nothing.
	var done, total int64
	for _, key := range m.Chunks {
		if key != "" {
			total += int64(m.ChunkSize)
		}
	}
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				data, err := store.Get(ctx, m.Chunks[i])
				if err == nil {
					_, err = f.WriteAt(data, int64(i)*int64(m.ChunkSize))
				}
				if err != nil {
					cancel(fmt.Errorf("chunk %d: %w", i, err))
					continue
				}
				mu.Lock()
				st.Chunks++
				done += int64(m.ChunkSize)
				if progress != nil {
					progress(done, total)
				}
				mu.Unlock()
			}
		}()
	}
	for i, key := range m.Chunks {
		if key == "" {
			mu.Lock()
			st.Chunks++
			st.Zero++
			mu.Unlock()
			continue
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if progress != nil {
		progress(total, total)
	}
	return dropCache(image)
}
