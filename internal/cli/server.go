package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/server"
)

type serverFlags struct {
	dataDir, listen, region, account string
	etcd                             []string
	accessKeys, agentKeys            []string
	leaseTTL, retention, lostGrace   time.Duration
	fsSessionTTL, fsChunkGrace       time.Duration
	blobStore                        string
}

func (f *serverFlags) register(cmd *cobra.Command) {
	home, _ := os.UserHomeDir()
	cmd.Flags().StringVar(&f.dataDir, "data-dir", filepath.Join(home, ".berth"), "where Berth keeps its state (embedded etcd)")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7440", "address of the API (ECS, agents, /metrics)")
	cmd.Flags().StringSliceVar(&f.etcd, "etcd-endpoints", nil, "use this etcd cluster instead of an embedded member")
	cmd.Flags().StringVar(&f.region, "region", "us-east-1", "AWS region named in ARNs")
	cmd.Flags().StringVar(&f.account, "account", "000000000000", "AWS account id named in ARNs")
	cmd.Flags().StringSliceVar(&f.accessKeys, "access-key", nil, "ACCESS_KEY_ID:SECRET accepted for SigV4-signed requests (repeatable; also $BERTH_ACCESS_KEYS, comma-separated)")
	cmd.Flags().DurationVar(&f.leaseTTL, "agent-lease-ttl", 10*time.Second, "an agent silent for this long is shown as agentConnected=false")
	cmd.Flags().DurationVar(&f.retention, "stopped-task-retention", 3*time.Hour, "how long stopped tasks stay describable")
	cmd.Flags().DurationVar(&f.lostGrace, "lost-instance-grace", 15*time.Second, "how long an instance may be without its agent before its service tasks are replaced elsewhere")
	cmd.Flags().DurationVar(&f.fsSessionTTL, "fs-session-ttl", 15*time.Second, "a shared file system mount silent for this long loses its session and its locks")
	cmd.Flags().StringSliceVar(&f.agentKeys, "agent-access-key", nil, "ACCESS_KEY_ID:SECRET for agents only: their own endpoints, RegisterContainerInstance and SubmitTaskStateChange, and EFS mounts only for their tasks (repeatable; also $BERTH_AGENT_ACCESS_KEYS)")
	cmd.Flags().DurationVar(&f.fsChunkGrace, "fs-chunk-grace", 10*time.Minute, "shared file system chunks younger than this are never collected")
	cmd.Flags().StringVar(&f.blobStore, "blob-store", os.Getenv("BERTH_BLOB_STORE"), "where block-volume snapshots live: file:///PATH (default DATA_DIR/blobs: one copy on this disk) or s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=REGION&path-style=true, credentials from the AWS SDK's standard chain (also $BERTH_BLOB_STORE)")
}

func (f *serverFlags) config(requireAuthOffLoopback bool) (server.Config, error) {
	parse := func(flag string, keys []string, env string) (map[string]string, error) {
		creds := map[string]string{}
		if e := os.Getenv(env); e != "" {
			keys = append(keys, strings.Split(e, ",")...)
		}
		for _, k := range keys {
			id, secret, ok := strings.Cut(strings.TrimSpace(k), ":")
			if !ok || id == "" || secret == "" {
				return nil, fmt.Errorf("--%s wants ACCESS_KEY_ID:SECRET, got %q", flag, k)
			}
			creds[id] = secret
		}
		return creds, nil
	}
	creds, err := parse("access-key", f.accessKeys, "BERTH_ACCESS_KEYS")
	if err != nil {
		return server.Config{}, err
	}
	agentCreds, err := parse("agent-access-key", f.agentKeys, "BERTH_AGENT_ACCESS_KEYS")
	if err != nil {
		return server.Config{}, err
	}
	loopback := isLoopback(f.listen)
	if requireAuthOffLoopback && !loopback && len(creds) == 0 {
		return server.Config{}, fmt.Errorf("listening on %s (not loopback) needs at least one --access-key: anything reachable from the network authenticates", f.listen)
	}
	return server.Config{
		DataDir: f.dataDir, Listen: f.listen, EtcdEndpoints: f.etcd, Region: f.region, Account: f.account,
		LeaseTTL: f.leaseTTL, StoppedTaskRetention: f.retention, LostInstanceGrace: f.lostGrace, FSSessionTTL: f.fsSessionTTL, FSChunkGrace: f.fsChunkGrace, BlobStore: f.blobStore, Credentials: creds, AgentCredentials: agentCreds, RequireAuth: len(creds)+len(agentCreds) > 0, Log: logger(),
	}, nil
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serverCmd() *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (ECS API over etcd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(true)
			if err != nil {
				return err
			}
			s, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			cfg.Log.Info("berth server ready", "endpoint", s.Endpoint(), "auth", cfg.RequireAuth)
			if tok := s.JoinToken(); tok != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Agents join with:\n  berth agent --server https://%s --token %s\n(the token is kept in %s/join-token; more with `berth token create`)\n",
					reachableAddr(s.Addr()), tok, cfg.DataDir)
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// reachableAddr names a listen address as other machines reach it: an
// unspecified host (0.0.0.0, ::) becomes this machine's host name, which
// the server's certificate names.
func reachableAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			return net.JoinHostPort(h, port)
		}
	}
	return addr
}
