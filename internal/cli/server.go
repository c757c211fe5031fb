package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
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
	blobStore, secretsKey            string
	etcdName, peerListen, token      string
	join                             []string
}

func (f *serverFlags) register(cmd *cobra.Command) {
	home, _ := os.UserHomeDir()
	cmd.Flags().StringVar(&f.dataDir, "data-dir", filepath.Join(home, ".berth"), "where Berth keeps its state (embedded etcd)")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7440", "address of the API (ECS, agents, /metrics)")
	cmd.Flags().StringSliceVar(&f.etcd, "etcd-endpoints", nil, "use this etcd cluster instead of an embedded member")
	cmd.Flags().StringVar(&f.region, "region", "us-east-1", "AWS region named in ARNs")
	cmd.Flags().StringVar(&f.account, "account", "000000000000", "AWS account id named in ARNs")
	cmd.Flags().StringSliceVar(&f.accessKeys, "access-key", nil, "ACCESS_KEY_ID:SECRET accepted for SigV4-signed requests (repeatable; also $BERTH_ACCESS_KEYS, comma-separated)")
	cmd.Flags().DurationVar(&f.leaseTTL, "agent-lease-ttl", server.DefaultLeaseTTL, "an agent silent for this long is shown as agentConnected=false and its instance is lost: its service tasks start elsewhere")
	cmd.Flags().DurationVar(&f.retention, "stopped-task-retention", 3*time.Hour, "how long stopped tasks stay describable")
	cmd.Flags().DurationVar(&f.lostGrace, "lost-instance-grace", 0, "how long an instance may be without its agent, after its lease expired, before its service tasks are replaced elsewhere")
	cmd.Flags().DurationVar(&f.fsSessionTTL, "fs-session-ttl", 15*time.Second, "a shared file system mount silent for this long loses its session and its locks")
	cmd.Flags().StringSliceVar(&f.agentKeys, "agent-access-key", nil, "ACCESS_KEY_ID:SECRET for agents only: their own endpoints, RegisterContainerInstance and SubmitTaskStateChange, and EFS mounts only for their tasks (repeatable; also $BERTH_AGENT_ACCESS_KEYS)")
	cmd.Flags().DurationVar(&f.fsChunkGrace, "fs-chunk-grace", 10*time.Minute, "shared file system chunks younger than this are never collected")
	cmd.Flags().StringVar(&f.etcdName, "etcd-name", "", "name of this server's etcd member, one of several (default: its peer address)")
	cmd.Flags().StringVar(&f.peerListen, "etcd-peer-listen", "", "HOST:PORT this server's etcd member listens on for the other members, over TLS (the address they reach it at); without it the member is alone, on loopback")
	cmd.Flags().StringSliceVar(&f.join, "join", nil, "the first time: join the cluster of these servers (URL1,URL2,…) with --token, a member token from `berth server members add`")
	cmd.Flags().StringVar(&f.token, "token", os.Getenv("BERTH_MEMBER_TOKEN"), "member token for --join (also $BERTH_MEMBER_TOKEN)")
	cmd.Flags().StringVar(&f.secretsKey, "secrets-key-file", "", "the cluster's key for Secrets Manager and SSM values (default DATA_DIR/secrets.key, made by the first server; servers joining with --join receive it; with --etcd-endpoints copy it to every server: one without it runs with Secrets Manager, SSM and FSx off)")
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
	if len(f.join) > 0 && f.token == "" {
		return server.Config{}, errors.New("--join needs --token: a member token from `berth server members add` on a server of the cluster")
	}
	if len(f.etcd) > 0 && (f.peerListen != "" || len(f.join) > 0) {
		return server.Config{}, errors.New("--etcd-endpoints uses an external etcd: --etcd-peer-listen and --join are for the embedded one")
	}
	loopback := isLoopback(f.listen)
	if requireAuthOffLoopback && !loopback && len(creds) == 0 {
		return server.Config{}, fmt.Errorf("listening on %s (not loopback) needs at least one --access-key: anything reachable from the network authenticates", f.listen)
	}
	return server.Config{
		Etcd:    server.EtcdMember{Name: f.etcdName, PeerListen: f.peerListen, Join: f.join, Token: f.token},
		DataDir: f.dataDir, Listen: f.listen, EtcdEndpoints: f.etcd, Region: f.region, Account: f.account,
		LeaseTTL: f.leaseTTL, StoppedTaskRetention: f.retention, LostInstanceGrace: f.lostGrace, FSSessionTTL: f.fsSessionTTL, FSChunkGrace: f.fsChunkGrace, BlobStore: f.blobStore, SecretsKeyFile: f.secretsKey, Credentials: creds, AgentCredentials: agentCreds, RequireAuth: len(creds)+len(agentCreds) > 0, Log: logger(),
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
	cmd.AddCommand(membersCmd())
	return cmd
}

// membersCmd manages the embedded etcd members of a cluster's servers.
func membersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "members", Short: "The cluster's etcd members, one per server: ls, add, rm"}
	af := &userFlags{}
	add := &cobra.Command{Use: "add", Short: "Make a single-use member token (valid for an hour) a new server joins with", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out server.MemberTokenResponse
			if err := af.post(cmd.Context(), "/berth/v1/members/token", &server.MembersRequest{}, &out); err != nil {
				return err
			}
			if af.json() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			join := af.endpoint
			if strings.Contains(join, "127.0.0.1") || strings.Contains(join, "localhost") {
				join = "https://THIS-SERVER:PORT" // loopback here is not loopback there
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nOn the new server (valid until %s, once):\n  berth server --etcd-peer-listen HOST:PORT --join %s --token %s\n",
				out.Token, out.ExpiresAt.Format(time.RFC3339), join, out.Token)
			return nil
		}}
	af.register(add)
	lf := &userFlags{}
	ls := &cobra.Command{Use: "ls", Aliases: []string{"list"}, Short: "List the members: leader, learners, and whether each peer port answers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out server.MembersResponse
			if err := lf.post(cmd.Context(), "/berth/v1/members/list", &server.MembersRequest{}, &out); err != nil {
				return err
			}
			if lf.json() {
				return printJSON(cmd.OutOrStdout(), out.Members)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tPEER URL\tROLE\tREACHABLE")
			for _, m := range out.Members {
				role := "voter"
				if m.Learner {
					role = "learner"
				}
				if m.Leader {
					role = "leader"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", m.Name, m.ID, strings.Join(m.PeerURLs, ","), role, m.Reachable)
			}
			return w.Flush()
		}}
	lf.register(ls)
	rf := &userFlags{}
	rm := &cobra.Command{Use: "rm NAME", Aliases: []string{"remove"}, Short: "Remove a member (a dead server's) by name or id", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			return rf.post(cmd.Context(), "/berth/v1/members/remove", &server.MembersRequest{Member: a[0]}, nil)
		}}
	rf.register(rm)
	cmd.AddCommand(add, ls, rm)
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
