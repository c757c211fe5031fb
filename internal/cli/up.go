package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/server"
)

func upCmd() *cobra.Command {
	f := &serverFlags{}
	af := &agentFlags{}
	var count int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole Berth cluster on this machine",
		Long: `Run a whole Berth cluster on this machine: the control plane with an
embedded single-member etcd under --data-dir, and a local agent that runs
tasks on this machine's Docker Engine. State survives restarts; containers
keep running across a restart and are adopted again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(true)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return err
			}
			release, err := claimUp(cfg.DataDir, "http://"+cfg.Listen)
			if err != nil {
				return err
			}
			defer release()
			servers, err := startServers(cmd.Context(), cfg, count)
			for _, s := range servers {
				defer s.Close()
			}
			if err != nil {
				return err
			}
			s := servers[0]
			var endpoints []string
			for _, s := range servers {
				endpoints = append(endpoints, s.Endpoint())
			}
			// The local agent joins like any other, over loopback.
			af.server, af.cluster, af.dataDir, af.token = strings.Join(endpoints, ","), "default", filepath.Join(cfg.DataDir, "agent"), s.JoinToken()
			ag, err := agent.New(af.config())
			if err != nil {
				return err
			}
			errc := make(chan error, 1)
			go func() { errc <- ag.Run(cmd.Context()) }()
			select {
			case <-ag.Ready():
			case err := <-errc:
				return fmt.Errorf("local agent: %w", err)
			}
			where, single := s.DataStore()
			if single {
				where += " (one copy on this disk: fine for trying Berth; --blob-store s3://… keeps it in a replicated store)"
			}
			if len(servers) > 1 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d servers, each with an etcd member (a majority must run): %s\n", len(servers), strings.Join(endpoints, " "))
			}
			fmt.Fprintf(cmd.OutOrStdout(), `Berth is up.
  ECS API:   %[1]s
  state:     %[2]s
  data:      %[4]s

Point the AWS CLI at it:
  export AWS_ACCESS_KEY_ID=berth AWS_SECRET_ACCESS_KEY=berth AWS_DEFAULT_REGION=%[3]s
  aws ecs list-container-instances --endpoint-url %[1]s

Try:
  ./scripts/busybox-image     # once: the examples' image, from Debian's busybox-static
  berth run --wait examples/counter.json
  open %[1]s/ in a browser     # the console

Stop it with Ctrl-C here, or berth down (--data-dir %[2]s) from another terminal:
tasks' containers keep running and the next berth up adopts them.
`, s.Endpoint(), cfg.DataDir, cfg.Region, where)
			<-cmd.Context().Done()
			return <-errc
		},
	}
	f.register(cmd)
	af.register(cmd, false)
	cmd.Flags().IntVar(&count, "servers", 1, "run this many servers, each with an etcd member, on ports after --listen's (3 or 5 to try a control plane that outlives one of them; the first keeps --data-dir, the others DATA_DIR/servers/N)")
	return cmd
}

// startServers starts count servers of one cluster on this machine: the
// first in cfg.DataDir on cfg.Listen, the others in DataDir/servers/N on
// the ports after it, each with an etcd member whose peers listen on
// loopback over TLS. Members made before start together (each waits for a
// majority); new ones join through the first, one at a time. Without
// --blob-store they share one store, DATA_DIR/blobs.
func startServers(ctx context.Context, cfg server.Config, count int) ([]*server.Server, error) {
	if count < 1 || count > 7 {
		return nil, fmt.Errorf("--servers %d: 1 to 7 (an odd number: a majority must run)", count)
	}
	if count == 1 {
		s, err := server.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return []*server.Server{s}, nil
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	base, err := strconv.Atoi(port)
	if err != nil || base == 0 {
		return nil, fmt.Errorf("--servers needs --listen with a port number, not %s", cfg.Listen)
	}
	if cfg.BlobStore == "" && cfg.Blobs == nil {
		// Every server must reach the same data: one directory for all.
		abs, err := filepath.Abs(filepath.Join(cfg.DataDir, "blobs"))
		if err != nil {
			return nil, err
		}
		cfg.BlobStore = "file://" + abs
	}
	cfgs := make([]server.Config, count)
	var existing, joining []int
	for i := range cfgs {
		c := cfg
		if i > 0 {
			c.DataDir = filepath.Join(cfg.DataDir, "servers", strconv.Itoa(i+1))
			c.Listen = net.JoinHostPort(host, strconv.Itoa(base+i))
			c.Log = cfg.Log.With("server", i+1)
		}
		c.Etcd = server.EtcdMember{Name: fmt.Sprintf("berth-%d", i+1), PeerListen: "127.0.0.1:0"}
		cfgs[i] = c
		if _, err := os.Stat(filepath.Join(c.DataDir, "etcd-member.json")); i == 0 || err == nil {
			existing = append(existing, i)
		} else {
			joining = append(joining, i)
		}
	}
	out := make([]*server.Server, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for _, i := range existing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = server.Start(ctx, cfgs[i])
		}()
	}
	wg.Wait()
	started := func() []*server.Server {
		var l []*server.Server
		for _, s := range out {
			if s != nil {
				l = append(l, s)
			}
		}
		return l
	}
	if err := errors.Join(errs...); err != nil {
		return started(), err
	}
	for _, i := range joining {
		tok, err := out[0].CreateMemberToken(ctx)
		if err != nil {
			return started(), err
		}
		cfgs[i].Etcd.Join, cfgs[i].Etcd.Token = []string{out[0].Endpoint()}, tok.Token
		if out[i], err = server.Start(ctx, cfgs[i]); err != nil {
			return started(), fmt.Errorf("server %d: %w", i+1, err)
		}
	}
	return out, nil
}
