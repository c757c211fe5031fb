package cli

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/agent"
)

type agentFlags struct {
	server, cluster, zone, dataDir, dockerHost, accessKey, token, capacity, address string
	cpu, memory                                                                     int
	noPrivileged, noSMB                                                             bool
	allow                                                                           []string
	cleanup, heartbeat                                                              time.Duration
}

func (f *agentFlags) register(cmd *cobra.Command, withServer bool) {
	home, _ := os.UserHomeDir()
	if withServer {
		cmd.Flags().StringVar(&f.server, "server", "http://127.0.0.1:7440", "URL of the Berth server, or several as URL1,URL2,… (the agent moves to the next when one cannot be reached)")
		cmd.Flags().StringVar(&f.cluster, "cluster", "default", "cluster to join")
		cmd.Flags().StringVar(&f.dataDir, "data-dir", filepath.Join(home, ".berth-agent"), "where the agent keeps its identity")
		cmd.Flags().StringVar(&f.accessKey, "access-key", os.Getenv("BERTH_ACCESS_KEY"), "ACCESS_KEY_ID:SECRET to sign requests with (also $BERTH_ACCESS_KEY); a join token is the usual way")
		cmd.Flags().StringVar(&f.token, "token", os.Getenv("BERTH_TOKEN"), "join token printed by `berth server` or made by `berth token create` (also $BERTH_TOKEN): pins the cluster CA and buys this agent credentials of its own, kept in --data-dir")
		cmd.Flags().StringVar(&f.zone, "zone", "", "availability zone of this instance (ecs.availability-zone; default "+agent.DefaultZone+", or the zone it registered in before)")
		cmd.Flags().StringVar(&f.address, "address", "", "address other hosts reach this instance's awsvpc tasks through (default: the one it reaches the server from)")
	} else {
		cmd.Flags().StringVar(&f.zone, "zone", "", "availability zone of the local agent (default "+agent.DefaultZone+", or the zone it registered in before)")
	}
	cmd.Flags().StringVar(&f.dockerHost, "docker-host", "", "Docker Engine address (default: $DOCKER_HOST or the local socket)")
	cmd.Flags().IntVar(&f.cpu, "cpu", 0, "CPU units to offer (default: 1024 per core)")
	cmd.Flags().IntVar(&f.memory, "memory", 0, "MiB of memory to offer (default: the machine's)")
	cmd.Flags().StringSliceVar(&f.allow, "allow-host-path", nil, "limit host.sourcePath to these directories, symlinks below them refused (default: any host path, as on ECS)")
	cmd.Flags().BoolVar(&f.noPrivileged, "disable-privileged", os.Getenv("BERTH_DISABLE_PRIVILEGED") == "true", "refuse privileged containers, as ECS_DISABLE_PRIVILEGED does (also $BERTH_DISABLE_PRIVILEGED=true)")
	cmd.Flags().DurationVar(&f.cleanup, "task-cleanup-wait", 3*time.Hour, "how long a stopped task's containers and task volumes are kept (as ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION)")
	cmd.Flags().BoolVar(&f.noSMB, "no-smb", false, "serve no SMB shares of FSx for Windows File Server file systems (by default an instance with Samba and nss_wrapper serves its zone's)")
	cmd.Flags().StringVar(&f.capacity, "capacity", "EC2,FARGATE", "which tasks this instance takes: EC2, FARGATE (reserved for Fargate tasks) or both")
	cmd.Flags().DurationVar(&f.heartbeat, "heartbeat-interval", time.Second, "how often the agent renews its lease (the server says how long it lasts)")
}

func (f *agentFlags) config() agent.Config {
	cfg := agent.Config{Server: f.server, Cluster: f.cluster, Zone: f.zone, DataDir: f.dataDir, DockerHost: f.dockerHost,
		CPU: f.cpu, Memory: f.memory, AllowedHostPaths: f.allow, DisablePrivileged: f.noPrivileged, Token: f.token, CleanupWait: f.cleanup, HeartbeatInterval: f.heartbeat, Capacity: f.capacity, HostAddress: f.address, DisableSMB: f.noSMB, Log: logger()}
	if id, secret, ok := strings.Cut(f.accessKey, ":"); ok {
		cfg.Credentials = &agent.Client{Credentials: &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}}
	}
	return cfg
}

func agentCmd() *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a container instance: run the tasks placed on this machine on Docker",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := agent.New(f.config())
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	f.register(cmd, true)
	return cmd
}
