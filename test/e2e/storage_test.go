package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/server"
)

func TestWritableLayerIsEphemeral(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	writer := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("layer-w"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("echo hello > /marker && sleep 3600")}}})
	t1 := c.run(writer)
	c.wait(t1.TaskArn, "RUNNING")
	stopped := c.stop(t1.TaskArn)
	if stopped.StopCode != types.TaskStopCodeUserInitiated || aws.ToString(stopped.StoppedReason) != "Task stopped by user" {
		t.Fatalf("stop code %s reason %q", stopped.StopCode, aws.ToString(stopped.StoppedReason))
	}
	reader := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("layer-r"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("test -e /marker && exit 3; exit 0")}}})
	t2 := c.wait(c.run(reader).TaskArn, "STOPPED")
	if code := exitCode(t2, "app"); code != 0 {
		t.Fatalf("replacement task saw the last container's writable layer (exit %d)", code)
	}
	if t2.StopCode != types.TaskStopCodeEssentialContainerExited || aws.ToString(t2.StoppedReason) != "Essential container in task exited" {
		t.Fatalf("essential exit: %s %q", t2.StopCode, aws.ToString(t2.StoppedReason))
	}
}

func TestHostSourcePathOutlivesTask(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	dir := filepath.Join(t.TempDir(), "created", "by", "agent")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("bind"),
		Volumes: []types.Volume{{Name: aws.String("data"), Host: &types.HostVolumeProperties{SourcePath: aws.String(dir)}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("echo persisted > /data/file"),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}}}})
	done := c.wait(c.run(td).TaskArn, "STOPPED")
	if exitCode(done, "app") != 0 {
		t.Fatalf("writer failed: %s", describeContainers(done))
	}
	b, err := os.ReadFile(filepath.Join(dir, "file"))
	if err != nil || string(b) != "persisted\n" {
		t.Fatalf("host file after the task: %q %v", b, err)
	}
}

func TestTaskScopedVolumeSharedThenRemoved(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("pair"),
		Volumes: []types.Volume{{Name: aws.String("shared"), Host: &types.HostVolumeProperties{}}},
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("writer"), Essential: aws.Bool(false), Command: sh("echo from-writer > /shared/msg"),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("shared"), ContainerPath: aws.String("/shared")}}},
			{Name: aws.String("reader"), Command: sh("grep -q from-writer /shared/msg"),
				DependsOn:   []types.ContainerDependency{{ContainerName: aws.String("writer"), Condition: types.ContainerConditionSuccess}},
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("shared"), ContainerPath: aws.String("/shared"), ReadOnly: aws.Bool(true)}}},
		}})
	task := c.run(td)
	done := c.wait(task.TaskArn, "STOPPED")
	if exitCode(done, "writer") != 0 || exitCode(done, "reader") != 0 {
		t.Fatalf("containers did not share the volume: %s", describeContainers(done))
	}
	id := aws.ToString(task.TaskArn)[strings.LastIndex(aws.ToString(task.TaskArn), "/")+1:]
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("docker", "volume", "ls", "-q", "--filter", "name="+id[:20]).Output()
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task volume not removed at cleanup: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSharedVolumePersistsAndPinsPlacement(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.LeaseTTL = 2 * time.Second })
	a := c.addAgent("local-a", "")
	b := c.addAgent("local-b", "")
	vol := "berth-test-shared-" + strings.ToLower(t.Name()[len(t.Name())-8:])
	exec.Command("docker", "volume", "rm", "-f", vol).Run()
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", vol).Run() })
	mk := func(family, script string) string {
		return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String(family),
			Volumes: []types.Volume{{Name: aws.String(vol), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{Scope: types.ScopeShared, Autoprovision: aws.Bool(true)}}},
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh(script),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String(vol), ContainerPath: aws.String("/data")}}}}})
	}
	w := c.wait(c.run(mk("db-write", "echo 42 > /data/answer")).TaskArn, "STOPPED")
	if exitCode(w, "app") != 0 {
		t.Fatalf("writer: %s", describeContainers(w))
	}
	home := aws.ToString(w.ContainerInstanceArn)
	reader := mk("db-read", "grep -q 42 /data/answer")
	for i := 0; i < 3; i++ {
		r := c.wait(c.run(reader).TaskArn, "STOPPED")
		if aws.ToString(r.ContainerInstanceArn) != home || exitCode(r, "app") != 0 {
			t.Fatalf("reader %d on %s (data on %s): %s", i, aws.ToString(r.ContainerInstanceArn), home, describeContainers(r))
		}
	}
	// With the data's agent gone, RunTask says where the data is.
	holder, other := a, b
	if home != a.arn {
		holder, other = b, a
	}
	c.stopAgent(holder)
	if other.arn == home {
		t.Fatal("both agents claim the data")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Tasks) > 0 {
			if aws.ToString(out.Tasks[0].ContainerInstanceArn) != home {
				t.Fatalf("placed away from its data on %s", aws.ToString(out.Tasks[0].ContainerInstanceArn))
			}
			c.ecs.StopTask(c.ctx, &ecs.StopTaskInput{Task: out.Tasks[0].TaskArn})
		} else {
			names := false
			for _, f := range out.Failures {
				if aws.ToString(f.Arn) == home && aws.ToString(f.Reason) == "AGENT" {
					names = true
				}
			}
			if !names {
				t.Fatalf("failures do not name the data's instance: %+v", out.Failures)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stopped agent never lost its lease")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestMissingSharedVolumeWithoutAutoprovision(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("noauto"),
		Volumes: []types.Volume{{Name: aws.String("berth-test-absent-volume"), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{Scope: types.ScopeShared, Autoprovision: aws.Bool(false)}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("true"),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("berth-test-absent-volume"), ContainerPath: aws.String("/data")}}}}})
	done := c.wait(c.run(td).TaskArn, "STOPPED")
	if r := aws.ToString(done.StoppedReason); !strings.Contains(r, "berth-test-absent-volume") || !strings.HasPrefix(r, "CannotCreateVolumeError") || done.StopCode != types.TaskStopCodeTaskFailedToStart {
		t.Fatalf("stop: %s %q", done.StopCode, r)
	}
}

func TestReadOnlyMountAndVolumesFrom(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	dir := t.TempDir()
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("ro"),
		Volumes: []types.Volume{{Name: aws.String("data"), Host: &types.HostVolumeProperties{SourcePath: aws.String(dir)}}},
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("owner"), Essential: aws.Bool(false), Command: sh("sleep 3600"),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}},
			{Name: aws.String("ro"), Essential: aws.Bool(false), Command: sh("touch /data/x"),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data"), ReadOnly: aws.Bool(true)}}},
			{Name: aws.String("from"), Command: sh("sleep 1; touch /data/via-volumes-from"),
				DependsOn:   []types.ContainerDependency{{ContainerName: aws.String("owner"), Condition: types.ContainerConditionStart}},
				VolumesFrom: []types.VolumeFrom{{SourceContainer: aws.String("owner")}}},
		}})
	done := c.wait(c.run(td).TaskArn, "STOPPED")
	if exitCode(done, "ro") == 0 {
		t.Fatalf("write through a readOnly mount succeeded: %s", describeContainers(done))
	}
	if exitCode(done, "from") != 0 {
		t.Fatalf("volumesFrom: %s", describeContainers(done))
	}
	if _, err := os.Stat(filepath.Join(dir, "via-volumes-from")); err != nil {
		t.Fatalf("volumesFrom did not mount the owner's volume: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("file written through a readOnly mount")
	}
}
