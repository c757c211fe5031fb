// Package endpoint lets a client of a cluster with several servers (any
// of which answers any call) name them all, "URL1,URL2,URL3", and move to
// the next when the one it uses cannot be reached.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
)

// List is a client's servers and the one it uses now.
type List struct {
	urls []string
	cur  atomic.Int64
}

// Parse reads a comma-separated list of http(s) URLs.
func Parse(s string) (*List, error) {
	l := &List{}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("server %q: want http://HOST:PORT or https://HOST:PORT", u)
		}
		l.urls = append(l.urls, u)
	}
	if len(l.urls) == 0 {
		return nil, fmt.Errorf("no server URL in %q", s)
	}
	for _, u := range l.urls[1:] {
		if strings.HasPrefix(u, "https://") != strings.HasPrefix(l.urls[0], "https://") {
			return nil, fmt.Errorf("servers %q: all are http or all are https", s)
		}
	}
	return l, nil
}

// Must is Parse for a list known to be good (one URL, say).
func Must(s string) *List {
	l, err := Parse(s)
	if err != nil {
		return &List{urls: []string{strings.TrimRight(s, "/")}}
	}
	return l
}

// Len is how many servers the list names.
func (l *List) Len() int { return len(l.urls) }

// Current is the server to use now.
func (l *List) Current() string {
	return l.urls[int(l.cur.Load())%len(l.urls)]
}

// Failed moves to the next server if u is still the current one (another
// request may have moved on already).
func (l *List) Failed(u string) {
	i := l.cur.Load()
	if l.urls[int(i)%len(l.urls)] == u {
		l.cur.CompareAndSwap(i, i+1)
	}
}

// String is the list as it was given.
func (l *List) String() string { return strings.Join(l.urls, ",") }

// Unreachable reports whether err says that the server could not be
// reached or went away before answering (not that it answered with an
// error, and not that the caller gave up).
func Unreachable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &op), errors.As(err, &dns):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "server closed"):
		return true
	}
	return false
}
