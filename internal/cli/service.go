package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/spf13/cobra"
)

func serviceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Services: create, ls, scale, update, events, rm"}
	show := func(f *userFlags, cmd *cobra.Command, s *types.Service) error {
		if f.json() {
			return printECS(cmd.OutOrStdout(), s)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  desired %d, running %d, pending %d  %s\n", aws.ToString(s.ServiceName), aws.ToString(s.Status),
			s.DesiredCount, s.RunningCount, s.PendingCount, shortID(aws.ToString(s.TaskDefinition)))
		return nil
	}
	cf := &userFlags{}
	create := &cobra.Command{Use: "create FILE.json", Short: "Create a service from a CreateService input file", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			b, err := os.ReadFile(a[0])
			if err != nil {
				return err
			}
			var in ecs.CreateServiceInput
			if err := json.Unmarshal(b, &in); err != nil {
				return fmt.Errorf("%s: %w", a[0], err)
			}
			if in.Cluster == nil {
				in.Cluster = aws.String(cf.cluster)
			}
			out, err := cf.client().CreateService(cmd.Context(), &in)
			if err != nil {
				return friendly(err)
			}
			return show(cf, cmd, out.Service)
		}}
	cf.register(create)
	lf := &userFlags{}
	ls := &cobra.Command{Use: "ls", Short: "List services", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c := lf.client()
		l, err := c.ListServices(cmd.Context(), &ecs.ListServicesInput{Cluster: aws.String(lf.cluster)})
		if err != nil {
			return friendly(err)
		}
		var svcs []types.Service
		for i := 0; i < len(l.ServiceArns); i += 10 {
			d, err := c.DescribeServices(cmd.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(lf.cluster), Services: l.ServiceArns[i:min(i+10, len(l.ServiceArns))]})
			if err != nil {
				return friendly(err)
			}
			svcs = append(svcs, d.Services...)
		}
		if lf.json() {
			return printECS(cmd.OutOrStdout(), svcs)
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tSTATUS\tDESIRED\tRUNNING\tPENDING\tDEFINITION\tROLLOUT")
		for _, s := range svcs {
			rollout := "-"
			if len(s.Deployments) > 0 {
				rollout = string(s.Deployments[0].RolloutState)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", aws.ToString(s.ServiceName), aws.ToString(s.Status), s.DesiredCount, s.RunningCount, s.PendingCount,
				shortID(aws.ToString(s.TaskDefinition)), rollout)
		}
		return tw.Flush()
	}}
	lf.register(ls)
	sf := &userFlags{}
	scale := &cobra.Command{Use: "scale SERVICE COUNT", Short: "Set a service's desired count", Args: cobra.ExactArgs(2), RunE: func(cmd *cobra.Command, a []string) error {
		n, err := strconv.Atoi(a[1])
		if err != nil {
			return fmt.Errorf("count %q is not a number", a[1])
		}
		out, err := sf.client().UpdateService(cmd.Context(), &ecs.UpdateServiceInput{Cluster: aws.String(sf.cluster), Service: aws.String(a[0]), DesiredCount: aws.Int32(int32(n))})
		if err != nil {
			return friendly(err)
		}
		return show(sf, cmd, out.Service)
	}}
	sf.register(scale)
	uf := &userFlags{}
	var td string
	var force bool
	update := &cobra.Command{Use: "update SERVICE", Short: "Deploy a new task definition (rolling, within the deployment configuration)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			in := &ecs.UpdateServiceInput{Cluster: aws.String(uf.cluster), Service: aws.String(a[0]), ForceNewDeployment: force}
			if td != "" {
				in.TaskDefinition = aws.String(td)
			}
			out, err := uf.client().UpdateService(cmd.Context(), in)
			if err != nil {
				return friendly(err)
			}
			return show(uf, cmd, out.Service)
		}}
	uf.register(update)
	update.Flags().StringVar(&td, "task-definition", "", "the task definition to deploy (family, family:revision or ARN)")
	update.Flags().BoolVar(&force, "force-new-deployment", false, "replace every task even with the same definition")
	ef := &userFlags{}
	var limit int
	events := &cobra.Command{Use: "events SERVICE", Short: "Show a service's events, newest first", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := ef.client().DescribeServices(cmd.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(ef.cluster), Services: a})
		if err != nil {
			return friendly(err)
		}
		if len(d.Services) == 0 {
			return fmt.Errorf("service %s not found in cluster %s", a[0], ef.cluster)
		}
		evs := d.Services[0].Events
		if len(evs) > limit {
			evs = evs[:limit]
		}
		if ef.json() {
			return printECS(cmd.OutOrStdout(), evs)
		}
		for _, e := range evs {
			fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", aws.ToTime(e.CreatedAt).Local().Format(time.DateTime), aws.ToString(e.Message))
		}
		return nil
	}}
	ef.register(events)
	events.Flags().IntVar(&limit, "limit", 20, "how many events")
	rf := &userFlags{}
	rm := &cobra.Command{Use: "rm SERVICE", Short: "Delete a service (its tasks are stopped)", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		out, err := rf.client().DeleteService(cmd.Context(), &ecs.DeleteServiceInput{Cluster: aws.String(rf.cluster), Service: aws.String(a[0]), Force: aws.Bool(true)})
		if err != nil {
			return friendly(err)
		}
		return show(rf, cmd, out.Service)
	}}
	rf.register(rm)
	cmd.AddCommand(create, ls, scale, update, events, rm)
	return cmd
}
