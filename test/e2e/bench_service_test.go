package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"

	"github.com/berth-project/berth/internal/server"
)

// BenchmarkServiceFailover measures, with default settings (agent lease
// 7 s renewed every second, no lost-instance grace), the time from kill -9 of the agent
// running a service's task to the service's replacement task RUNNING on
// another instance. Agents are `berth agent` processes. "stateless" is a
// plain service; "stateful-efs" is a stateful service whose slot keeps its
// data in a directory of an EFS volume (and finds it after the move).
func BenchmarkServiceFailover(b *testing.B) {
	b.Run("stateless", func(b *testing.B) { benchFailover(b, false) })
	b.Run("stateful-efs", func(b *testing.B) { benchFailover(b, true) })
}

func benchFailover(b *testing.B, withEFS bool) {
	ensureTestImage(b)
	bin := buildBerth(b)
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
		mounts, _ := filepath.Glob(dir + "/*/efs/*/*")
		for _, m := range mounts {
			exec.Command("umount", "-l", m).Run()
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
	tdIn := &ecs.RegisterTaskDefinitionInput{Family: aws.String("failover"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16), Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}}}}
	svcIn := &ecs.CreateServiceInput{ServiceName: aws.String("failover"), DesiredCount: aws.Int32(1)}
	var fsID *string
	if withEFS {
		ec := efsClient(s.Endpoint())
		fs, err := ec.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("failover")})
		if err != nil {
			b.Fatal(err)
		}
		fsID = fs.FileSystemId
		for _, z := range []string{"zone-a", "zone-b", "zone-c"} {
			if _, err := ec.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: fsID, SubnetId: aws.String("subnet-" + z)}); err != nil {
				b.Fatal(err)
			}
		}
		tdIn.Volumes = []types.Volume{{Name: aws.String("data"), EfsVolumeConfiguration: &types.EFSVolumeConfiguration{FileSystemId: fsID}}}
		tdIn.ContainerDefinitions[0].MountPoints = []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}
		tdIn.ContainerDefinitions[0].Command = []string{"sh", "-c", "echo start >> /data/starts; trap 'exit 0' TERM; sleep 3600 & wait"}
		svcIn.Tags = []types.Tag{{Key: aws.String("berth:stateful"), Value: aws.String("true")}}
	}
	td, err := c.RegisterTaskDefinition(ctx, tdIn)
	if err != nil {
		b.Fatal(err)
	}
	svcIn.TaskDefinition = td.TaskDefinition.TaskDefinitionArn
	if _, err := c.CreateService(ctx, svcIn); err != nil {
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
	if withEFS {
		// The slot's directory holds one start per task the slot has had.
		fsrv := &fsServer{t: b, bin: bin, endpoint: s.Endpoint()}
		m := fsrv.mountFS(aws.ToString(fsID))
		var data []byte
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if data, _ = os.ReadFile(m.path("failover-0/starts")); strings.Count(string(data), "start") == b.N+1 {
				break
			}
		}
		m.kill()
		if n := strings.Count(string(data), "start"); n != b.N+1 {
			b.Fatalf("slot directory has %d starts after %d failovers", n, b.N)
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(samples[len(samples)/2].Seconds(), "median-s")
	b.ReportMetric(samples[len(samples)-1].Seconds(), "max-s")
}
