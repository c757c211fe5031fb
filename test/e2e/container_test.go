package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TestContainerSettings checks that the container fields reach Docker:
// environment, user, working directory, read-only root, tmpfs, ulimits,
// labels, entry point and command, host port mappings.
func TestContainerSettings(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	script := strings.Join([]string{
		`test "$GREETING" = hello`,
		`test "$(id -u)" = 65534`,
		`test "$(pwd)" = /tmp`,
		`! touch /root-is-read-only 2>/dev/null`,
		`touch /scratch/ok`,
		`test "$(ulimit -n)" = 1000`,
		`grep -q ' /scratch tmpfs ' /proc/mounts`,
		`sleep 3600`,
	}, " && ")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("settings"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), EntryPoint: []string{"sh", "-c"}, Command: []string{script},
		Environment: []types.KeyValuePair{{Name: aws.String("GREETING"), Value: aws.String("hello")}},
		User:        aws.String("65534"), WorkingDirectory: aws.String("/tmp"), ReadonlyRootFilesystem: aws.Bool(true),
		LinuxParameters: &types.LinuxParameters{Tmpfs: []types.Tmpfs{{ContainerPath: aws.String("/scratch"), Size: 8, MountOptions: []string{"mode=1777"}}}},
		Ulimits:         []types.Ulimit{{Name: types.UlimitNameNofile, SoftLimit: 1000, HardLimit: 1000}},
		DockerLabels:    map[string]string{"team": "storage"},
		PortMappings:    []types.PortMapping{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0)}},
	}}})
	task := c.run(td)
	running := c.wait(task.TaskArn, "RUNNING")
	time.Sleep(500 * time.Millisecond)
	d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(task.TaskArn)}})
	if st := aws.ToString(d.Tasks[0].LastStatus); st != "RUNNING" {
		t.Fatalf("a setting did not reach the container: %s %s", st, describeContainers(d.Tasks[0]))
	}
	nb := running.Containers[0].NetworkBindings
	if len(nb) == 0 || aws.ToInt32(nb[0].ContainerPort) != 8080 || aws.ToInt32(nb[0].HostPort) == 0 {
		t.Fatalf("network bindings: %+v", nb)
	}
	id := aws.ToString(running.Containers[0].RuntimeId)
	out, _ := exec.Command("docker", "inspect", "-f", `{{index .Config.Labels "team"}} {{index .Config.Labels "com.amazonaws.ecs.task-arn"}}`, id).Output()
	if got := strings.TrimSpace(string(out)); got != "storage "+aws.ToString(task.TaskArn) {
		t.Fatalf("labels: %q", got)
	}
	c.stop(task.TaskArn)
}

func TestHealthChecksAndHealthyDependency(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("health"), ContainerDefinitions: []types.ContainerDefinition{
		// A shell string and a bare command, without CMD-SHELL or CMD: ECS
		// takes both.
		{Name: aws.String("db"), Command: sh("sleep 1; touch /tmp/ready; sleep 3600"),
			HealthCheck: &types.HealthCheck{Command: []string{"test -e /tmp/ready"}, Interval: aws.Int32(5), Timeout: aws.Int32(2), Retries: aws.Int32(3)}},
		{Name: aws.String("side"), Command: sh("sleep 3600"),
			HealthCheck: &types.HealthCheck{Command: []string{"true"}, Interval: aws.Int32(5), Timeout: aws.Int32(2), Retries: aws.Int32(3)}},
		{Name: aws.String("app"), Command: sh("sleep 3600"),
			DependsOn: []types.ContainerDependency{{ContainerName: aws.String("db"), Condition: types.ContainerConditionHealthy},
				{ContainerName: aws.String("side"), Condition: types.ContainerConditionHealthy}}},
	}})
	task := c.run(td)
	running := c.wait(task.TaskArn, "RUNNING")
	// app starts only once db is healthy, so RUNNING implies a healthy db.
	deadline := time.Now().Add(30 * time.Second)
	for running.HealthStatus != types.HealthStatusHealthy {
		if time.Now().After(deadline) {
			t.Fatalf("task health %s, containers %s", running.HealthStatus, describeContainers(running))
		}
		time.Sleep(300 * time.Millisecond)
		d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(task.TaskArn)}})
		running = d.Tasks[0]
	}
	for _, ct := range running.Containers {
		if aws.ToString(ct.Name) == "db" && ct.HealthStatus != types.HealthStatusHealthy {
			t.Fatalf("db health %s", ct.HealthStatus)
		}
	}
	c.stop(task.TaskArn)

	// An unhealthy container shows as UNHEALTHY.
	bad := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("unhealthy"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("sleep 3600"),
			HealthCheck: &types.HealthCheck{Command: []string{"CMD-SHELL", "exit 1"}, Interval: aws.Int32(5), Timeout: aws.Int32(2), Retries: aws.Int32(1)}}}})
	bt := c.run(bad)
	c.wait(bt.TaskArn, "RUNNING")
	deadline = time.Now().Add(30 * time.Second)
	for {
		d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(bt.TaskArn)}})
		if d.Tasks[0].HealthStatus == types.HealthStatusUnhealthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never UNHEALTHY: %s", d.Tasks[0].HealthStatus)
		}
		time.Sleep(300 * time.Millisecond)
	}
	c.stop(bt.TaskArn)
}

func TestStartFailures(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("nopull"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Image: aws.String("berth-test/does-not-exist:1")}}})
	done := c.wait(c.run(td).TaskArn, "STOPPED")
	if r := aws.ToString(done.StoppedReason); !strings.HasPrefix(r, "CannotPullContainerError: ") || done.StopCode != types.TaskStopCodeTaskFailedToStart {
		t.Fatalf("pull failure: %s %q", done.StopCode, r)
	}
	// A shared volume that exists with other settings is refused, clearly.
	vol := "berth-test-mismatch"
	exec.Command("docker", "volume", "rm", "-f", vol).Run()
	if out, err := exec.Command("docker", "volume", "create", "--label", "owner=someone-else", vol).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", vol).Run() })
	mm := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("mismatch"),
		Volumes: []types.Volume{{Name: aws.String(vol), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{
			Scope: types.ScopeShared, Autoprovision: aws.Bool(true), Labels: map[string]string{"owner": "me"}}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("true"),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String(vol), ContainerPath: aws.String("/data")}}}}})
	done = c.wait(c.run(mm).TaskArn, "STOPPED")
	if r := aws.ToString(done.StoppedReason); !strings.Contains(r, vol) || !strings.Contains(r, "labels") {
		t.Fatalf("mismatch reason %q", r)
	}
}

func TestNetworkModes(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	for _, tc := range []struct {
		mode   types.NetworkMode
		script string
	}{
		{types.NetworkModeNone, `test "$(ls /sys/class/net)" = lo`},
		{types.NetworkModeHost, `test "$(ls /sys/class/net | wc -l)" -gt 1 && ls /sys/class/net | grep -q docker0`},
		{types.NetworkModeBridge, `test "$(ls /sys/class/net | wc -l)" -eq 2`},
	} {
		td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("net-" + string(tc.mode)), NetworkMode: tc.mode,
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh(tc.script)}}})
		done := c.wait(c.run(td).TaskArn, "STOPPED")
		if exitCode(done, "app") != 0 {
			t.Errorf("network mode %s: %s", tc.mode, describeContainers(done))
		}
	}
}
