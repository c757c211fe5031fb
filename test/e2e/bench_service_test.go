package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/server"
)

// BenchmarkServiceFailover measures, with default settings (agent lease
// 10 s, lost-instance grace 15 s), the time from kill -9 of the agent
// running a service's task to the service's replacement task RUNNING on
// another instance. Agents are `berth agent` processes.
func BenchmarkServiceFailover(b *testing.B) {
	ensureTestImage(b)
	bin := buildBerth(&testing.T{})
	dir, _ := os.MkdirTemp("", "berth-bench-failover-")
	defer os.RemoveAll(dir)
	s, err := server.Start(context.Background(), server.Config{DataDir: dir + "/server", Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := client(s.Endpoint(), "k", "s")
	ctx := context.Background()
	start := func(name, zone string) *exec.Cmd {
		cmd := exec.Command(bin, "agent", "--server", s.Endpoint(), "--zone", zone, "--data-dir", dir+"/"+name, "--cpu", "4096", "--memory", "4096")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		return cmd
	}
	agents := map[string]*exec.Cmd{}
	for i, z := range []string{"zone-a", "zone-b", "zone-c"} {
		agents[z] = start("agent"+string(rune('0'+i)), z)
	}
	defer func() {
		for _, a := range agents {
			a.Process.Kill()
			a.Wait()
		}
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.amazonaws.ecs.task-definition-family=failover").Output()
		if len(out) > 0 {
			exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=com.amazonaws.ecs.task-definition-family=failover)").Run()
		}
	}()
	for {
		l, _ := c.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{})
		if l != nil && len(l.ContainerInstanceArns) == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	td, _ := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("failover"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16), Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}}}})
	if _, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("failover"), TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(1)}); err != nil {
		b.Fatal(err)
	}
	running := func() (types.Task, bool) {
		l, _ := c.ListTasks(ctx, &ecs.ListTasksInput{ServiceName: aws.String("failover")})
		if l == nil || len(l.TaskArns) == 0 {
			return types.Task{}, false
		}
		d, _ := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: l.TaskArns})
		for _, t := range d.Tasks {
			if aws.ToString(t.LastStatus) == "RUNNING" {
				return t, true
			}
		}
		return types.Task{}, false
	}
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var victim types.Task
		for ok := false; !ok; time.Sleep(50 * time.Millisecond) {
			victim, ok = running()
		}
		zone := aws.ToString(victim.AvailabilityZone)
		killed := time.Now()
		agents[zone].Process.Signal(syscall.SIGKILL)
		agents[zone].Wait()
		for {
			t, ok := running()
			if ok && aws.ToString(t.TaskArn) != aws.ToString(victim.TaskArn) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		samples = append(samples, time.Since(killed))
		b.StopTimer()
		agents[zone] = start("again-"+zone+string(rune('0'+i)), zone) // a fresh instance in that zone
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(samples[len(samples)/2].Seconds(), "median-s")
	b.ReportMetric(samples[len(samples)-1].Seconds(), "max-s")
}
