package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
		for _, j := range []struct{ rw, bs string }{{"randread", "4k"}, {"randwrite", "4k"}, {"read", "1M"}, {"write", "1M"}} {
			vol, host := sideBySide(5,
				func() float64 { return fioFigure(b, volDir, j.rw, j.bs) },
				func() float64 { return fioFigure(b, hostDir, j.rw, j.bs) })
			unit := "iops"
			if j.bs == "1M" {
				unit = "MiB/s"
			}
			v, h := median(vol), median(host)
			b.Logf("%s %s: volume %.0f, host %.0f", j.rw, unit, vol, host)
			b.ReportMetric(v, j.rw+"-volume-"+unit)
			b.ReportMetric(h, j.rw+"-host-"+unit)
			b.ReportMetric(100*v/h, j.rw+"-%")
		}
	}
}

// fioFigure is IOPS for 4 KiB jobs and MiB/s for the others.
func fioFigure(b *testing.B, dir, rw, bs string) float64 {
	iops, mibps := fio(b, dir, rw, bs)
	if bs == "4k" {
		return iops
	}
	return mibps
}

// sideBySide runs a and b rounds times each, alternating which goes
// first, and returns their figures. Single short runs on a virtual disk
// vary by tens of per cent, so the benchmarks compare medians.
func sideBySide(rounds int, a, b func() float64) (as, bs []float64) {
	for r := 0; r < rounds; r++ {
		if r%2 == 0 {
			as = append(as, a())
			bs = append(bs, b())
		} else {
			bs = append(bs, b())
			as = append(as, a())
		}
	}
	return as, bs
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
