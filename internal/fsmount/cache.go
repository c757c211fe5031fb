package fsmount

import (
	"container/list"
	"context"
	"sync"
)

// chunkCache keeps recently used chunks in memory, bounded by bytes.
// Chunks never change, so an entry is valid for as long as it is kept.
type chunkCache struct {
	mu       sync.Mutex
	budget   int
	used     int
	lru      *list.List // of *cacheEntry, most recent first
	entries  map[string]*list.Element
	inflight map[string]*fetch
	get      func(ctx context.Context, id string) ([]byte, error)
}

type cacheEntry struct {
	id   string
	data []byte
}

type fetch struct {
	done chan struct{}
	data []byte
	err  error
}

func newChunkCache(budget int, get func(ctx context.Context, id string) ([]byte, error)) *chunkCache {
	return &chunkCache{budget: budget, lru: list.New(), entries: map[string]*list.Element{}, inflight: map[string]*fetch{}, get: get}
}

func (c *chunkCache) put(id string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; ok {
		return
	}
	c.entries[id] = c.lru.PushFront(&cacheEntry{id: id, data: data})
	c.used += len(data)
	for c.used > c.budget && c.lru.Len() > 1 {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.entries, e.id)
		c.used -= len(e.data)
	}
}

// load returns a chunk from the cache or fetches it once, however many
// readers ask at the same time.
func (c *chunkCache) load(ctx context.Context, id string) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.entries[id]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cacheEntry).data, nil
	}
	if f, ok := c.inflight[id]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.data, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight[id] = f
	c.mu.Unlock()
	f.data, f.err = c.get(context.WithoutCancel(ctx), id)
	if f.err == nil {
		c.put(id, f.data)
	}
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
	close(f.done)
	return f.data, f.err
}
