package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/server"
)

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Join tokens for agents: create, ls, rm"}
	cf := &userFlags{}
	var desc string
	create := &cobra.Command{Use: "create", Short: "Make a join token (its secret is shown only now)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out server.TokenResponse
			if err := cf.post(cmd.Context(), "/berth/v1/tokens/create", &server.TokenRequest{Description: desc}, &out); err != nil {
				return err
			}
			if cf.json() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			return nil
		}}
	cf.register(create)
	create.Flags().StringVar(&desc, "description", "", "what the token is for")
	lf := &userFlags{}
	ls := &cobra.Command{Use: "ls", Short: "List join tokens (ids, never secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out server.TokenResponse
			if err := lf.post(cmd.Context(), "/berth/v1/tokens/list", &server.TokenRequest{}, &out); err != nil {
				return err
			}
			if lf.json() {
				return printJSON(cmd.OutOrStdout(), out.Tokens)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tCREATED\tDESCRIPTION")
			for _, t := range out.Tokens {
				fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, t.CreatedAt.Format("2006-01-02T15:04:05Z"), t.Description)
			}
			return w.Flush()
		}}
	lf.register(ls)
	rf := &userFlags{}
	rm := &cobra.Command{Use: "rm ID", Short: "Revoke a join token: no agent joins with it again (agents that joined keep their credentials)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			return rf.post(cmd.Context(), "/berth/v1/tokens/delete", &server.TokenRequest{ID: a[0]}, nil)
		}}
	rf.register(rm)
	cmd.AddCommand(create, ls, rm)
	return cmd
}
