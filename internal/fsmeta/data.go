package fsmeta

// File data operations: reading a file's block lists and committing a
// write's slices.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/blob/fschunk"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

func (e *Engine) readBlocks(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if r.BlkEnd < r.Blk || r.BlkEnd-r.Blk >= fsproto.MaxReadBlocks {
		return nil, errno(syscall.EINVAL, "readblocks takes 1 to %d blocks", fsproto.MaxReadBlocks)
	}
	resp, err := e.Client.Get(ctx, state.BlockKey(r.FS, r.Ino, r.Blk), clientv3.WithRange(state.BlockKey(r.FS, r.Ino, r.BlkEnd+1)))
	if err != nil {
		return nil, err
	}
	out := &fsproto.Response{Blocks: map[uint32][]fsproto.Slice{}, Rev: resp.Header.Revision}
	pfx := state.BlockPrefix(r.FS, r.Ino)
	for _, kv := range resp.Kvs {
		blk, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), pfx), 16, 32)
		if err != nil {
			return nil, errno(syscall.EIO, "block key %s: %v", kv.Key, err)
		}
		b := Blocks{}
		if err := decode(string(kv.Key), kv.Value, &b); err != nil {
			return nil, err
		}
		out.Blocks[uint32(blk)] = b.Slices
	}
	if direct, ok := e.Chunks.(fschunk.Objects); ok && direct.Direct() {
		// The mount reads these chunks straight from the store: the URLs
		// come with the block lists, which only a reader of the file gets.
		out.URLs = map[string]string{}
		for _, ss := range out.Blocks {
			for _, s := range ss {
				if _, done := out.URLs[s.ID]; done {
					continue
				}
				u, err := direct.GetURL(ctx, r.FS, s.ID)
				if err != nil {
					return nil, err
				}
				out.URLs[s.ID] = u
			}
		}
	}
	return out, nil
}

// chunkURLs issues new chunk ids with URLs to put chunks of r.Size bytes
// to, on a store mounts write to themselves. As with a single chunk's PUT,
// the ids are the server's: they name no chunk yet and carry their age.
func (e *Engine) chunkURLs(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	direct, ok := e.Chunks.(fschunk.Objects)
	if !ok || !direct.Direct() {
		return nil, errno(syscall.ENOTSUP, "this server's chunk store is not reached directly")
	}
	if r.Limit < 1 || r.Limit > fsproto.MaxChunkURLs || r.Size < 1 || r.Size > fsproto.BlockSize {
		return nil, errno(syscall.EINVAL, "chunkurls takes 1 to %d chunks of 1 to %d bytes", fsproto.MaxChunkURLs, fsproto.BlockSize)
	}
	if _, err := e.GetFS(ctx, r.FS); errors.Is(err, ErrNoFS) {
		return nil, errno(syscall.ENODEV, "no such file system")
	} else if err != nil {
		return nil, err
	}
	now := time.Now()
	out := &fsproto.Response{Chunks: make([]fsproto.ChunkURL, r.Limit), ChunksFor: (e.ChunkGrace / 8).Milliseconds()}
	for i := range out.Chunks {
		id := e.IssueChunkID(r.FS, now)
		u, err := direct.PutURL(ctx, r.FS, id, int64(r.Size))
		if err != nil {
			return nil, err
		}
		out.Chunks[i] = fsproto.ChunkURL{ID: id, URL: u}
	}
	return out, nil
}

const MaxSlices = 16

const MaxCommitBlocks = 100

func (e *Engine) commit(ctx context.Context, r *fsproto.Request) (*fsproto.Response, error) {
	if len(r.Slices) == 0 {
		return nil, errno(syscall.EINVAL, "commit without slices")
	}
	blocks := map[uint32][]fsproto.Slice{}
	var order []uint32
	chunks := map[string]bool{}
	end := r.Size
	for _, s := range r.Slices {
		if s.Len == 0 || uint64(s.Off)+uint64(s.Len) > fsproto.BlockSize || !fsproto.ValidChunkID(s.ID) {
			return nil, errno(syscall.EINVAL, "invalid slice %+v", s)
		}
		if _, ok := blocks[s.Blk]; !ok {
			order = append(order, s.Blk)
		}
		blocks[s.Blk] = append(blocks[s.Blk], s.Slice)
		chunks[s.ID] = true
		end = max(end, uint64(s.Blk)*fsproto.BlockSize+uint64(s.Off)+uint64(s.Len))
	}
	if len(order) > MaxCommitBlocks {
		return nil, errno(syscall.EFBIG, "commit touches %d blocks, at most %d", len(order), MaxCommitBlocks)
	}
	// The chunks reach the disk before any metadata names them.
	if err := e.Chunks.Sync(ctx); err != nil {
		return nil, err
	}
	var compact []uint32
	for i := 0; i < attempts; i++ {
		// Chunk collection bumps the gc key before it reads references; the
		// transaction below is guarded on it, so a commit whose age check
		// came before a collection started cannot land after it.
		gc, err := e.Client.Get(ctx, state.FSGCKey(r.FS))
		if err != nil {
			return nil, err
		}
		var gcRev int64
		if len(gc.Kvs) > 0 {
			gcRev = gc.Kvs[0].ModRevision
		}
		for id := range chunks {
			age, err := e.chunkAge(ctx, r.FS, id)
			if err != nil || age > e.ChunkGrace/2 {
				// The client still holds the data: it uploads it again
				// under a new id.
				return nil, errno(fsproto.ErrChunkExpired, "chunk %s is missing or too old to commit", id)
			}
		}
		n, err := e.load(ctx, r.FS, r.Ino)
		if err != nil {
			return nil, err
		}
		if !n.a.IsReg() {
			return nil, errno(syscall.EINVAL, "write to a non-regular file")
		}
		gets := make([]clientv3.Op, len(order))
		for j, blk := range order {
			gets[j] = clientv3.OpGet(state.BlockKey(r.FS, r.Ino, blk))
		}
		cur, err := e.Client.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return nil, err
		}
		t := now()
		a := *n.a
		a.Size = max(a.Size, end)
		a.Mtime, a.Ctime, a.By = t, t, r.Session
		if r.Mtime != 0 {
			a.Mtime = r.Mtime
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(state.InodeKey(r.FS, r.Ino)), "=", n.rev),
			clientv3.Compare(clientv3.ModRevision(state.FSGCKey(r.FS)), "=", gcRev)}
		ops := []clientv3.Op{clientv3.OpPut(state.InodeKey(r.FS, r.Ino), storeAttr(&a))}
		compact = compact[:0]
		for j, blk := range order {
			k := state.BlockKey(r.FS, r.Ino, blk)
			b := Blocks{}
			var rev int64
			if kvs := cur.Responses[j].GetResponseRange().Kvs; len(kvs) > 0 {
				if err := decode(k, kvs[0].Value, &b); err != nil {
					return nil, err // never rewrite a block whose slices cannot be read
				}
				rev = kvs[0].ModRevision
			}
			// Slices the new ones hide entirely are dropped: readers
			// would fetch them for nothing, and their chunks can go.
			b.Slices = fsproto.Visible(append(b.Slices, blocks[blk]...))
			b.By = r.Session
			if len(b.Slices) > MaxSlices {
				compact = append(compact, blk)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
			ops = append(ops, clientv3.OpPut(k, marshal(&b)))
		}
		resp, err := e.txn(ctx, cmps, ops)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			for _, blk := range compact {
				select {
				case e.compact <- compactJob{fs: r.FS, ino: r.Ino, blk: blk}:
				default: // the periodic pass will find it
				}
			}
			a.Rev = resp.Header.Revision
			return &fsproto.Response{Attr: &a}, nil
		}
	}
	return nil, errContention
}
