package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/server"
)

func startAgentProcess(t *testing.T, bin, endpoint, dir string) *exec.Cmd {
	cmd := exec.Command(bin, "agent", "--server", endpoint, "--zone", "local-a", "--data-dir", dir,
		"--cpu", "4096", "--memory", "4096", "--task-cleanup-wait", "1m", "--heartbeat-interval", "500ms")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// agentProcess is `berth agent` in a process of its own, so that a test
// can kill it with SIGKILL and start it again on the same data directory.
type agentProcess struct {
	t             *testing.T
	bin, endpoint string
	dir           string // the agent's data directory
	inst          string // its container instance ARN
	cmd           *exec.Cmd
}

// runAgentProcess starts the agent, waits for it to register as the
// cluster's one instance, and stops it and its tasks' containers at the
// end of the test.
func runAgentProcess(t *testing.T, c *cluster) *agentProcess {
	p := &agentProcess{t: t, bin: buildBerth(t), endpoint: c.srv.Endpoint(), dir: t.TempDir()}
	p.restart()
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	p.inst = waitForOneInstance(t, c)
	t.Cleanup(func() { removeTaskContainers(p.inst) })
	return p
}

func (p *agentProcess) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *agentProcess) restart() { p.cmd = startAgentProcess(p.t, p.bin, p.endpoint, p.dir) }

func taskContainers(t *testing.T, taskARN string) []string {
	out, err := exec.Command("docker", "ps", "-aq", "--no-trunc", "--filter", "label="+agent.LabelTaskARN+"="+taskARN).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// TestAgentKill9Readopts kills the agent process with SIGKILL while tasks
// run, lets one task's container exit while the agent is down, restarts the
// agent, and checks that it is the same instance, the running task keeps its
// container (no restart, no duplicate), and the task that ended meanwhile is
// reported with its real exit code.
func TestAgentKill9Readopts(t *testing.T) {
	ensureTestImage(t)
	c := &cluster{env: newEnv(t, func(cfg *server.Config) { cfg.LeaseTTL = 3 * time.Second })}
	proc := runAgentProcess(t, c)
	inst := proc.inst
	long := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("long"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("sleep 3600")}}})
	short := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("short"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("sleep 4; exit 7")}}})
	a := c.run(long)
	b := c.run(short)
	c.wait(a.TaskArn, "RUNNING")
	c.wait(b.TaskArn, "RUNNING")
	before := taskContainers(t, aws.ToString(a.TaskArn))
	if len(before) != 1 {
		t.Fatalf("containers of the long task: %v", before)
	}

	proc.kill9()
	time.Sleep(6 * time.Second) // the short task's container exits while the agent is down
	proc.restart()

	done := c.wait(b.TaskArn, "STOPPED")
	if exitCode(done, "app") != 7 || done.StopCode != types.TaskStopCodeEssentialContainerExited {
		t.Fatalf("task that ended while the agent was down: %s %s", done.StopCode, describeContainers(done))
	}
	list, err := c.ecs.ListContainerInstances(c.ctx, &ecs.ListContainerInstancesInput{})
	if err != nil || len(list.ContainerInstanceArns) != 1 || list.ContainerInstanceArns[0] != inst {
		t.Fatalf("instance after restart: %v %v (was %s)", err, list, inst)
	}
	running := c.wait(a.TaskArn, "RUNNING")
	if aws.ToString(running.ContainerInstanceArn) != inst {
		t.Fatal("task moved")
	}
	time.Sleep(2 * time.Second) // let the agent settle: it must not start a second container
	after := taskContainers(t, aws.ToString(a.TaskArn))
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("running task's container changed across the agent restart: %v -> %v", before, after)
	}
	out, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", after[0]).Output()
	if strings.TrimSpace(string(out)) != "true 0" {
		t.Fatalf("container state after re-adoption: %s", out)
	}
	c.stop(a.TaskArn)
}

// TestAgentKill9DuringRestoreStartsOver kills the agent with SIGKILL while
// it restores a volume from a snapshot. The half-restored data must never
// become the volume: the restarted agent starts the restore over, and a
// task on the volume reads the snapshot's data, checksum for checksum.
func TestAgentKill9DuringRestoreStartsOver(t *testing.T) {
	c := newCluster(t)
	proc := runAgentProcess(t, c)

	writer := ebsDefinition(c, "restore-w", `head -c 536870912 /dev/urandom > /data/big && md5sum /data/big | cut -c1-32 > /data/big.md5`)
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(writer), VolumeConfigurations: managed(1, true)})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	if done := c.wait(out.Tasks[0].TaskArn, "STOPPED"); exitCode(done, "app") != 0 {
		t.Fatalf("writer: %s", describeContainers(done))
	}
	snap := c.snapshot(volumeIDOf(out.Tasks[0]))

	var created agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &agentapi.CreateVolumeRequest{Zone: "local-a", SnapshotID: snap.SnapshotID}, &created); err != nil {
		t.Fatal(err)
	}
	vol := created.Volumes[0].VolumeID
	image := filepath.Join(proc.dir, "volumes", vol+".img")
	allocated := func(p string) int64 {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil {
			return 0
		}
		return st.Blocks * 512
	}
	// Kill the agent once a tenth of the data is on disk.
	for deadline := time.Now().Add(60 * time.Second); allocated(image)+allocated(image+".partial") < 50<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) || c.volume(vol).State == "available" {
			t.Fatalf("the restore was not caught in progress (volume %s)", c.volume(vol).State)
		}
	}
	proc.kill9()
	if _, err := os.Stat(image); err == nil {
		t.Fatal("a half-restored image is in the volume's place")
	}
	proc.restart()
	for deadline := time.Now().Add(60 * time.Second); c.volume(vol).State != "available"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restore did not finish after the agent restarted: %+v", c.volume(vol))
		}
	}
	if _, err := os.Stat(image + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("partial restore left behind: %v", err)
	}
	reader := ebsDefinition(c, "restore-r", `test "$(md5sum /data/big | cut -c1-32)" = "$(cat /data/big.md5)"`)
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader),
		Tags: []types.Tag{{Key: aws.String(launch.AttachVolumeTagPrefix + "data"), Value: aws.String(vol)}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	if done := c.wait(out.Tasks[0].TaskArn, "STOPPED"); exitCode(done, "app") != 0 {
		t.Fatalf("the restored volume's data differs from the snapshot's: %s", describeContainers(done))
	}
}

// waitForOneInstance waits for the cluster's one container instance.
func waitForOneInstance(t *testing.T, c *cluster) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := c.ecs.ListContainerInstances(c.ctx, &ecs.ListContainerInstancesInput{})
		if err == nil && len(out.ContainerInstanceArns) == 1 {
			return out.ContainerInstanceArns[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("agent did not register")
		}
	}
}

// An agent told no zone is in us-east-1a (so subnet-us-east-1a passes the
// AWS CLI's checks); one registered by an earlier version without a zone
// of its own keeps local-a, the default it registered with.
func TestDefaultZone(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	zoneOf := func(arn string) string {
		d, err := c.ecs.DescribeContainerInstances(c.ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: []string{arn}})
		if err != nil || len(d.ContainerInstances) != 1 {
			t.Fatalf("describe %s: %v", arn, err)
		}
		for _, at := range d.ContainerInstances[0].Attributes {
			if aws.ToString(at.Name) == "ecs.availability-zone" {
				return aws.ToString(at.Value)
			}
		}
		return ""
	}
	a := c.addAgent("", dir)
	if z := zoneOf(a.arn); z != "us-east-1a" {
		t.Fatalf("default zone %q", z)
	}
	c.stopAgent(a)
	// As an earlier version left it: no zone saved.
	os.WriteFile(filepath.Join(dir, "agent.json"), []byte(`{"containerInstanceArn":"`+a.arn+`","cluster":"default"}`), 0o600)
	b := c.addAgent("", dir)
	if b.arn != a.arn || zoneOf(b.arn) != "local-a" {
		t.Fatalf("an earlier version's instance: %s in %q", b.arn, zoneOf(b.arn))
	}
}
