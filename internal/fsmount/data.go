package fsmount

import (
	"context"
	"sort"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/berth-project/berth/internal/blob/fschunk"
	"github.com/berth-project/berth/internal/fsproto"
)

const bs = fsproto.BlockSize

// inode is the mount's state of one file: its known size, the committed
// slice lists it has fetched, and writes not yet committed (dirty bytes in
// memory, then pending slices uploaded or uploading as chunks).
type inode struct {
	ino     uint64
	lookups uint64
	// parent and name are where the kernel last looked the inode up (a
	// lookup or a directory listing), so the mount can ask the kernel to
	// forget it (FS.evict); zero when not known.
	parent uint64
	name   string

	mu       sync.Mutex
	cond     *sync.Cond
	size     uint64
	rev      int64 // server revision the cached pages and slice lists belong to
	blocks   map[uint32][]fsproto.Slice
	pending  []*pendingSlice
	dirty    map[uint32][]extent
	dirtyN   int
	inflight int
	readers  int // reads using pending slices' data outside the lock
	opens    int
	held     bool
	locks    map[lockKey]bool
	lastRead uint64
	// xattrsAt is when the server last said whether the inode has
	// extended attributes (zero: not known), hasXattrs what it said. The
	// kernel asks for security.capability before every write; while this
	// is fresh and says none, the mount answers it.
	xattrsAt  time.Time
	hasXattrs bool

	commitMu sync.Mutex
	// fetchMu lets one block-list fetch of the inode run at a time: a
	// reader and its read-ahead that miss the same blocks ask once.
	fetchMu sync.Mutex
	// fetchEnd and fetchWin (under fetchMu) size the next fetch: a fetch
	// that starts where the last one ended asks for twice as many blocks,
	// up to maxFetchBlocks, so a long sequential read asks rarely.
	fetchEnd, fetchWin uint32
}

type lockKey struct {
	kind  int
	owner uint64
}

type extent struct {
	off    uint32
	data   []byte
	pooled []byte // the whole block buffer data lies in, when it is one
}

// blockBufs keeps block buffers whose data was uploaded, for the next
// writes: a buffer used again costs no page faults, and a fresh one
// costs one per page (most of a sequential writer's CPU otherwise).
var blockBufs = make(chan []byte, 16) // 64 MiB: eight uploads in flight and the blocks being filled

func getBlockBuf() []byte {
	select {
	case b := <-blockBufs:
		return b
	default:
		// Page aligned, with room for the host cache's header before it:
		// a fetched chunk goes to the disk cache (header, data, padding)
		// in one direct write from the buffer it was fetched into.
		return fschunk.AlignedBuffer(diskHeader + bs)[diskHeader:]
	}
}

// withHeader returns a block buffer from getBlockBuf with the header room
// before it: diskHeader bytes, then the whole block.
func withHeader(b []byte) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), -diskHeader)), diskHeader+bs)
}

// putBlockBuf takes back a buffer from getBlockBuf (any length of it).
func putBlockBuf(b []byte) {
	if cap(b) != bs {
		return
	}
	b = b[:bs]
	select {
	case blockBufs <- b:
	default:
	}
}

type pendingSlice struct {
	fsproto.BlockSlice
	data     []byte // held until the upload succeeds
	pooled   []byte
	uploaded bool
	failed   bool // the last upload gave up; the next flush tries again
}

// newInode is the state of an inode the kernel knows. A mount may know
// millions (every entry the kernel caches), so its maps and condition are
// made when first needed.
func newInode(ino uint64) *inode { return &inode{ino: ino} }

// wait waits (n.mu held) for wake.
func (n *inode) wait() {
	if n.cond == nil {
		n.cond = sync.NewCond(&n.mu)
	}
	n.cond.Wait()
}

// wake wakes the waiters (n.mu held).
func (n *inode) wake() {
	if n.cond != nil {
		n.cond.Broadcast()
	}
}

// local reports whether the inode has writes the server has not committed.
func (n *inode) local() bool { return n.dirtyN > 0 || len(n.pending) > 0 }

// addDirty records a write of data at off within block blk (n.mu held),
// merging it with the extents it overlaps or touches.
func (n *inode) addDirty(blk uint32, off uint32, data []byte) {
	exts := n.dirty[blk]
	end := off + uint32(len(data))
	// Fast path: appending to the last extent.
	if k := len(exts); k > 0 {
		last := &exts[k-1]
		lend := last.off + uint32(len(last.data))
		if off >= last.off && off <= lend {
			if end > lend {
				n.dirtyN += int(end - lend)
				if need := int(end - last.off); need <= cap(last.data) {
					// The bytes past the length are all overwritten below.
					last.data = last.data[:need]
				} else {
					last.data = append(last.data, make([]byte, end-lend)...)
				}
			}
			copy(last.data[off-last.off:], data)
			return
		}
	}
	if len(exts) == 0 {
		// A new extent: room for the rest of the block, as sequential
		// writers fill it.
		pooled := getBlockBuf()
		buf := pooled[off : off+uint32(len(data))]
		copy(buf, data)
		if n.dirty == nil {
			n.dirty = map[uint32][]extent{}
		}
		n.dirty[blk] = []extent{{off: off, data: buf, pooled: pooled}}
		n.dirtyN += len(data)
		return
	}
	lo, hi := off, end
	var keep []extent
	var merged []extent
	for _, e := range exts {
		eend := e.off + uint32(len(e.data))
		if eend < off || e.off > end {
			keep = append(keep, e)
			continue
		}
		merged = append(merged, e)
		lo, hi = min(lo, e.off), max(hi, eend)
	}
	buf := make([]byte, hi-lo)
	for _, e := range merged {
		copy(buf[e.off-lo:], e.data)
		n.dirtyN -= len(e.data)
		putBlockBuf(e.pooled) // reads copy dirty extents under the lock
	}
	copy(buf[off-lo:], data)
	n.dirtyN += len(buf)
	keep = append(keep, extent{off: lo, data: buf})
	sort.Slice(keep, func(i, j int) bool { return keep[i].off < keep[j].off })
	n.dirty[blk] = keep
}

// takeDirty turns dirty extents into pending slices to upload (n.mu held):
// all of them, or only whole blocks when full is set.
func (n *inode) takeDirty(full bool) []*pendingSlice {
	var out []*pendingSlice
	blks := make([]uint32, 0, len(n.dirty))
	for b := range n.dirty {
		blks = append(blks, b)
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i] < blks[j] })
	for _, b := range blks {
		exts := n.dirty[b]
		if full && !(len(exts) == 1 && exts[0].off == 0 && len(exts[0].data) == bs) {
			continue
		}
		for _, e := range exts {
			p := &pendingSlice{BlockSlice: fsproto.BlockSlice{Blk: b, Slice: fsproto.Slice{Off: e.off, Len: uint32(len(e.data)), ID: fsproto.NewChunkID()}}, data: e.data, pooled: e.pooled}
			out = append(out, p)
			n.dirtyN -= len(e.data)
		}
		delete(n.dirty, b)
	}
	n.pending = append(n.pending, out...)
	n.inflight += len(out)
	return out
}

// upload sends pending slices' chunks to the server, a few at a time. A
// slice whose upload fails keeps its data and is marked failed: the next
// flush uploads it again, and every flush reports EIO until one succeeds.
func (f *FS) upload(n *inode, ps []*pendingSlice) {
	for _, p := range ps {
		f.upSem <- struct{}{}
		go func(p *pendingSlice) {
			defer func() { <-f.upSem }()
			n.mu.Lock()
			proposed := p.ID
			n.mu.Unlock()
			id, err := f.c.PutChunk(f.ctx, proposed, p.data)
			if err != nil {
				f.log.Warn("chunk upload failed; it is kept for the next flush", "ino", n.ino, "err", err)
			}
			n.mu.Lock()
			if err != nil {
				p.failed = true
			} else {
				p.ID = id // the id the server stored it under
				// A block buffer goes back for the next writes, unless a
				// read is copying from it right now. Written data is not
				// cached: a later read fetches it.
				if p.pooled != nil && n.readers == 0 {
					putBlockBuf(p.pooled)
				}
				p.uploaded, p.data, p.pooled = true, nil, nil
			}
			n.inflight--
			n.wake()
			n.mu.Unlock()
		}(p)
	}
}

// flush uploads every dirty byte of n and commits it: once it returns
// without error, any open on any host sees the data. An error leaves the
// data buffered, so a later flush (or fsync) may still commit it; no caller
// is told success for data that was not committed, whoever else flushed
// first (a forked child's close flushes the same file, too).
func (f *FS) flush(ctx context.Context, n *inode) syscall.Errno {
	for round := 0; ; round++ {
		n.mu.Lock()
		var retry []*pendingSlice
		for _, p := range n.pending {
			if p.failed {
				p.failed = false
				n.inflight++
				retry = append(retry, p)
			}
		}
		ps := n.takeDirty(false)
		n.mu.Unlock()
		f.upload(n, append(retry, ps...))
		n.mu.Lock()
		for n.inflight > 0 {
			n.wait()
		}
		n.mu.Unlock()
		e := f.commit(ctx, n)
		if e != fsproto.ErrChunkExpired {
			return e
		}
		if round == 2 {
			return syscall.EIO
		}
	}
}

// commit records the uploaded prefix of the pending slices, in
// transactions of at most MaxCommitBlocks blocks. It fails with EIO when
// the prefix stops at a slice whose upload failed; slices still uploading
// (writes that came after the flush began) are left for their own flush.
// A commit the server refused or could not be reached for stays pending.
func (f *FS) commit(ctx context.Context, n *inode) syscall.Errno {
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	for {
		n.mu.Lock()
		var batch []fsproto.BlockSlice
		seen := map[uint32]bool{}
		failed := false
		for _, p := range n.pending {
			if !p.uploaded {
				failed = p.failed
				break
			}
			if !seen[p.Blk] && len(seen) == 64 {
				break
			}
			seen[p.Blk] = true
			batch = append(batch, p.BlockSlice)
		}
		n.mu.Unlock()
		if len(batch) == 0 {
			if failed {
				return syscall.EIO
			}
			return 0
		}
		resp, e := f.c.Op(ctx, &fsproto.Request{Op: fsproto.OpCommit, Ino: n.ino, Slices: batch})
		if e == fsproto.ErrChunkExpired {
			// Uploaded too long ago (the server was away): upload the
			// batch again under new ids, from the cache or the server.
			f.c.dropPuts()
			return f.reupload(ctx, n, len(batch))
		}
		if e != 0 {
			if e == syscall.ENOENT || e == syscall.ESTALE {
				// The file is gone everywhere: nobody can read this data.
				n.mu.Lock()
				n.pending = n.pending[len(batch):]
				n.mu.Unlock()
			}
			return e
		}
		n.mu.Lock()
		n.pending = n.pending[len(batch):]
		for _, s := range batch {
			if cur, ok := n.blocks[s.Blk]; ok {
				n.blocks[s.Blk] = append(cur, s.Slice)
			}
		}
		n.rev = resp.Attr.Rev
		n.size = max(n.size, resp.Attr.Size)
		n.mu.Unlock()
	}
}

// reupload gives the first k pending slices new chunk ids and marks them
// for upload; it returns ErrChunkExpired for flush to go round again, or
// EIO when a chunk's data can no longer be found.
func (f *FS) reupload(ctx context.Context, n *inode, k int) syscall.Errno {
	n.mu.Lock()
	ps := append([]*pendingSlice(nil), n.pending[:k]...)
	n.mu.Unlock()
	datas := make([][]byte, len(ps))
	for i, p := range ps {
		d, release, err := f.cache.load(ctx, p.ID)
		if err != nil {
			f.log.Error("an uncommitted chunk was lost", "ino", n.ino, "chunk", p.ID, "err", err)
			return syscall.EIO
		}
		datas[i] = append([]byte(nil), d...)
		release()
	}
	n.mu.Lock()
	for i, p := range ps {
		p.ID, p.data = fsproto.NewChunkID(), datas[i]
		p.uploaded, p.failed = false, true
	}
	n.mu.Unlock()
	return fsproto.ErrChunkExpired
}

// A block-list fetch asks for minFetchBlocks blocks beyond the first
// unknown one, and up to maxFetchBlocks (256 MiB) when reads go on where
// the last fetch ended: each reply carries the blocks' get URLs, signed by
// the server, so fewer fetches are fewer requests and signatures.
const minFetchBlocks, maxFetchBlocks = 16, 64

// slicesOf returns the committed slices of blocks [first, last], fetching
// (with some blocks ahead) those not yet known.
func (f *FS) slicesOf(ctx context.Context, n *inode, first, last uint32) (map[uint32][]fsproto.Slice, syscall.Errno) {
	out := map[uint32][]fsproto.Slice{}
	known := func() (uint32, int64, bool) {
		n.mu.Lock()
		defer n.mu.Unlock()
		for b := first; b <= last; b++ {
			s, ok := n.blocks[b]
			if !ok {
				return b, n.rev, false
			}
			out[b] = s
		}
		return 0, n.rev, true
	}
	if _, _, ok := known(); ok {
		return out, 0
	}
	n.fetchMu.Lock()
	defer n.fetchMu.Unlock()
	from, rev, ok := known() // another fetch may have brought them meanwhile
	if ok {
		return out, 0
	}
	// From the first block not known, and some blocks beyond.
	win := uint32(minFetchBlocks)
	if n.fetchWin > 0 && from == n.fetchEnd+1 {
		win = min(2*n.fetchWin, maxFetchBlocks)
	}
	end := max(last, from+win-1)
	resp, e := f.c.Op(ctx, &fsproto.Request{Op: fsproto.OpReadBlocks, Ino: n.ino, Blk: from, BlkEnd: end})
	if e != 0 {
		return nil, e
	}
	f.c.noteGets(resp.URLs)
	n.fetchEnd, n.fetchWin = end, win
	n.mu.Lock()
	defer n.mu.Unlock()
	for b := from; b <= end; b++ {
		s := resp.Blocks[b]
		if s == nil {
			s = []fsproto.Slice{}
		}
		if n.rev == rev {
			if n.blocks == nil {
				n.blocks = map[uint32][]fsproto.Slice{}
			}
			if _, ok := n.blocks[b]; !ok {
				n.blocks[b] = s
			}
		}
		if b <= last {
			if cur, ok := n.blocks[b]; ok {
				out[b] = cur
			} else {
				out[b] = s
			}
		}
	}
	return out, 0
}

// piece is one slice that a read applies.
type piece struct {
	blk  uint32
	s    fsproto.Slice
	data []byte // set for slices still held in memory
}

// visiblePieces drops the pieces that later ones (later pieces win) hide
// entirely within [off, end), or that lie outside it, so that overwritten
// data is not fetched for nothing.
func visiblePieces(ps []piece, off, end uint64) []piece {
	cover := map[uint32]*fsproto.Coverage{}
	keep := make([]bool, len(ps))
	kept := 0
	for i := len(ps) - 1; i >= 0; i-- {
		p := ps[i]
		base := uint64(p.blk) * bs
		lo := max(base+uint64(p.s.Off), off)
		hi := min(base+uint64(p.s.Off)+uint64(p.s.Len), end)
		if lo >= hi {
			continue
		}
		c := cover[p.blk]
		if c == nil {
			c = &fsproto.Coverage{}
			cover[p.blk] = c
		}
		if !c.Covers(uint32(lo-base), uint32(hi-base)) {
			keep[i] = true
			kept++
		}
		c.Add(uint32(lo-base), uint32(hi-base))
	}
	out := make([]piece, 0, kept)
	for i, p := range ps {
		if keep[i] {
			out = append(out, p)
		}
	}
	return out
}

// read returns the file's bytes at off (in buf, or straight from the chunk
// cache): committed slices, then pending ones, then dirty bytes, later
// ones winning. The caller calls release, when not nil, once it no longer
// uses the bytes.
func (f *FS) read(ctx context.Context, n *inode, buf []byte, off uint64) (data []byte, release func(), errno syscall.Errno) {
	n.mu.Lock()
	size := n.size
	sequential := off == n.lastRead
	n.mu.Unlock()
	if off >= size {
		return nil, nil, 0
	}
	end := min(off+uint64(len(buf)), size)
	buf = buf[:end-off]
	first, last := uint32(off/bs), uint32((end-1)/bs)
	committed, e := f.slicesOf(ctx, n, first, last)
	if e != 0 {
		return nil, nil, e
	}
	var pieces []piece
	for b := first; b <= last; b++ {
		for _, s := range committed[b] {
			pieces = append(pieces, piece{blk: b, s: s})
		}
	}
	n.mu.Lock()
	pending := false
	for _, p := range n.pending {
		if p.Blk >= first && p.Blk <= last {
			pieces = append(pieces, piece{blk: p.Blk, s: p.Slice, data: p.data})
			pending = pending || p.data != nil
		}
	}
	if pending {
		// Their buffers must not go back to the pool before the copy below.
		n.readers++
		defer func() {
			n.mu.Lock()
			n.readers--
			n.mu.Unlock()
		}()
	}
	for b := first; b <= last; b++ {
		for _, x := range n.dirty[b] {
			d := make([]byte, len(x.data))
			copy(d, x.data)
			pieces = append(pieces, piece{blk: b, s: fsproto.Slice{Off: x.off, Len: uint32(len(d))}, data: d})
		}
	}
	n.lastRead = end
	n.mu.Unlock()
	pieces = visiblePieces(pieces, off, end)
	// One cached chunk holding the whole range: hand it out without a copy.
	if k := len(pieces); k > 0 && pieces[k-1].data == nil {
		p := pieces[k-1]
		base := uint64(p.blk) * bs
		if base+uint64(p.s.Off) <= off && base+uint64(p.s.Off)+uint64(p.s.Len) >= end {
			if d, release, err := f.cache.load(ctx, p.s.ID); err == nil {
				src := uint64(p.s.ChunkOff) + off - base - uint64(p.s.Off)
				if src+(end-off) <= uint64(len(d)) {
					if sequential {
						f.readAhead(n, last+1, size)
					}
					return d[src : src+(end-off)], release, 0
				}
				release()
			}
		}
	}
	// Holes read as zeros; then fetch the chunks in parallel and apply
	// them in order.
	clear(buf)
	datas := make([][]byte, len(pieces))
	releases := make([]func(), len(pieces))
	defer func() {
		for _, r := range releases {
			if r != nil {
				r()
			}
		}
	}()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var ferr syscall.Errno
	for i, p := range pieces {
		if p.data != nil {
			datas[i] = p.data
			continue
		}
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			d, release, err := f.cache.load(ctx, id)
			if err != nil {
				f.log.Warn("chunk read failed", "ino", n.ino, "chunk", id, "err", err)
				errMu.Lock()
				ferr = syscall.EIO
				errMu.Unlock()
				return
			}
			datas[i], releases[i] = d, release
		}(i, p.s.ID)
	}
	wg.Wait()
	if ferr != 0 {
		return nil, nil, ferr
	}
	for i, p := range pieces {
		base := uint64(p.blk) * bs
		s := p.s
		lo := max(base+uint64(s.Off), off)
		hi := min(base+uint64(s.Off)+uint64(s.Len), end)
		if lo >= hi {
			continue
		}
		src := uint64(s.ChunkOff) + (lo - base - uint64(s.Off))
		d := datas[i]
		if p.data != nil && s.ID == "" {
			src = lo - base - uint64(s.Off)
		}
		if src+(hi-lo) > uint64(len(d)) {
			return nil, nil, syscall.EIO
		}
		copy(buf[lo-off:hi-off], d[src:src+(hi-lo)])
	}
	if sequential {
		f.readAhead(n, last+1, size)
	}
	return buf, nil, 0
}

// readAheadBlocks is how many blocks (of 4 MiB) a sequential reader
// fetches ahead of itself.
const readAheadBlocks = 8

// readAhead fetches the chunks of the next blocks in the background.
func (f *FS) readAhead(n *inode, from uint32, size uint64) {
	if uint64(from)*bs >= size {
		return
	}
	to := min(from+readAheadBlocks-1, uint32((size-1)/bs))
	go func() {
		sl, e := f.slicesOf(f.ctx, n, from, to)
		if e != 0 {
			return
		}
		for _, ss := range sl {
			for _, s := range ss {
				go f.cache.warm(f.ctx, s.ID)
			}
		}
	}()
}
