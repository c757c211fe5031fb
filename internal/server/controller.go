package server

import (
	"context"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/berth-project/berth/internal/controller"
	"github.com/berth-project/berth/internal/state"
)

// runController campaigns for leadership and, while leader, runs the
// service controller every second, and at once when an agent's lease
// expires. Several servers may run; one leads.
func (s *Server) runController(ctx context.Context) {
	c := &controller.Controller{Store: s.API.Store, Cache: s.API.Cache, Applier: s.API.Applier, Launcher: s.API, Snapshots: s.volumes,
		Log: s.API.Log, Now: s.API.Now, LostGrace: s.cfg.LostInstanceGrace}
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(s.client, concurrency.WithTTL(5), concurrency.WithContext(ctx))
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		e := concurrency.NewElection(sess, state.ControllerElection())
		if err := e.Campaign(ctx, s.Addr()); err != nil {
			sess.Close()
			continue
		}
		t := time.NewTicker(time.Second)
	lead:
		for {
			select {
			case <-ctx.Done():
				break lead
			case <-sess.Done():
				break lead // lost the session: campaign again
			case <-t.C:
			case <-s.API.Cache.AgentLost():
			}
			if err := c.Pass(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Log.Warn("service controller", "err", err)
			}
		}
		t.Stop()
		e.Resign(context.WithoutCancel(ctx))
		sess.Close()
	}
}
