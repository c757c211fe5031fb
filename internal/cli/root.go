// Package cli is the berth command line: one file per subcommand. It parses
// flags and wires packages together; it holds no logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Berth runs Amazon ECS task definitions on your own machines, with storage that outlives containers.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCmd(), upCmd(), agentCmd(), runCmd(), psCmd(), stopCmd(), logsCmd(), instancesCmd(), volumeCmd(), snapshotCmd(), serviceCmd(), fsCmd(), tokenCmd(), blobCmd(), networkCmd(), fsxCmd(), downCmd())
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 1
	}
	return 0
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
