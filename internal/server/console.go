package server

import (
	"net/http"

	"github.com/berth-project/berth/internal/console"
	"github.com/berth-project/berth/internal/state"
)

// consoleRoutes serves the web console at / (GET): it reads through the
// same APIs, in-process; it asks for an operator's access key when the
// server requires signed requests.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	efsMux := http.NewServeMux()
	s.efs.Routes(efsMux, func(h http.Handler) http.Handler { return h })
	c := &console.Console{ECS: s.API, Volumes: s.volumes, EFS: efsMux, Store: state.New(s.client), Log: s.cfg.Log}
	if s.cfg.RequireAuth {
		c.Credentials = s.cfg.Credentials
	}
	c.Routes(mux)
}
