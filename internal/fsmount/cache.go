package fsmount

import (
	"container/list"
	"context"
	"sync"
)

// chunkCache keeps recently fetched chunks in memory, bounded by bytes.
// Chunks never change, so an entry is valid for as long as it is kept.
// Readers hold a reference while they use a chunk's bytes (a read's reply
// is written to the kernel after the read returns); an entry's buffer goes
// back to the block pool once it is evicted and nobody holds it.
type chunkCache struct {
	mu       sync.Mutex
	budget   int
	used     int
	lru      *list.List // of *cacheEntry, most recent first
	entries  map[string]*list.Element
	inflight map[string]*fetch
	get      func(ctx context.Context, id string) (fetched, error)
	// fill, when set, is offered each fresh chunk (the host's disk cache):
	// it may keep the bytes until it calls done, or decline at once.
	fill func(id string, data []byte, crc uint32, done func()) bool
}

type cacheEntry struct {
	id      string
	data    []byte
	pooled  bool // data is a block buffer, to give back when done
	refs    int
	evicted bool
}

// fetched is a chunk as the cache's get returns it.
type fetched struct {
	data []byte
	// pooled: data is a block buffer (getBlockBuf), the cache's to give
	// back; fresh: it came from the store, so fill may borrow it.
	pooled, fresh bool
	crc           uint32 // data's CRC-32C, when pooled
}

type fetch struct {
	done chan struct{}
	e    *cacheEntry
	err  error
}

func newChunkCache(budget int, get func(ctx context.Context, id string) (fetched, error)) *chunkCache {
	return &chunkCache{budget: budget, lru: list.New(), entries: map[string]*list.Element{}, inflight: map[string]*fetch{}, get: get}
}

// insert adds an entry (c.mu held) and evicts the least recently used
// beyond the budget.
func (c *chunkCache) insert(e *cacheEntry) {
	c.entries[e.id] = c.lru.PushFront(e)
	c.used += len(e.data)
	for c.used > c.budget && c.lru.Len() > 1 {
		el := c.lru.Back()
		old := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.entries, old.id)
		c.used -= len(old.data)
		old.evicted = true
		if old.refs == 0 && old.pooled {
			putBlockBuf(old.data)
		}
	}
}

// release drops a reader's reference.
func (c *chunkCache) release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	if e.refs == 0 && e.evicted && e.pooled {
		putBlockBuf(e.data)
	}
	c.mu.Unlock()
}

// load returns a chunk from the cache, or fetches it once however many
// readers ask at the same time, and a function the caller calls once it
// no longer uses the bytes.
func (c *chunkCache) load(ctx context.Context, id string) ([]byte, func(), error) {
	c.mu.Lock()
	if el, ok := c.entries[id]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		e.refs++
		c.mu.Unlock()
		return e.data, func() { c.release(e) }, nil
	}
	if f, ok := c.inflight[id]; ok {
		f.e.refs++ // taken now, so the entry cannot be recycled before use
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			go func() { <-f.done; c.release(f.e) }()
			return nil, nil, ctx.Err()
		}
		if f.err != nil {
			return nil, nil, f.err
		}
		return f.e.data, func() { c.release(f.e) }, nil
	}
	f := &fetch{done: make(chan struct{}), e: &cacheEntry{id: id, refs: 1}}
	c.inflight[id] = f
	c.mu.Unlock()
	got, err := c.get(context.WithoutCancel(ctx), id)
	data := got.data
	c.mu.Lock()
	delete(c.inflight, id)
	if err != nil {
		f.err = err
		c.mu.Unlock()
		close(f.done)
		return nil, nil, err
	}
	f.e.data, f.e.pooled = data, got.pooled
	c.insert(f.e)
	if got.fresh && got.pooled && c.fill != nil {
		// The fill holds a reference of its own until its write is done,
		// so the buffer is not recycled under it.
		f.e.refs++
		if !c.fill(id, data, got.crc, func() { c.release(f.e) }) {
			f.e.refs--
		}
	}
	c.mu.Unlock()
	close(f.done)
	return data, func() { c.release(f.e) }, nil
}

// warm fetches a chunk into the cache (read-ahead).
func (c *chunkCache) warm(ctx context.Context, id string) {
	if _, release, err := c.load(ctx, id); err == nil {
		release()
	}
}
