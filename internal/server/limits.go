package server

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits on what a client can hold before it is authenticated: headers
// must arrive within readHeaderTimeout (http.Server), a request body
// within Config.BodyTimeout of its headers, and one address may hold at
// most Config.MaxConnsPerIP connections; the connection past it is
// closed at once.
const readHeaderTimeout = 10 * time.Second

// bodyDeadline gives a request's body BodyTimeout to arrive and lifts the
// deadline once it has: a long-poll that then waits is not cut short
// (a read deadline passing while the server watches for the client going
// away would cancel the request).
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }}
			}
		}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	lift   func()
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		b.lift()
	}
	return n, err
}

// connLimiter counts open connections per remote address.
type connLimiter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, open: map[string]int{}}
}

// admit counts a new connection, or closes it and returns nil when its
// address holds the most it may. The connection returned gives its place
// back when closed; it embeds the TCP connection, so sendfile still works.
func (l *connLimiter) admit(c *net.TCPConn) net.Conn {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	l.mu.Lock()
	if l.open[host] >= l.max {
		l.mu.Unlock()
		c.Close()
		return nil
	}
	l.open[host]++
	l.mu.Unlock()
	return &limitedConn{TCPConn: c, release: func() {
		l.mu.Lock()
		if l.open[host]--; l.open[host] <= 0 {
			delete(l.open, host)
		}
		l.mu.Unlock()
	}}
}

type limitedConn struct {
	*net.TCPConn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.TCPConn.Close()
}
