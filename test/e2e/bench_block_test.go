package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
)

type fioResult struct {
	Jobs []struct {
		Read  struct{ IOPS, BW float64 } `json:"read"`
		Write struct{ IOPS, BW float64 } `json:"write"`
	} `json:"jobs"`
}

func fio(b *testing.B, dir, rw, bs string) (iops, mibps float64) {
	return fioJob(b, dir, "--rw="+rw, "--bs="+bs, "--size=256M", "--direct=1", "--ioengine=libaio", "--iodepth=16", "--runtime=4", "--time_based")
}

// BenchmarkBlockVolumeFio runs fio in a running task's block volume — on
// the mount the task's container binds, since no image with fio can be
// pulled here — and in a directory on the host disk that holds the
// volume's image, side by side.
func BenchmarkBlockVolumeFio(b *testing.B) {
	ensureTestImage(b)
	s, dir := benchServer(b, "berth-bench-block-")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ag, _ := agent.New(agent.Config{Server: s.Endpoint(), DataDir: dir + "/agent", CPU: 8192, Memory: 8192, CleanupWait: time.Minute, Log: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ag.Run(ctx)
	<-ag.Ready()
	defer removeTaskContainers(ag.ContainerInstanceArn())
	c := client(s.Endpoint(), "k", "s")
	reg, _ := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("fio"),
		Volumes: []types.Volume{{Name: aws.String("data"), ConfiguredAtLaunch: aws.Bool(true)}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16),
			Command: []string{"sleep", "3600"}, StopTimeout: aws.Int32(1),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}}}})
	out, err := c.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: reg.TaskDefinition.TaskDefinitionArn, VolumeConfigurations: managed(2, false)})
	if err != nil || len(out.Tasks) != 1 {
		b.Fatal(err, out)
	}
	vol := volumeIDOf(out.Tasks[0])
	for {
		d, _ := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(out.Tasks[0].TaskArn)}})
		if aws.ToString(d.Tasks[0].LastStatus) == "RUNNING" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.StopTask(ctx, &ecs.StopTaskInput{Task: out.Tasks[0].TaskArn})
	volDir := filepath.Join(dir, "agent", "mounts", vol)
	hostDir := filepath.Join(dir, "host")
	os.MkdirAll(hostDir, 0o755)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, j := range []struct{ rw, bs, unit string }{{"randread", "4k", "iops"}, {"randwrite", "4k", "iops"}, {"read", "1M", "MiB/s"}, {"write", "1M", "MiB/s"}} {
			vi, vb := fio(b, volDir, j.rw, j.bs)
			hi, hb := fio(b, hostDir, j.rw, j.bs)
			if j.unit == "iops" {
				b.ReportMetric(vi, j.rw+"-volume-iops")
				b.ReportMetric(hi, j.rw+"-host-iops")
				b.ReportMetric(100*vi/hi, j.rw+"-%")
			} else {
				b.ReportMetric(vb, j.rw+"-volume-MiB/s")
				b.ReportMetric(hb, j.rw+"-host-MiB/s")
				b.ReportMetric(100*vb/hb, j.rw+"-%")
			}
			fmt.Fprint(io.Discard, j)
		}
	}
}
