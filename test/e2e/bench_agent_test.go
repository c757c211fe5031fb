package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/server"
)

// medianMS is the median of samples in milliseconds.
func medianMS(s []time.Duration) float64 {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2].Microseconds()) / 1000
}

func reportMedian(b *testing.B, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	if len(samples) > 0 {
		b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "median-ms")
	}
}

// untilRunning runs a task and waits until DescribeTasks says RUNNING.
func untilRunning(b *testing.B, ctx context.Context, c *ecs.Client, def *string) (time.Duration, *string) {
	return untilRunningIn(b, ctx, c, &ecs.RunTaskInput{TaskDefinition: def})
}

// untilRunningIn is untilRunning for a RunTask input of its own.
func untilRunningIn(b *testing.B, ctx context.Context, c *ecs.Client, in *ecs.RunTaskInput) (time.Duration, *string) {
	start := time.Now()
	out, err := c.RunTask(ctx, in)
	if err != nil || len(out.Tasks) != 1 {
		b.Fatal(err, out)
	}
	arn := out.Tasks[0].TaskArn
	for {
		d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: []string{*arn}})
		if err != nil {
			b.Fatal(err)
		}
		if st := aws.ToString(d.Tasks[0].LastStatus); st == "RUNNING" {
			return time.Since(start), arn
		} else if st == "STOPPED" {
			b.Fatal(aws.ToString(d.Tasks[0].StoppedReason))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkTaskToRunning measures RunTask until DescribeTasks says RUNNING,
// for a one-container task of a local image, on a server with a local agent.
// Run it beside BenchmarkDockerRunDetached with -benchtime 20x.
func BenchmarkTaskToRunning(b *testing.B) {
	ensureTestImage(b)
	dir, _ := os.MkdirTemp("", "berth-bench-agent-")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.Start(context.Background(), server.Config{DataDir: dir, Listen: "127.0.0.1:0", Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	alog := quiet
	if os.Getenv("BERTH_BENCH_TRACE") != "" {
		alog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ag, err := agent.New(agent.Config{Server: s.Endpoint(), DataDir: dir + "/agent", CPU: 8192, Memory: 8192, CleanupWait: time.Hour, Log: alog})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ag.Run(ctx)
	<-ag.Ready()
	defer removeTaskContainers(ag.ContainerInstanceArn())
	c := client(s.Endpoint(), "k", "s")
	reg, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("bench"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16),
			Command: []string{"sleep", "3600"}, StopTimeout: aws.Int32(1)}}})
	if err != nil {
		b.Fatal(err)
	}
	var samples []time.Duration
	var arns []*string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		_, arn := untilRunning(b, ctx, c, reg.TaskDefinition.TaskDefinitionArn)
		samples = append(samples, time.Since(start))
		if alog != quiet {
			fmt.Fprintln(os.Stderr, "total", time.Since(start))
		}
		arns = append(arns, arn)
	}
	b.StopTimer()
	reportMedian(b, samples)
	// Like the baseline's containers, the tasks run until the end.
	for _, arn := range arns {
		c.StopTask(ctx, &ecs.StopTaskInput{Task: arn})
	}
}

// BenchmarkDockerRunDetached is the baseline: `docker run -d` of the same
// local image and command, until the command returns (container started).
func BenchmarkDockerRunDetached(b *testing.B) {
	ensureTestImage(b)
	var samples []time.Duration
	var ids []string
	defer func() {
		if len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		out, err := exec.Command("docker", "run", "-d", "--memory", "16m", "--label", "berth-bench=1", testImage, "sleep", "3600").Output()
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		ids = append(ids, strings.TrimSpace(string(out)))
	}
	b.StopTimer()
	reportMedian(b, samples)
}

// BenchmarkUpReady measures how long `berth up` takes to accept API calls
// (embedded etcd, server, local agent registered), from a fresh data dir.
func BenchmarkUpReady(b *testing.B) {
	ensureTestImage(b)
	bin := buildBerth(b)
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		dir, _ := os.MkdirTemp("", "berth-up-")
		addr := freeAddr(b)
		start := time.Now()
		cmd := exec.Command(bin, "up", "--data-dir", dir, "--listen", addr)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, _ := stdout.Read(buf) // "Berth is up." is printed once the agent is registered
		if !strings.Contains(string(buf[:n]), "Berth is up") {
			b.Fatalf("unexpected output %q", buf[:n])
		}
		c := client("http://"+addr, "k", "s")
		if _, err := c.ListClusters(context.Background(), &ecs.ListClustersInput{}); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	reportMedian(b, samples)
	fmt.Fprint(io.Discard)
}

// BenchmarkCLIRunToRunning measures `berth run FILE` (it returns once the
// task is RUNNING) against `docker run -d` of the same image and command,
// alternating in one run, both as processes started from here:
//
//	go test -run '^$' -bench CLIRunToRunning -benchtime 20x ./test/e2e/
func BenchmarkCLIRunToRunning(b *testing.B) {
	bin := buildBerth(b)
	dir, s, _ := benchAgent(b)
	def := dir + "/sleep.json"
	os.WriteFile(def, []byte(`{"family":"cli-bench","containerDefinitions":[{"name":"app","image":"`+testImage+`","memory":16,"stopTimeout":1,"command":["sleep","3600"]}]}`), 0o644)
	berthRun := func() time.Duration {
		start := time.Now()
		cmd := exec.Command(bin, "run", "--endpoint", s.Endpoint(), def)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "RUNNING") {
			b.Fatalf("berth run: %v %s", err, out)
		}
		return time.Since(start)
	}
	var ids []string
	defer func() {
		if len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	}()
	dockerRun := func() time.Duration {
		start := time.Now()
		out, err := exec.Command("docker", "run", "-d", "--memory", "16m", "--label", "berth-bench=1", testImage, "sleep", "3600").Output()
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(string(out)))
		return time.Since(start)
	}
	berthRun() // registers the definition
	var bs, ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bs = append(bs, berthRun())
		ds = append(ds, dockerRun())
	}
	b.StopTimer()
	mb, md := medianMS(bs), medianMS(ds)
	b.ReportMetric(mb, "berth-run-median-ms")
	b.ReportMetric(md, "docker-run-median-ms")
	b.ReportMetric(mb/md, "berth/docker")
}

// benchAgent starts a server and a local agent with room for many tasks,
// for a benchmark; both end, and the tasks' containers go, with it.
func benchAgent(b *testing.B) (dir string, s *server.Server, ctx context.Context) {
	ensureTestImage(b)
	dir, _ = os.MkdirTemp("", "berth-bench-")
	b.Cleanup(func() { os.RemoveAll(dir) })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.Start(context.Background(), server.Config{DataDir: dir, Listen: "127.0.0.1:0", Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ag, err := agent.New(agent.Config{Server: s.Endpoint(), DataDir: dir + "/agent", CPU: 65536, Memory: 65536, CleanupWait: time.Hour, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go ag.Run(ctx)
	<-ag.Ready()
	b.Cleanup(func() { removeTaskContainers(ag.ContainerInstanceArn()) })
	return dir, s, ctx
}
