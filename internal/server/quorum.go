package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// noLeaderMessage is what a server says while its etcd member has no
// leader: it is cut off from a majority of the members (or they are down).
const noLeaderMessage = "This server's etcd member has no leader: it cannot reach a majority of the control plane's members. Nothing was changed; try another server."

// noLeader reports whether this server's embedded member knows of no
// leader (it is cut off from a majority, or they are down).
func (s *Server) noLeader() bool { return s.etcd != nil && s.etcd.Server.Leader() == 0 }

// requireQuorum answers 503 (ServerException) at once while this server's
// embedded member has no leader, rather than letting each call wait for
// etcd's request timeout: agents and mounts move to the next server on a
// 503, and users get a clear error. The CA, health, metrics and the member
// list stay served, so an operator can see what is wrong.
func (s *Server) requireQuorum(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.noLeader() {
			next.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/berth/v1/ca", "/healthz", "/metrics", "/berth/v1/members/list":
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "1")
		if strings.HasPrefix(r.URL.Path, "/2015-02-01/") { // EFS (restJson)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-Errortype", "InternalServerError")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"ErrorCode":"InternalServerError","Message":%q}`, noLeaderMessage)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"__type":"ServerException","message":%q}`, noLeaderMessage)
	})
}

// leaderEpoch is a context cancelled when this server's member learns of
// a new leader. A write this member forwarded to a leader that died is
// lost with it, and etcd would let its caller wait for its request timeout
// (7 s); API calls in flight are cancelled instead once the new leader is
// known, and their callers retry (the error says the outcome is unknown).
type leaderEpoch struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func (e *leaderEpoch) current() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil {
		e.ctx, e.cancel = context.WithCancel(context.Background())
	}
	return e.ctx
}

func (e *leaderEpoch) next() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		e.cancel()
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
}

// watchLeader ends the epoch at each new leader.
func (s *Server) watchLeader(ctx context.Context) {
	if s.etcd == nil {
		return
	}
	for {
		changed := s.etcd.Server.LeaderChangedNotify()
		select {
		case <-ctx.Done():
			return
		case <-changed:
			s.epoch.next()
		}
	}
}

// leaderBound makes ECS and EFS calls end when the leader changes under
// them (see leaderEpoch).
func (s *Server) leaderBound(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.etcd == nil || !(r.Header.Get("X-Amz-Target") != "" || strings.HasPrefix(r.URL.Path, "/2015-02-01/")) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.epoch.current(), cancel)
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
