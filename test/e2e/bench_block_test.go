package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// fioSeconds is how long each fio job runs.
const fioSeconds = 4

func fio(b *testing.B, dir, rw, bs string) (iops, mibps float64) {
	return fioJob(b, dir, "--rw="+rw, "--bs="+bs, "--size=256M", "--direct=1", "--ioengine=libaio", "--iodepth=16", fmt.Sprintf("--runtime=%d", fioSeconds), "--time_based")
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
			var volCPU, hostCPU []float64
			vol, host := sideBySide(5,
				func() float64 { f, c := fioFigure(b, volDir, j.rw, j.bs); volCPU = append(volCPU, c); return f },
				func() float64 { f, c := fioFigure(b, hostDir, j.rw, j.bs); hostCPU = append(hostCPU, c); return f })
			unit := "iops"
			if j.bs == "1M" {
				unit = "MiB/s"
			}
			v, h := median(vol), median(host)
			b.Logf("%s %s: volume %.0f, host %.0f", j.rw, unit, vol, host)
			b.ReportMetric(v, j.rw+"-volume-"+unit)
			b.ReportMetric(h, j.rw+"-host-"+unit)
			b.ReportMetric(100*v/h, j.rw+"-%")
			if j.bs == "4k" {
				b.Logf("%s CPU µs per I/O: volume %.1f, host %.1f", j.rw, volCPU, hostCPU)
				b.ReportMetric(median(volCPU), j.rw+"-volume-cpu-us/io")
				b.ReportMetric(median(hostCPU), j.rw+"-host-cpu-us/io")
			}
		}
	}
}

// fioFigure is IOPS for 4 KiB jobs and MiB/s for the others, and the
// machine's busy CPU time (all CPUs: fio, the loop device's workers,
// interrupts) per I/O in microseconds.
func fioFigure(b *testing.B, dir, rw, bs string) (figure, cpuPerIO float64) {
	busy0 := cpuBusy(b)
	iops, mibps := fio(b, dir, rw, bs)
	cpuPerIO = float64((cpuBusy(b) - busy0).Microseconds()) / (iops * fioSeconds)
	if bs == "4k" {
		return iops, cpuPerIO
	}
	return mibps, cpuPerIO
}

// cpuBusy is the time all CPUs have spent busy since boot, from the
// first line of /proc/stat (in USER_HZ, 100 a second on Linux).
func cpuBusy(b *testing.B) time.Duration {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	var busy int64
	// user nice system idle iowait irq softirq steal
	for i, f := range strings.Fields(line)[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
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
