package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"

	"github.com/berth-project/berth/internal/agent"
)

// BenchmarkEFSTaskStart: RunTask until RUNNING for a task with one EFS
// volume and for the same task with a bind mount instead, alternating in
// one run on one server and agent. Reports both medians and their ratio.
func BenchmarkEFSTaskStart(b *testing.B) {
	ensureTestImage(b)
	s, dir := benchServer(b, "berth-bench-efs-")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ag, err := agent.New(agent.Config{Server: s.Endpoint(), Zone: "us-east-1a", DataDir: dir + "/agent", CPU: 8192, Memory: 8192,
		CleanupWait: time.Hour, Log: quiet, MountBinary: buildBerth(b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ag.Run(ctx)
	<-ag.Ready()
	defer unmountAll(dir + "/agent")
	defer removeTaskContainers(ag.ContainerInstanceArn())
	ec := efsClient(s.Endpoint())
	fs, err := ec.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("bench")})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ec.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: fs.FileSystemId, SubnetId: aws.String("subnet-us-east-1a")}); err != nil {
		b.Fatal(err)
	}
	c := client(s.Endpoint(), "k", "s")
	reg := func(family string, v types.Volume) *string {
		out, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String(family), Volumes: []types.Volume{v},
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16),
				Command: []string{"sleep", "3600"}, StopTimeout: aws.Int32(1),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}}}})
		if err != nil {
			b.Fatal(err)
		}
		return out.TaskDefinition.TaskDefinitionArn
	}
	efsDef := reg("bench-efs", types.Volume{Name: aws.String("data"), EfsVolumeConfiguration: &types.EFSVolumeConfiguration{FileSystemId: fs.FileSystemId}})
	bindDef := reg("bench-bind", types.Volume{Name: aws.String("data"), Host: &types.HostVolumeProperties{SourcePath: aws.String(dir + "/bind")}})
	var efsT, bindT []time.Duration
	var arns []*string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, arn := untilRunning(b, ctx, c, efsDef)
		efsT, arns = append(efsT, d), append(arns, arn)
		d, arn = untilRunning(b, ctx, c, bindDef)
		bindT, arns = append(bindT, d), append(arns, arn)
	}
	b.StopTimer()
	e, h := medianMS(efsT), medianMS(bindT)
	b.ReportMetric(e, "efs-median-ms")
	b.ReportMetric(h, "bind-median-ms")
	b.ReportMetric(e/h, "efs/bind")
	for _, arn := range arns {
		c.StopTask(ctx, &ecs.StopTaskInput{Task: arn})
	}
	time.Sleep(3 * time.Second) // let the agent unmount
}
