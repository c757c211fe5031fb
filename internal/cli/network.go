package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/server"
)

func networkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "The task network of awsvpc tasks: subnets (one per zone) and each instance's block of addresses"}
	f := &userFlags{}
	ls := &cobra.Command{Use: "ls", Short: "List subnets and the instances' address blocks (the routes a network between hosts needs)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out server.NetworkList
			if err := f.post(cmd.Context(), "/berth/v1/network/list", &struct{}{}, &out); err != nil {
				return err
			}
			if f.json() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "VPC %s\n\nSUBNET\tZONE\tCIDR\n", out.CIDR)
			for _, s := range out.Subnets {
				fmt.Fprintf(w, "%s\t%s\t%s\n", s.SubnetID, s.Zone, s.CIDR)
			}
			fmt.Fprintln(w, "\nBLOCK\tSUBNET\tCLUSTER\tCONTAINER INSTANCE\tHOST\tGATEWAY")
			for _, b := range out.Blocks {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", b.CIDR, b.SubnetID, b.Cluster, b.InstanceID, b.HostAddress, b.Gateway)
			}
			return w.Flush()
		}}
	f.register(ls)
	cmd.AddCommand(ls)
	return cmd
}
