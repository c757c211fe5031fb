package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/server"
)

// testImage is a busybox image built from Debian's busybox-static: there
// is no registry to pull from.
const testImage = "berth-test/busybox:2"

var imageOnce sync.Once

func ensureTestImage(t testing.TB) {
	t.Helper()
	var err error
	imageOnce.Do(func() {
		if exec.Command("docker", "image", "inspect", testImage).Run() == nil {
			return
		}
		dir, e := os.MkdirTemp("", "berth-rootfs-")
		if e != nil {
			err = e
			return
		}
		defer os.RemoveAll(dir)
		for _, d := range []string{"bin", "tmp", "etc", "data"} {
			os.MkdirAll(filepath.Join(dir, d), 0o777)
		}
		os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
		os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644)
		if out, e := exec.Command("cp", "/bin/busybox", filepath.Join(dir, "bin/busybox")).CombinedOutput(); e != nil {
			err = fmt.Errorf("busybox-static is required (/bin/busybox): %v %s", e, out)
			return
		}
		for _, applet := range []string{"sh", "echo", "cat", "sleep", "test", "touch", "ls", "mkdir", "rm", "true", "false", "wc", "grep", "id", "stat", "head", "nc", "awk", "httpd", "wget", "ip", "hostname", "dd"} {
			os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
		cmd := exec.Command("sh", "-c", fmt.Sprintf("tar -C %s -c . | docker import --change 'ENV PATH=/bin' - %s", dir, testImage))
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("docker import: %v %s", e, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if exec.Command("docker", "image", "inspect", testImage).Run() != nil {
		t.Fatalf("test image %s missing (Docker is required)", testImage)
	}
}

type cluster struct {
	*env
	agents []*runningAgent
}

type runningAgent struct {
	dir    string
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
	arn    string
}

func newCluster(t *testing.T, mod ...func(*server.Config)) *cluster {
	ensureTestImage(t)
	e := newEnv(t, mod...)
	c := &cluster{env: e}
	return c
}

func (c *cluster) addAgent(zone, dataDir string, mod ...func(*agent.Config)) *runningAgent {
	c.t.Helper()
	if dataDir == "" {
		dataDir = c.t.TempDir()
	}
	var endpoint string
	if c.srv != nil {
		endpoint = c.srv.Endpoint()
	}
	cfg := agent.Config{Server: endpoint, Cluster: "default", Zone: zone, DataDir: dataDir,
		CPU: 4096, Memory: 4096, CleanupWait: time.Second, HeartbeatInterval: 500 * time.Millisecond,
		Log: testLogger(), MountBinary: buildBerth(c.t)}
	for _, m := range mod {
		m(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{dir: dataDir, a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-ra.done:
		c.t.Fatalf("agent: %v", err)
	case <-time.After(30 * time.Second):
		c.t.Fatal("agent not ready")
	}
	ra.arn = a.ContainerInstanceArn()
	c.agents = append(c.agents, ra)
	// Cleanups run last first: the agent stops before its containers go
	// (a running agent could start a task it was given in the meantime),
	// then Samba, then the mounts.
	c.t.Cleanup(func() { unmountAll(dataDir) })
	c.t.Cleanup(func() { stopSMB(dataDir, ra.arn) })
	c.t.Cleanup(func() { removeTaskContainers(ra.arn) })
	c.t.Cleanup(func() { c.stopAgent(ra) })
	return ra
}

func (c *cluster) stopAgent(ra *runningAgent) {
	ra.cancel()
	select {
	case <-ra.done:
	case <-time.After(10 * time.Second):
	}
}

func removeTaskContainers(instanceARN string) {
	id := instanceARN[strings.LastIndex(instanceARN, "/")+1:]
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+agent.LabelInstance+"="+id).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

func (c *cluster) register(in *ecs.RegisterTaskDefinitionInput) string {
	c.t.Helper()
	for i := range in.ContainerDefinitions {
		if in.ContainerDefinitions[i].Image == nil {
			in.ContainerDefinitions[i].Image = aws.String(testImage)
		}
		if in.ContainerDefinitions[i].Memory == nil && in.ContainerDefinitions[i].MemoryReservation == nil {
			in.ContainerDefinitions[i].Memory = aws.Int32(64)
		}
		if in.ContainerDefinitions[i].StopTimeout == nil {
			in.ContainerDefinitions[i].StopTimeout = aws.Int32(2)
		}
	}
	out, err := c.ecs.RegisterTaskDefinition(c.ctx, in)
	if err != nil {
		c.t.Fatalf("register: %v", err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

func (c *cluster) run(td string) types.Task {
	c.t.Helper()
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td)})
	if err != nil || len(out.Tasks) != 1 {
		c.t.Fatalf("run %s: %v %+v", td, err, out)
	}
	return out.Tasks[0]
}

// wait polls until the task reaches status (or STOPPED) and returns it.
func (c *cluster) wait(arn *string, status string) types.Task {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(arn)}})
		if err != nil || len(d.Tasks) != 1 {
			c.t.Fatalf("describe: %v %+v", err, d)
		}
		t := d.Tasks[0]
		if s := aws.ToString(t.LastStatus); s == status || s == "STOPPED" {
			if s != status {
				c.t.Fatalf("task stopped while waiting for %s: %s %s", status, aws.ToString(t.StoppedReason), describeContainers(t))
			}
			return t
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("task %s still %s, want %s", aws.ToString(arn), aws.ToString(t.LastStatus), status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describeContainers(t types.Task) string {
	var b strings.Builder
	for _, c := range t.Containers {
		fmt.Fprintf(&b, "[%s %s exit=%v %s] ", aws.ToString(c.Name), aws.ToString(c.LastStatus), aws.ToInt32(c.ExitCode), aws.ToString(c.Reason))
	}
	return b.String()
}

func exitCode(t types.Task, name string) int {
	for _, c := range t.Containers {
		if aws.ToString(c.Name) == name && c.ExitCode != nil {
			return int(*c.ExitCode)
		}
	}
	return -1
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func (c *cluster) stop(arn *string) types.Task {
	c.t.Helper()
	if _, err := c.ecs.StopTask(c.ctx, &ecs.StopTaskInput{Task: arn}); err != nil {
		c.t.Fatal(err)
	}
	return c.wait(arn, "STOPPED")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// agentDir is the data dir of an agent started by addAgent.
func (c *cluster) agentDir(ra *runningAgent) string { return ra.dir }

func exec_(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// testLogger discards agent logs unless BERTH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// unmountAll releases the block volumes an agent left mounted (a lost
// instance's, in tests that lose one).
func unmountAll(dataDir string) {
	efsMounts, _ := filepath.Glob(filepath.Join(dataDir, "efs", "*", "*"))
	smbMounts, _ := filepath.Glob(filepath.Join(dataDir, "smb", "*", "share"))
	efsMounts = append(efsMounts, smbMounts...)
	binds, _ := filepath.Glob(filepath.Join(dataDir, "hostpaths", "*", "*"))
	for _, m := range append(efsMounts, binds...) {
		exec.Command("umount", "-l", m).Run()
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "mounts"))
	for _, e := range entries {
		exec.Command("umount", filepath.Join(dataDir, "mounts", e.Name())).Run()
	}
	images, _ := filepath.Glob(filepath.Join(dataDir, "volumes", "*.img"))
	for _, img := range images {
		out, _ := exec.Command("losetup", "-j", img, "-O", "NAME", "-n").Output()
		for _, dev := range strings.Fields(string(out)) {
			exec.Command("losetup", "-d", dev).Run()
		}
	}
}

// stopSMB ends what an agent's SMB shares left running (they outlive the
// agent, as on a host whose agent restarts): smbd and, given the
// instance, the endpoints' network namespaces.
func stopSMB(dataDir, instanceARN string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("smbd")) && bytes.Contains(b, []byte(filepath.Join(dataDir, "smb")+"/")) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if instanceARN == "" {
		return // Samba only
	}
	id := instanceARN[strings.LastIndex(instanceARN, "/")+1:]
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.berth.smb-instance="+id).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}
