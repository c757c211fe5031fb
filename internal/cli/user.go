package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/server"
)

// exitError makes the CLI exit with a given code.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func runCmd() *cobra.Command {
	f := &userFlags{}
	var wait, detach bool
	var ebs, subnets []string
	var launchType string
	cmd := &cobra.Command{
		Use:   "run FILE.json",
		Short: "Register a task definition from a file and run it, following it to RUNNING (or STOPPED with --wait)",
		Long: `Register the task definition in FILE.json (the RegisterTaskDefinition input,
as for aws ecs register-task-definition --cli-input-json) and run one task.
berth run follows the task until it is RUNNING; with --wait, until it stops,
and then exits with the exit code of its essential container.

A definition that requires FARGATE runs with the FARGATE launch type; an
awsvpc task goes into --subnet, by default the subnets of the zones the
cluster's instances are in.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var in ecs.RegisterTaskDefinitionInput
			if err := json.Unmarshal(b, &in); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := checkParams(b); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			ctx := cmd.Context()
			c := f.client()
			// The same file runs the same revision: a new one is
			// registered only when the definition changed.
			sum := sourceSum(b)
			var def *types.TaskDefinition
			if in.Family != nil {
				if cur, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: in.Family, Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}}); err == nil {
					for _, tg := range cur.Tags {
						if aws.ToString(tg.Key) == SourceTag && aws.ToString(tg.Value) == sum && cur.TaskDefinition.Status == types.TaskDefinitionStatusActive {
							def = cur.TaskDefinition
						}
					}
				}
			}
			if def == nil {
				in.Tags = append(in.Tags, types.Tag{Key: aws.String(SourceTag), Value: aws.String(sum)})
				reg, err := c.RegisterTaskDefinition(ctx, &in)
				if err != nil {
					return friendly(err)
				}
				def = reg.TaskDefinition
			}
			reg := &ecs.RegisterTaskDefinitionOutput{TaskDefinition: def}
			td := aws.ToString(reg.TaskDefinition.TaskDefinitionArn)
			vcs, tags, err := ebsFlags(ebs)
			if err != nil {
				return err
			}
			run := &ecs.RunTaskInput{Cluster: aws.String(f.cluster), TaskDefinition: aws.String(td), StartedBy: aws.String("berth-cli"),
				VolumeConfigurations: vcs, Tags: tags, LaunchType: types.LaunchType(launchType)}
			if launchType == "" && slices.Contains(in.RequiresCompatibilities, types.CompatibilityFargate) && !slices.Contains(in.RequiresCompatibilities, types.CompatibilityEc2) {
				run.LaunchType = types.LaunchTypeFargate
			}
			if in.NetworkMode == types.NetworkModeAwsvpc {
				if len(subnets) == 0 {
					if subnets, err = defaultSubnets(ctx, c, f.cluster); err != nil {
						return err
					}
				}
				run.NetworkConfiguration = &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: subnets}}
			}
			out, err := c.RunTask(ctx, run)
			if err != nil {
				return friendly(err)
			}
			if len(out.Tasks) == 0 {
				for _, fl := range out.Failures {
					fmt.Fprintf(os.Stderr, "cannot place: %s %s %s\n", aws.ToString(fl.Reason), aws.ToString(fl.Detail), aws.ToString(fl.Arn))
				}
				return &exitError{1}
			}
			task := out.Tasks[0]
			w := cmd.OutOrStdout()
			if !f.json() {
				where := shortID(aws.ToString(task.ContainerInstanceArn))
				if task.ContainerInstanceArn == nil {
					where = string(task.LaunchType) + " in " + aws.ToString(task.AvailabilityZone)
				}
				fmt.Fprintf(w, "task %s (%s) placed on %s\n", shortID(aws.ToString(task.TaskArn)), shortID(td), where)
			}
			if detach {
				if f.json() {
					return printECS(w, task)
				}
				return nil
			}
			last, pulling := "", false
			prog := newProgress(w)
			var changed server.TaskWaitResponse
			for {
				d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(f.cluster), Tasks: []string{aws.ToString(task.TaskArn)}})
				if err != nil {
					return friendly(err)
				}
				task = d.Tasks[0]
				status := aws.ToString(task.LastStatus)
				if status != last && !f.json() {
					fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), status)
					if ip := taskAddress(task); status == "RUNNING" && ip != "" {
						fmt.Fprintf(w, "          address %s\n", ip)
					}
				}
				last = status
				if task.PullStartedAt != nil && task.PullStoppedAt == nil && !pulling && !f.json() {
					pulling = true
					fmt.Fprintf(w, "%s  pulling image(s)...\n", time.Now().Format("15:04:05"))
				}
				if pulling && changed.PullProgress != "" && !f.json() {
					prog.show(changed.PullProgress)
				}
				if pulling && task.PullStoppedAt != nil && !f.json() {
					prog.done()
					pulling = false
					fmt.Fprintf(w, "%s  pulled in %s\n", time.Now().Format("15:04:05"), task.PullStoppedAt.Sub(*task.PullStartedAt).Round(time.Millisecond))
				}
				if status == "STOPPED" {
					if f.json() {
						printECS(w, task)
					} else {
						fmt.Fprintf(w, "stopped: %s (%s)\n", aws.ToString(task.StoppedReason), task.StopCode)
						for _, ct := range task.Containers {
							fmt.Fprintf(w, "  %s exit %s %s\n", aws.ToString(ct.Name), exitStr(ct.ExitCode), aws.ToString(ct.Reason))
						}
					}
					return essentialExit(task, reg.TaskDefinition)
				}
				if status == "RUNNING" && !wait {
					if f.json() {
						return printECS(w, task)
					}
					return nil
				}
				// Wait for the task to change (the server answers at once
				// when it does); a pull in progress is looked at again
				// after a while for its progress.
				wait := 20
				if pulling {
					wait = 2
				}
				changed = server.TaskWaitResponse{}
				if err := f.post(ctx, "/berth/v1/tasks/wait", &server.TaskWaitRequest{Cluster: f.cluster, Task: aws.ToString(task.TaskArn),
					Version: task.Version, WaitSeconds: wait}, &changed); err != nil {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(300 * time.Millisecond):
					}
				}
			}
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the task until it stops and exit with its essential container's exit code")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return as soon as the task is placed")
	cmd.Flags().StringSliceVar(&subnets, "subnet", nil, "subnet(s) of an awsvpc task, subnet-ZONE (default: the zones of the cluster's instances)")
	cmd.Flags().StringVar(&launchType, "launch-type", "", "EC2 or FARGATE (default: FARGATE for a definition that requires it, else EC2)")
	cmd.Flags().StringArrayVar(&ebs, "ebs", nil, "a block volume for a configuredAtLaunch volume: a new one, NAME=SIZE_GIB[,keep][,fs=ext4][,snapshot=ID], or an existing one, NAME=vol-… (repeatable)")
	return cmd
}

// ebsFlags turns --ebs NAME=SIZE[,keep][,fs=..][,snapshot=..] into
// volumeConfigurations, and --ebs NAME=vol-… into the RunTask tag that
// attaches an existing volume.
func ebsFlags(specs []string) ([]types.TaskVolumeConfiguration, []types.Tag, error) {
	var out []types.TaskVolumeConfiguration
	var tags []types.Tag
	for _, s := range specs {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("--ebs wants NAME=SIZE_GIB[,keep][,fs=ext4][,snapshot=ID] or NAME=vol-…, got %q", s)
		}
		if strings.HasPrefix(rest, "vol-") {
			tags = append(tags, types.Tag{Key: aws.String(launch.AttachVolumeTagPrefix + name), Value: aws.String(rest)})
			continue
		}
		m := &types.TaskManagedEBSVolumeConfiguration{RoleArn: aws.String("arn:aws:iam::000000000000:role/berth")}
		for i, part := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(part, "=")
			switch {
			case i == 0 && k != "":
				n, err := strconv.Atoi(k)
				if err != nil {
					return nil, nil, fmt.Errorf("--ebs %s: size %q is not a number of GiB", name, k)
				}
				m.SizeInGiB = aws.Int32(int32(n))
			case k == "keep":
				m.TerminationPolicy = &types.TaskManagedEBSVolumeTerminationPolicy{DeleteOnTermination: aws.Bool(false)}
			case k == "fs":
				m.FilesystemType = types.TaskFilesystemType(v)
			case k == "snapshot":
				m.SnapshotId = aws.String(v)
			case k != "":
				return nil, nil, fmt.Errorf("--ebs %s: unknown option %q", name, k)
			}
		}
		out = append(out, types.TaskVolumeConfiguration{Name: aws.String(name), ManagedEBSVolume: m})
	}
	return out, tags, nil
}

func exitStr(p *int32) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// essentialExit is the exit code of the first essential container, 1 when
// the task failed before any ran.
func essentialExit(t types.Task, td *types.TaskDefinition) error {
	for _, cd := range td.ContainerDefinitions {
		if cd.Essential != nil && !*cd.Essential {
			continue
		}
		for _, ct := range t.Containers {
			if aws.ToString(ct.Name) == aws.ToString(cd.Name) && ct.ExitCode != nil {
				if *ct.ExitCode == 0 {
					return nil
				}
				return &exitError{int(*ct.ExitCode)}
			}
		}
	}
	return &exitError{1}
}

func psCmd() *cobra.Command {
	f := &userFlags{}
	var all bool
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c := f.client()
			statuses := []types.DesiredStatus{types.DesiredStatusRunning}
			if all {
				statuses = append(statuses, types.DesiredStatusStopped)
			}
			var arns []string
			for _, st := range statuses {
				p := ecs.NewListTasksPaginator(c, &ecs.ListTasksInput{Cluster: aws.String(f.cluster), DesiredStatus: st})
				for p.HasMorePages() {
					page, err := p.NextPage(ctx)
					if err != nil {
						return friendly(err)
					}
					arns = append(arns, page.TaskArns...)
				}
			}
			var tasks []types.Task
			for i := 0; i < len(arns); i += 100 {
				d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(f.cluster), Tasks: arns[i:min(i+100, len(arns))]})
				if err != nil {
					return friendly(err)
				}
				tasks = append(tasks, d.Tasks...)
			}
			sort.Slice(tasks, func(i, j int) bool { return aws.ToTime(tasks[i].CreatedAt).Before(aws.ToTime(tasks[j].CreatedAt)) })
			if f.json() {
				return printECS(cmd.OutOrStdout(), tasks)
			}
			defs := map[string]*types.TaskDefinition{}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK\tDEFINITION\tSTATUS\tHEALTH\tINSTANCE\tZONE\tVOLUMES\tAGE")
			for _, t := range tasks {
				arn := aws.ToString(t.TaskDefinitionArn)
				if _, ok := defs[arn]; !ok {
					if d, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn)}); err == nil {
						defs[arn] = d.TaskDefinition
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(aws.ToString(t.TaskArn)), shortID(arn), aws.ToString(t.LastStatus),
					string(t.HealthStatus), shortID(aws.ToString(t.ContainerInstanceArn)), aws.ToString(t.AvailabilityZone),
					volumeSummary(defs[arn]), time.Since(aws.ToTime(t.CreatedAt)).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include stopped tasks")
	return cmd
}

func volumeSummary(td *types.TaskDefinition) string {
	if td == nil || len(td.Volumes) == 0 {
		return "-"
	}
	var parts []string
	for _, v := range td.Volumes {
		kind := "?"
		switch {
		case v.Host != nil && aws.ToString(v.Host.SourcePath) != "":
			kind = "bind:" + aws.ToString(v.Host.SourcePath)
		case v.Host != nil:
			kind = "task"
		case v.DockerVolumeConfiguration != nil:
			kind = "docker-" + string(v.DockerVolumeConfiguration.Scope)
		case v.EfsVolumeConfiguration != nil:
			kind = "efs:" + aws.ToString(v.EfsVolumeConfiguration.FileSystemId)
		case v.FsxWindowsFileServerVolumeConfiguration != nil:
			kind = "fsx"
		case aws.ToBool(v.ConfiguredAtLaunch):
			kind = "ebs"
		}
		parts = append(parts, aws.ToString(v.Name)+"("+kind+")")
	}
	return strings.Join(parts, ",")
}

func stopCmd() *cobra.Command {
	f := &userFlags{}
	var reason string
	cmd := &cobra.Command{
		Use:   "stop TASK...",
		Short: "Stop tasks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := f.client()
			for _, id := range args {
				in := &ecs.StopTaskInput{Cluster: aws.String(f.cluster), Task: aws.String(id)}
				if reason != "" {
					in.Reason = aws.String(reason)
				}
				out, err := c.StopTask(cmd.Context(), in)
				if err != nil {
					return friendly(err)
				}
				if f.json() {
					printECS(cmd.OutOrStdout(), out.Task)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s stopping\n", shortID(aws.ToString(out.Task.TaskArn)))
				}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "reason shown as stoppedReason")
	return cmd
}

func logsCmd() *cobra.Command {
	f := &userFlags{}
	var follow bool
	var dockerHost, only string
	cmd := &cobra.Command{
		Use:   "logs TASK [CONTAINER]",
		Short: "Print a task's container logs, each line after its container's name (for tasks on this machine's Docker Engine)",
		Long: `Print the logs of every container of a task, each line after its
container's name, or of one container (--container NAME, or a second
argument) as it wrote them. -f follows them. Logs are kept by the Docker
Engine of the instance that ran the task.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c := f.client()
			d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(f.cluster), Tasks: []string{args[0]}})
			if err != nil {
				return friendly(err)
			}
			if len(d.Tasks) == 0 {
				return fmt.Errorf("task %s not found in cluster %s", args[0], f.cluster)
			}
			task := d.Tasks[0]
			if len(args) == 2 {
				only = args[1]
			}
			var names []string
			for _, ct := range task.Containers {
				if only == "" || aws.ToString(ct.Name) == only {
					names = append(names, aws.ToString(ct.Name))
				}
			}
			if len(names) == 0 {
				return fmt.Errorf("task %s has no container %q", shortID(aws.ToString(task.TaskArn)), only)
			}
			return dockerLogs(ctx, dockerHost, aws.ToString(task.TaskArn), names, follow, cmd)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the logs")
	cmd.Flags().StringVar(&only, "container", "", "only this container's log, as it wrote it")
	cmd.Flags().StringVar(&dockerHost, "docker-host", "", "Docker Engine address (default: $DOCKER_HOST or the local socket)")
	return cmd
}

// dockerLogs copies the logs of a task's containers: one as it is, several
// with each line after its container's name, together when following.
func dockerLogs(ctx context.Context, host, taskARN string, names []string, follow bool, cmd *cobra.Command) error {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	dc, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	errs := make(chan error, len(names))
	for _, name := range names {
		list, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", agent.LabelTaskARN+"="+taskARN), filters.Arg("label", agent.LabelContainerName+"="+name))})
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("no container %q of task %s on this machine's Docker Engine (logs are kept on the instance that ran the task)", name, shortID(taskARN))
		}
		rc, err := dc.ContainerLogs(ctx, list[0].ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
		if err != nil {
			return err
		}
		var stdout, stderr io.Writer = cmd.OutOrStdout(), cmd.ErrOrStderr()
		if len(names) > 1 {
			stdout = &prefixed{w: stdout, prefix: name + " | ", mu: &mu}
			stderr = &prefixed{w: stderr, prefix: name + " | ", mu: &mu}
		}
		copyLog := func() error {
			defer rc.Close()
			_, err := stdcopy.StdCopy(stdout, stderr, rc)
			for _, w := range []io.Writer{stdout, stderr} {
				if p, ok := w.(*prefixed); ok {
					p.flush()
				}
			}
			return err
		}
		if !follow {
			if err := copyLog(); err != nil {
				return err
			}
			continue
		}
		go func() { errs <- copyLog() }()
	}
	if follow {
		for range names {
			if err := <-errs; err != nil {
				return err
			}
		}
	}
	return nil
}

// prefixed writes each whole line after a prefix, a line at a time
// under mu, so the lines of several containers do not mix.
type prefixed struct {
	w      io.Writer
	prefix string
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixed) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := io.WriteString(p.w, p.prefix+string(p.buf[:i+1]))
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

func (p *prefixed) flush() {
	if len(p.buf) > 0 {
		p.mu.Lock()
		io.WriteString(p.w, p.prefix+string(p.buf)+"\n")
		p.mu.Unlock()
		p.buf = nil
	}
}

func instancesCmd() *cobra.Command {
	f := &userFlags{}
	cmd := &cobra.Command{
		Use:   "instances",
		Short: "List container instances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c := f.client()
			var arns []string
			p := ecs.NewListContainerInstancesPaginator(c, &ecs.ListContainerInstancesInput{Cluster: aws.String(f.cluster)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					return friendly(err)
				}
				arns = append(arns, page.ContainerInstanceArns...)
			}
			var insts []types.ContainerInstance
			for i := 0; i < len(arns); i += 100 {
				d, err := c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String(f.cluster), ContainerInstances: arns[i:min(i+100, len(arns))]})
				if err != nil {
					return friendly(err)
				}
				insts = append(insts, d.ContainerInstances...)
			}
			if f.json() {
				return printECS(cmd.OutOrStdout(), insts)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INSTANCE\tZONE\tSTATUS\tAGENT\tCPU FREE\tMEMORY FREE\tTASKS")
			for _, in := range insts {
				zone := ""
				for _, a := range in.Attributes {
					if aws.ToString(a.Name) == "ecs.availability-zone" {
						zone = aws.ToString(a.Value)
					}
				}
				agentState := "connected"
				if !in.AgentConnected {
					agentState = "disconnected"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d/%d MiB\t%d\n", shortID(aws.ToString(in.ContainerInstanceArn)), zone, aws.ToString(in.Status), agentState,
					res(in.RemainingResources, "CPU"), res(in.RegisteredResources, "CPU"), res(in.RemainingResources, "MEMORY"), res(in.RegisteredResources, "MEMORY"),
					in.RunningTasksCount+in.PendingTasksCount)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func res(rs []types.Resource, name string) int32 {
	for _, r := range rs {
		if aws.ToString(r.Name) == name {
			return r.IntegerValue
		}
	}
	return 0
}

// defaultSubnets are the subnets of the zones the cluster's instances
// are in, as a default VPC has a default subnet in each zone.
func defaultSubnets(ctx context.Context, c *ecs.Client, cluster string) ([]string, error) {
	l, err := c.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String(cluster)})
	if err != nil {
		return nil, friendly(err)
	}
	if len(l.ContainerInstanceArns) == 0 {
		return nil, fmt.Errorf("cluster %s has no container instances: no subnet to run an awsvpc task in (give --subnet subnet-ZONE)", cluster)
	}
	d, err := c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String(cluster), ContainerInstances: l.ContainerInstanceArns})
	if err != nil {
		return nil, friendly(err)
	}
	var out []string
	for _, ci := range d.ContainerInstances {
		for _, at := range ci.Attributes {
			if aws.ToString(at.Name) == "ecs.availability-zone" && !slices.Contains(out, "subnet-"+aws.ToString(at.Value)) {
				out = append(out, "subnet-"+aws.ToString(at.Value))
			}
		}
	}
	return out, nil
}

// taskAddress is an awsvpc task's private address, once it has one.
func taskAddress(t types.Task) string {
	for _, a := range t.Attachments {
		for _, d := range a.Details {
			if aws.ToString(a.Type) == "ElasticNetworkInterface" && aws.ToString(d.Name) == "privateIPv4Address" {
				return aws.ToString(d.Value)
			}
		}
	}
	return ""
}
