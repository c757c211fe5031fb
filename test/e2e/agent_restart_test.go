package e2e

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
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
	bin := buildBerth(t)
	dir := t.TempDir()
	proc := startAgentProcess(t, bin, c.srv.Endpoint(), dir)
	defer func() { proc.Process.Kill(); proc.Wait() }()
	var inst string
	for deadline := time.Now().Add(30 * time.Second); inst == ""; time.Sleep(200 * time.Millisecond) {
		out, err := c.ecs.ListContainerInstances(c.ctx, &ecs.ListContainerInstancesInput{})
		if err == nil && len(out.ContainerInstanceArns) == 1 {
			inst = out.ContainerInstanceArns[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("agent did not register")
		}
	}
	t.Cleanup(func() { removeTaskContainers(inst) })
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

	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	time.Sleep(6 * time.Second) // the short task's container exits while the agent is down
	proc = startAgentProcess(t, bin, c.srv.Endpoint(), dir)

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
