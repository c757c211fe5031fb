package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/server"
)

func upCmd() *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole Berth cluster on this machine",
		Long: `Run a whole Berth cluster on this machine: the control plane with an
embedded single-member etcd under --data-dir. State survives restarts.`,
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
			fmt.Fprintf(cmd.OutOrStdout(), `Berth is up.
  ECS API:   %[1]s
  data:      %[2]s

Point the AWS CLI at it:
  export AWS_ACCESS_KEY_ID=berth AWS_SECRET_ACCESS_KEY=berth AWS_DEFAULT_REGION=%[3]s
  aws ecs create-cluster --endpoint-url %[1]s
`, s.Endpoint(), cfg.DataDir, cfg.Region)
			<-cmd.Context().Done()
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
