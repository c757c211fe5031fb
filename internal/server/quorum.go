package server

import (
	"fmt"
	"net/http"
	"strings"
)

// noLeaderMessage is what a server says while its etcd member has no
// leader: it is cut off from a majority of the members (or they are down).
const noLeaderMessage = "This server's etcd member has no leader: it cannot reach a majority of the control plane's members. Nothing was changed; try another server."

// requireQuorum answers 503 (ServerException) at once while this server's
// embedded member has no leader, rather than letting each call wait for
// etcd's request timeout: agents and mounts move to the next server on a
// 503, and users get a clear error. The CA, health, metrics and the member
// list stay served, so an operator can see what is wrong.
func (s *Server) requireQuorum(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.etcd == nil || s.etcd.Server.Leader() != 0 {
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
