// Package fsmount is the shared file system's FUSE client: it serves one
// mount of one file system, talking only to the Berth server (metadata
// operations, chunks, change events). It buffers writes until
// flush/fsync/close, caches chunks by id (they never change, so the cache
// needs no coherence protocol) and revalidates on open, which gives
// close-to-open consistency across hosts.
package fsmount

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-project/berth/internal/endpoint"
	"github.com/berth-project/berth/internal/fsproto"
)

// Conn is a mount's connection to the server.
type Conn struct {
	// Endpoint is the server, or several ("URL1,URL2,…"): a request that
	// cannot reach one is retried on the next. The session lives in etcd,
	// so it goes on through any of them.
	Endpoint    string
	FS          string
	Credentials *aws.Credentials // SigV4-signs every request when set
	Token       string           // a task's mount token, sent instead
	Region      string
	HTTP        *http.Client
	// Patience is how long an operation or upload keeps retrying an
	// unreachable or restarting server before it fails with EIO.
	Patience time.Duration
	session  string
	store    *http.Client // to the blob store, for chunks the server redirects
	proxied  atomic.Int32 // 1 once the server took a chunk's bytes itself: no more "Expect"
	remote   atomic.Bool  // chunks come from a blob store the server redirected to
	urls     urlBook      // chunk URLs the server signed in batches
	servers  *endpoint.List
}

// drain reads what is left of a response's body and closes it, so its
// connection can be used again.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body) // only so the connection can be reused
	resp.Body.Close()
}

// defaultPatience outlasts a server restart, etcd's recovery included.
const defaultPatience = 4 * time.Minute

// backoff sleeps before the next attempt of a call that began at start,
// and reports false when the caller should give up instead.
func (c *Conn) backoff(ctx context.Context, start time.Time, attempt int) bool {
	patience := c.Patience
	if patience == 0 {
		patience = defaultPatience
	}
	delay := min(50*time.Millisecond<<min(attempt, 6), 2*time.Second)
	if ctx.Err() != nil || time.Since(start)+delay > patience {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(delay):
		return true
	}
}

// direct moves a chunk between the mount and the store, by the URL the
// server signed; none of the mount's own credentials go with it.
func (c *Conn) direct(ctx context.Context, method, url string, body []byte) (*http.Response, error) {
	if url == "" {
		return nil, fmt.Errorf("the server redirected a chunk without a Location")
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	if method == http.MethodGet {
		req.ContentLength, req.Body, req.GetBody = 0, nil, nil
	}
	return c.store.Do(req)
}

func (c *Conn) init(tlsCfg *tls.Config) {
	c.servers = endpoint.Must(c.Endpoint)
	if c.store == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 64, 64
		c.store = &http.Client{Transport: tr}
	}
	if c.HTTP == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		tr.ForceAttemptHTTP2 = false
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
		tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}).DialContext
		c.HTTP = &http.Client{Transport: tr}
	}
	// Redirects to the store are followed by hand (direct), so the
	// mount's token and signature never reach it.
	c.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.Region == "" {
		c.Region = "us-east-1"
	}
}

func (c *Conn) request(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	base := c.servers.Current()
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if method == http.MethodPut && c.proxied.Load() == 0 {
		// A server whose store the mount reaches itself answers with the
		// store's URL before the body is sent.
		req.Header.Set("Expect", "100-continue")
	}
	if c.Token != "" {
		req.Header.Set("X-Berth-Mount-Token", c.Token)
	} else if c.Credentials != nil {
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(ctx, *c.Credentials, req, hex.EncodeToString(sum[:]), "elasticfilesystem", c.Region, time.Now()); err != nil {
			return nil, err
		}
	}
	resp, err := c.HTTP.Do(req)
	// 503: that server's etcd member is cut off from the others.
	if endpoint.Unreachable(ctx, err) || err == nil && resp.StatusCode == http.StatusServiceUnavailable {
		c.servers.Failed(base) // the caller's next attempt goes to the next server
	}
	return resp, err
}

// Op runs one metadata operation; transport failures are retried for a
// while and then reported as EIO.
func (c *Conn) Op(ctx context.Context, r *fsproto.Request) (*fsproto.Response, syscall.Errno) {
	r.FS = c.FS
	if r.Session == "" {
		r.Session = c.session
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, syscall.EINVAL
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		resp, err := c.request(ctx, http.MethodPost, "/berth/v1/fs/op", body)
		if err == nil {
			out := &fsproto.Response{}
			derr := json.NewDecoder(resp.Body).Decode(out)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && derr == nil {
				return out, out.Errno
			}
			if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusBadRequest {
				return nil, syscall.EACCES
			}
		}
		// The server may be restarting: retry for a while.
		if !c.backoff(ctx, start, attempt) {
			return nil, syscall.EIO
		}
	}
}

// PutChunk uploads a new chunk proposed as id and returns the id it was
// stored under: a server whose store the mount writes to itself issues
// the id (and says so with the URL to write to).
func (c *Conn) PutChunk(ctx context.Context, id string, data []byte) (string, error) {
	if stored, ok := c.putDirect(ctx, data); ok {
		return stored, nil
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		stored := id
		resp, err := c.request(ctx, http.MethodPut, "/berth/v1/fs/chunks/"+c.FS+"/"+id, data)
		if err == nil && resp.StatusCode == http.StatusTemporaryRedirect {
			resp.Body.Close()
			stored = resp.Header.Get("X-Berth-Chunk-Id")
			if !fsproto.ValidChunkID(stored) {
				return "", fmt.Errorf("put chunk: the server redirected it without a chunk id")
			}
			resp, err = c.direct(ctx, http.MethodPut, resp.Header.Get("Location"), data)
			if err == nil && resp.StatusCode == http.StatusOK {
				resp.StatusCode = http.StatusCreated
			}
		} else if err == nil && resp.StatusCode == http.StatusCreated {
			c.proxied.Store(1)
		}
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
				return stored, nil
			case http.StatusConflict:
				return stored, nil // an earlier attempt stored it
			}
			err = fmt.Errorf("put chunk: HTTP %d", resp.StatusCode)
			if resp.StatusCode < 500 {
				return "", err
			}
		}
		if !c.backoff(ctx, start, attempt) {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", err
		}
	}
}

// fetch downloads a chunk for the chunk cache, waiting for a restarting
// server as long as an operation does: a chunk of known length comes in a
// block buffer (getBlockBuf), with its CRC-32C taken as it arrived.
func (c *Conn) fetch(ctx context.Context, id string) (got fetched, err error) {
	start := time.Now()
	url, haveURL := c.takeGet(id)
	for attempt := 0; ; attempt++ {
		var resp *http.Response
		if haveURL {
			// A URL from the block list: straight to the store. Should it
			// fail, the next attempt asks the server.
			haveURL = false
			c.remote.Store(true)
			resp, err = c.direct(ctx, http.MethodGet, url, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				if err == nil {
					drain(resp)
				}
				attempt--
				continue
			}
		} else {
			resp, err = c.request(ctx, http.MethodGet, "/berth/v1/fs/chunks/"+c.FS+"/"+id, nil)
		}
		if err == nil && resp.StatusCode == http.StatusTemporaryRedirect {
			resp.Body.Close()
			c.remote.Store(true)
			resp, err = c.direct(ctx, http.MethodGet, resp.Header.Get("Location"), nil)
		}
		if err == nil {
			got = fetched{}
			var rerr error
			if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 && resp.ContentLength <= fsproto.BlockSize {
				// A pool buffer: the cache gives it back when it evicts
				// the chunk.
				got.data, got.pooled = getBlockBuf()[:resp.ContentLength], true
				if got.crc, rerr = readSummed(resp.Body, got.data); rerr != nil {
					putBlockBuf(got.data)
				}
			} else {
				got.data, rerr = io.ReadAll(resp.Body)
			}
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && rerr == nil:
				got.fresh = c.Remote()
				return got, nil
			case rerr != nil:
				err = fmt.Errorf("get chunk %s: %w", id, rerr)
			default:
				err = fmt.Errorf("get chunk %s: HTTP %d", id, resp.StatusCode)
			}
			if resp.StatusCode == http.StatusNotFound {
				return fetched{}, err
			}
		}
		if !c.backoff(ctx, start, attempt) {
			if ctx.Err() != nil {
				return fetched{}, ctx.Err()
			}
			return fetched{}, err
		}
	}
}

// readSummed fills b from r and returns b's CRC-32C, taken a piece at a
// time as the bytes arrive (while they are still in the CPU's cache).
func readSummed(r io.Reader, b []byte) (uint32, error) {
	var sum uint32
	for n := 0; n < len(b); {
		m, err := r.Read(b[n:min(n+256<<10, len(b))])
		sum = crc32.Update(sum, castagnoli, b[n:n+m])
		n += m
		if err == io.EOF && n < len(b) {
			return 0, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
	}
	return sum, nil
}

// Events follows the server's change stream, calling fn for each event,
// until ctx ends. It reconnects after errors (to the next server when one
// is gone) from the last revision it saw whole, so it misses nothing (a
// revision cut short may come again: invalidations bear repeating); lost
// is called when it cannot resume (the revision was compacted) and
// changes may have been missed.
func (c *Conn) Events(ctx context.Context, fn func(fsproto.Event), lost func()) {
	var whole, current int64 // the last revision seen whole; the one being seen
	for ctx.Err() == nil {
		path := "/berth/v1/fs/events?fs=" + c.FS + "&session=" + c.session
		if whole > 0 {
			path += "&after=" + strconv.FormatInt(whole, 10)
		}
		resp, err := c.request(ctx, http.MethodGet, path, nil)
		if err == nil && resp.StatusCode == http.StatusOK {
			if whole == 0 && lost != nil {
				lost() // not resuming: what happened before is unknown
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue
				}
				ev := fsproto.Event{}
				if json.Unmarshal(sc.Bytes(), &ev) != nil {
					continue
				}
				if ev.Reset {
					whole, current = 0, 0
					if lost != nil {
						lost()
					}
					continue
				}
				if ev.Ino == 0 && ev.Parent == 0 && ev.Name == "" {
					whole, current = ev.Rev, ev.Rev // where the stream starts
					continue
				}
				if ev.Rev > current {
					whole, current = current, ev.Rev
				}
				fn(ev)
			}
		}
		if resp != nil {
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Remote reports whether chunks come from a blob store the mount reaches
// itself (worth a cache on this host's disk) rather than from the server's.
func (c *Conn) Remote() bool { return c.remote.Load() }
