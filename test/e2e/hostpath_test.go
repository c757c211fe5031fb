package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
)

// TestAllowedHostPathRefusesSymlinks: with --allow-host-path, a task that
// plants a symlink in an allowed directory cannot lead a later task out
// of it; ordinary paths below it work and are created; an instance that
// refuses privileged containers is never given one.
func TestAllowedHostPathRefusesSymlinks(t *testing.T) {
	c := newCluster(t)
	allowed := filepath.Join(t.TempDir(), "allowed")
	if err := os.MkdirAll(allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	ag := c.addAgent("zone-a", "", func(cfg *agent.Config) {
		cfg.AllowedHostPaths = []string{allowed}
		cfg.DisablePrivileged = true
	})
	def := func(family, source, script string) string {
		return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String(family),
			Volumes: []types.Volume{{Name: aws.String("data"), Host: &types.HostVolumeProperties{SourcePath: aws.String(source)}}},
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh(script),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}}}})
	}
	// A task plants x/esc -> / in the allowed directory.
	plant := c.run(def("plant", filepath.Join(allowed, "x"), "ln -s / /data/esc && ln -s /etc /data/etc"))
	if st := c.wait(plant.TaskArn, "STOPPED"); exitCode(st, "app") != 0 {
		t.Fatalf("planting the symlink: %s %s", aws.ToString(st.StoppedReason), describeContainers(st))
	}
	if target, err := os.Readlink(filepath.Join(allowed, "x", "esc")); err != nil || target != "/" {
		t.Fatalf("the planted symlink: %q %v", target, err)
	}
	for _, p := range []string{"x/esc", "x/esc/etc", "x/etc"} {
		task := c.run(def("escape", filepath.Join(allowed, p), "cat /data/shadow /data/etc/shadow /data/hostname; echo escaped > /data/berth-escaped"))
		st := c.wait(task.TaskArn, "STOPPED")
		if exitCode(st, "app") != -1 || !strings.Contains(aws.ToString(st.StoppedReason), "symlink") {
			t.Fatalf("host path %s through a planted symlink: %s %s", p, aws.ToString(st.StoppedReason), describeContainers(st))
		}
	}
	if fileExists("/berth-escaped") || fileExists("/etc/berth-escaped") {
		os.Remove("/berth-escaped")
		os.Remove("/etc/berth-escaped")
		t.Fatal("a task wrote outside the allowed directory")
	}
	// An ordinary path below the allowed directory is made and bound.
	ok := c.run(def("ok", filepath.Join(allowed, "y", "z"), "echo hello > /data/f"))
	if st := c.wait(ok.TaskArn, "STOPPED"); exitCode(st, "app") != 0 {
		t.Fatalf("an allowed path: %s %s", aws.ToString(st.StoppedReason), describeContainers(st))
	}
	if b, err := os.ReadFile(filepath.Join(allowed, "y", "z", "f")); err != nil || string(b) != "hello\n" {
		t.Fatalf("the file the task wrote: %q %v", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(ag.dir, "hostpaths")); len(entries) != 0 {
		t.Fatalf("binds left after the tasks stopped: %v", entries)
	}
	// A path outside is refused as before.
	out := c.run(def("outside", "/etc", "cat /data/shadow"))
	if st := c.wait(out.TaskArn, "STOPPED"); !strings.Contains(aws.ToString(st.StoppedReason), "not allowed") {
		t.Fatalf("a path outside the allowed directory: %s", aws.ToString(st.StoppedReason))
	}
	// No privileged container on an instance that refuses them.
	priv := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("priv"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Privileged: aws.Bool(true), Command: sh("true")}}})
	run, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(priv)})
	if err != nil || len(run.Tasks) != 0 || len(run.Failures) != 1 || !strings.Contains(aws.ToString(run.Failures[0].Reason), "ATTRIBUTE") {
		t.Fatalf("a privileged task on an instance that refuses them: %v %+v", err, run)
	}
}
