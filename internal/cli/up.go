package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/server"
)

func upCmd() *cobra.Command {
	f := &serverFlags{}
	af := &agentFlags{}
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
			s, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			// The local agent joins like any other, over loopback.
			af.server, af.cluster, af.dataDir, af.token = s.Endpoint(), "default", filepath.Join(cfg.DataDir, "agent"), s.JoinToken()
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
`, s.Endpoint(), cfg.DataDir, cfg.Region, where)
			<-cmd.Context().Done()
			return <-errc
		},
	}
	f.register(cmd)
	af.register(cmd, false)
	return cmd
}
