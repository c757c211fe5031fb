package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/server"
)

func fsxCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "fsx", Short: "SMB file systems (FSx for Windows File Server): their endpoints and users"}
	f := &userFlags{}
	ls := &cobra.Command{Use: "ls", Short: "List FSx file systems, the agent and address serving each zone, and the share's users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out server.FSxList
			if err := f.post(cmd.Context(), "/berth/v1/fsx/list", &struct{}{}, &out); err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FILE SYSTEM\tLIFECYCLE\tDEPLOYMENT\tDOMAIN\tZONE\tENDPOINT\tINSTANCE\tUSERS")
			for _, fs := range out.FileSystems {
				for i, z := range fs.Zones {
					e := fs.Endpoints[z]
					addr := e.Address
					if addr == "" {
						addr = "-"
					} else if !e.Ready {
						addr += " (starting)"
					}
					inst := e.Instance
					if inst == "" {
						inst = "(no agent in this zone serves it)"
					}
					id, life, dep, dom, users := fs.ID, fs.Lifecycle, fs.Deployment, fs.Domain, strings.Join(fs.Users, ",")
					if i > 0 {
						id, life, dep, dom, users = "", "", "", "", ""
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, life, dep, dom, z, addr, inst, users)
				}
			}
			return w.Flush()
		}}
	f.register(ls)
	user := &cobra.Command{Use: "user", Short: "Users of a file system's share (for an AWS Managed AD, whose directory Berth cannot read)"}
	var fromStdin bool
	add := &cobra.Command{Use: "add FILE_SYSTEM USER", Short: "Add a user to the share, or give it a new password (read from standard input)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fromStdin {
				fmt.Fprint(cmd.ErrOrStderr(), "password: ")
			}
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			pw := strings.TrimRight(line, "\r\n")
			if pw == "" {
				if err != nil {
					return fmt.Errorf("read the password: %w", err)
				}
				return errors.New("the password is empty")
			}
			return f.post(cmd.Context(), "/berth/v1/fsx/users/put", &server.FSxUserRequest{FileSystemID: args[0], UserName: args[1], Password: pw}, nil)
		}}
	add.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input without a prompt")
	rm := &cobra.Command{Use: "rm FILE_SYSTEM USER", Short: "Remove a user of the share", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.post(cmd.Context(), "/berth/v1/fsx/users/delete", &server.FSxUserRequest{FileSystemID: args[0], UserName: args[1]}, nil)
		}}
	f.register(add)
	f.register(rm)
	user.AddCommand(add, rm)
	cmd.AddCommand(ls, user)
	return cmd
}
