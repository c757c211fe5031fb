package fsmount

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/fsproto"
)

// On a server whose chunks live in a blob store, a mount moves chunk bytes
// to and from the store itself, by URLs the server signs. It asks for them
// in batches rather than once per chunk: put URLs for whole blocks come
// sixteen to sixty-four at a time (chunkurls), and get URLs come with the block lists a
// read asks for anyway (readblocks). Chunks without one in hand go through
// the server's chunk endpoint, which redirects.

// A mount asks for putBatch put URLs at once, and twice as many as last
// time (up to fsproto.MaxChunkURLs) when the pool ran dry within
// putBurst of the last refill: a long write asks rarely, a small one
// leaves few ids unused.
const (
	putBatch = 16
	putBurst = 5 * time.Second
)

// putURLAge is the longest an issued id waits in the pool (the server may
// say less): its age counts towards the commit's limit (half the server's
// chunk grace).
const putURLAge = time.Minute

type issuedURL struct {
	fsproto.ChunkURL
	until time.Time
}

type timedURL struct {
	url string
	at  time.Time
}

// maxGetURLs bounds the get URLs a mount keeps (one per chunk it was told
// of and has not read yet).
const maxGetURLs = 1 << 16

type urlBook struct {
	mu     sync.Mutex
	refill sync.Mutex
	puts   []issuedURL
	gets   map[string]timedURL
	noPuts atomic.Bool // the server issues no put URLs (its store is not reached directly)
	// under refill: the last refill's time and size
	refilled time.Time
	batch    int
}

// takePut returns an issued id and the URL to put a whole block to,
// asking the server for a batch when the pool is empty; ok is false when
// the server issues none.
func (c *Conn) takePut(ctx context.Context) (u fsproto.ChunkURL, ok bool) {
	b := &c.urls
	if b.noPuts.Load() {
		return u, false
	}
	for attempt := 0; attempt < 2; attempt++ {
		b.mu.Lock()
		for len(b.puts) > 0 {
			p := b.puts[len(b.puts)-1]
			b.puts = b.puts[:len(b.puts)-1]
			if time.Now().Before(p.until) {
				b.mu.Unlock()
				return p.ChunkURL, true
			}
		}
		b.mu.Unlock()
		b.refill.Lock()
		b.mu.Lock()
		empty := len(b.puts) == 0
		b.mu.Unlock()
		if empty {
			at := time.Now()
			n := putBatch
			if at.Sub(b.refilled) < putBurst {
				n = min(2*b.batch, fsproto.MaxChunkURLs)
			}
			resp, e := c.Op(ctx, &fsproto.Request{Op: fsproto.OpChunkURLs, Limit: n, Size: fsproto.BlockSize})
			switch {
			case e == syscall.ENOTSUP || e == syscall.ENOSYS:
				b.noPuts.Store(true)
				b.refill.Unlock()
				return u, false
			case e != 0:
				b.refill.Unlock()
				return u, false // the single-chunk path retries and reports
			}
			b.refilled, b.batch = at, n
			until := at.Add(min(putURLAge, time.Duration(resp.ChunksFor)*time.Millisecond))
			b.mu.Lock()
			for _, cu := range resp.Chunks {
				if fsproto.ValidChunkID(cu.ID) && cu.URL != "" {
					b.puts = append(b.puts, issuedURL{ChunkURL: cu, until: until})
				}
			}
			b.mu.Unlock()
		}
		b.refill.Unlock()
	}
	return u, false
}

// dropPuts forgets the pooled put URLs: a commit found chunks too old, so
// the next uploads take freshly issued ids.
func (c *Conn) dropPuts() {
	c.urls.mu.Lock()
	c.urls.puts = nil
	c.urls.mu.Unlock()
}

// noteGets keeps the get URLs a readblocks reply came with.
func (c *Conn) noteGets(urls map[string]string) {
	if len(urls) == 0 {
		return
	}
	b := &c.urls
	now := time.Now()
	b.mu.Lock()
	if b.gets == nil || len(b.gets)+len(urls) > maxGetURLs {
		b.gets = map[string]timedURL{}
	}
	for id, u := range urls {
		b.gets[id] = timedURL{url: u, at: now}
	}
	b.mu.Unlock()
}

// takeGet returns the URL to get a chunk from, if one is in hand and fresh.
func (c *Conn) takeGet(id string) (string, bool) {
	b := &c.urls
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.gets[id]
	if !ok {
		return "", false
	}
	delete(b.gets, id)
	return g.url, time.Since(g.at) < fsproto.URLTTL
}

// putDirect puts a whole block's chunk by a pooled URL and returns its
// id; ok is false when it could not (the caller goes through the server).
func (c *Conn) putDirect(ctx context.Context, data []byte) (string, bool) {
	if len(data) != fsproto.BlockSize {
		return "", false
	}
	u, ok := c.takePut(ctx)
	if !ok {
		return "", false
	}
	resp, err := c.direct(ctx, http.MethodPut, u.URL, data)
	if err != nil {
		return "", false
	}
	drain(resp)
	return u.ID, resp.StatusCode == http.StatusOK
}
