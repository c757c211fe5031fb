package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func startUp(t *testing.T, bin, dir, addr string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"up", "--data-dir", dir, "--listen", addr, "--zone", "local-a"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Berth is up") {
			// The banner says plainly where data lives.
			for sc.Scan() && !strings.HasPrefix(sc.Text(), "  data:") {
			}
			if !strings.Contains(sc.Text(), "one copy on this disk") {
				cmd.Process.Kill()
				t.Fatalf("the banner does not say the data has one copy: %q", sc.Text())
			}
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd
		}
	}
	cmd.Process.Kill()
	t.Fatal("berth up did not come up")
	return nil
}

// TestUpRestartKeepsContainers runs `berth up`, starts a task, stops berth
// with Ctrl-C (SIGINT), checks the container kept running, and starts berth
// up again: the same task is RUNNING on the same container.
func TestUpRestartKeepsContainers(t *testing.T) {
	ensureTestImage(t)
	bin := buildBerth(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	up := startUp(t, bin, dir, addr)
	defer func() { up.Process.Kill(); up.Wait() }()
	c := &cluster{env: &env{t: t, ecs: client("http://"+addr, "k", "s"), ctx: t.Context()}}
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("up"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("sleep 3600")}}})
	task := c.run(td)
	c.wait(task.TaskArn, "RUNNING")
	t.Cleanup(func() { removeTaskContainers(aws.ToString(task.ContainerInstanceArn)) })
	before := taskContainers(t, aws.ToString(task.TaskArn))

	up.Process.Signal(os.Interrupt)
	if err := exited(up, 20*time.Second); err != nil {
		t.Fatalf("berth up on Ctrl-C: %v", err)
	}
	if out, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", before[0]).Output(); strings.TrimSpace(string(out)) != "true" {
		t.Fatal("the task's container stopped with berth")
	}
	up = startUp(t, bin, dir, addr)
	running := c.wait(task.TaskArn, "RUNNING")
	if aws.ToString(running.ContainerInstanceArn) != aws.ToString(task.ContainerInstanceArn) {
		t.Fatal("berth up came back as another instance")
	}
	time.Sleep(time.Second)
	if after := taskContainers(t, aws.ToString(task.TaskArn)); len(after) != 1 || after[0] != before[0] {
		t.Fatalf("containers %v -> %v", before, after)
	}
	// A second berth up on the same data dir is refused; berth down stops
	// the first, as Ctrl-C does.
	if out, err := exec.Command(bin, "up", "--data-dir", dir, "--listen", freeAddr(t)).CombinedOutput(); err == nil || !strings.Contains(string(out), "berth up already runs on "+dir) {
		t.Fatalf("a second berth up on one data dir: %v %s", err, out)
	}
	c.stop(task.TaskArn)
	t.Cleanup(func() { removeTaskContainers(aws.ToString(task.ContainerInstanceArn)) })
	out, err := exec.Command(bin, "down", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Stopped berth up (pid ") {
		t.Fatalf("berth down: %v %s", err, out)
	}
	if err := exited(up, 5*time.Second); err != nil {
		t.Fatalf("berth up after berth down: %v", err)
	}
	if out, err := exec.Command(bin, "down", "--data-dir", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "no berth up runs on") {
		t.Fatalf("berth down with nothing up: %v %s", err, out)
	}
}

// TestUpThreeServers: `berth up --servers 3` runs three servers whose etcd
// members form one cluster (three voters, peers over TLS), any of which
// answers; stopped with SIGINT and started again, the three come back
// together and the task run before is still RUNNING.
func TestUpThreeServers(t *testing.T) {
	ensureTestImage(t)
	bin := buildBerth(t)
	dir := t.TempDir()
	var base int
	for base = 20000 + os.Getpid()%20000; ; base += 3 {
		if portFree(base) && portFree(base+1) && portFree(base+2) {
			break
		}
	}
	endpoint := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+i) }
	up := startUp(t, bin, dir, fmt.Sprintf("127.0.0.1:%d", base), "--servers", "3")
	defer func() { up.Process.Kill(); up.Wait() }()
	check := func() {
		t.Helper()
		ms := members(t, bin, endpoint(2))
		if len(ms) != 3 {
			t.Fatalf("members: %+v", ms)
		}
		for _, m := range ms {
			if m.Learner || !m.Reachable || !strings.HasPrefix(m.PeerURLs[0], "https://127.0.0.1:") {
				t.Fatalf("member %+v", m)
			}
		}
	}
	check()
	c := &cluster{env: &env{t: t, ecs: client(endpoint(2), "k", "s"), ctx: t.Context()}}
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("up3"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("sleep 3600")}}})
	task := c.run(td)
	c.wait(task.TaskArn, "RUNNING")
	// File data written through one server is read through another: the
	// servers share one store.
	fs := (&fsServer{t: t, bin: bin, endpoint: endpoint(0)}).createFS("shared")
	w := (&fsServer{t: t, bin: bin, endpoint: endpoint(2)}).mountFS(fs)
	if err := os.WriteFile(w.path("f"), []byte("through the third"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := (&fsServer{t: t, bin: bin, endpoint: endpoint(1)}).mountFS(fs)
	if got, err := os.ReadFile(r.path("f")); err != nil || string(got) != "through the third" {
		t.Fatalf("read through the second server: %q %v", got, err)
	}
	w.kill()
	r.kill()
	up.Process.Signal(os.Interrupt)
	up.Wait()
	up = startUp(t, bin, dir, fmt.Sprintf("127.0.0.1:%d", base), "--servers", "3")
	check()
	c.ecs = client(endpoint(1), "k", "s")
	c.wait(task.TaskArn, "RUNNING")
	// A second berth up on the same data dir is refused; berth down stops
	// the first, as Ctrl-C does.
	if out, err := exec.Command(bin, "up", "--data-dir", dir, "--listen", freeAddr(t)).CombinedOutput(); err == nil || !strings.Contains(string(out), "berth up already runs on "+dir) {
		t.Fatalf("a second berth up on one data dir: %v %s", err, out)
	}
	c.stop(task.TaskArn)
	t.Cleanup(func() { removeTaskContainers(aws.ToString(task.ContainerInstanceArn)) })
	out, err := exec.Command(bin, "down", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Stopped berth up (pid ") {
		t.Fatalf("berth down: %v %s", err, out)
	}
	if err := exited(up, 5*time.Second); err != nil {
		t.Fatalf("berth up after berth down: %v", err)
	}
	if out, err := exec.Command(bin, "down", "--data-dir", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "no berth up runs on") {
		t.Fatalf("berth down with nothing up: %v %s", err, out)
	}
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// exited waits for a process to end, cleanly, within d.
func exited(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("still running after %s", d)
	}
}
