package e2e

import (
	"fmt"
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

	"github.com/berth-project/berth/internal/server"
)

// secondHost makes a host of its own: a network namespace linked to
// this one by a veth pair (one /24, this side .1, the other .2) with a
// Docker Engine of its own inside, holding the test image. It returns
// the namespace, the two addresses and the engine's socket.
func secondHost(t *testing.T) (ns, here, there, sock string) {
	t.Helper()
	pid := os.Getpid()
	ns = fmt.Sprintf("berth-host-%d", pid%100000)
	sub := fmt.Sprintf("192.168.%d", 100+pid%150)
	veth := fmt.Sprintf("bh%d", pid%100000)
	linkedNamespace(t, ns, veth, sub)

	dir, err := os.MkdirTemp("", "berth-d2-")
	if err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "docker.sock")
	os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)
	// nsenter, not ip netns exec: that mounts a sysfs of the namespace's
	// own over /sys, hiding the cgroup file systems an engine needs.
	d := exec.Command("nsenter", "--net=/var/run/netns/"+ns, "dockerd", "--config-file", filepath.Join(dir, "daemon.json"), "--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(dir, "docker.pid"), "--storage-driver", "vfs")
	logf, _ := os.Create(filepath.Join(dir, "dockerd.log"))
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatalf("a second Docker Engine (dockerd) is needed: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		if ids, _ := exec.Command("docker", "-H", "unix://"+sock, "ps", "-aq").Output(); len(ids) > 0 {
			exec.Command("docker", append([]string{"-H", "unix://" + sock, "rm", "-f"}, strings.Fields(string(ids))...)...).Run()
		}
		d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			d.Process.Kill()
		}
		os.RemoveAll(dir)
	})
	go func() { d.Wait(); close(exited) }()
	for deadline := time.Now().Add(60 * time.Second); exec.Command("docker", "-H", "unix://"+sock, "info").Run() != nil; time.Sleep(300 * time.Millisecond) {
		select {
		case <-exited:
			deadline = time.Time{}
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("the second Docker Engine did not start:\n%s", b)
		}
	}
	if out, err := exec.Command("sh", "-c", fmt.Sprintf("docker save %s | docker -H unix://%s load", testImage, sock)).CombinedOutput(); err != nil {
		t.Fatalf("load the test image into the second engine: %v %s", err, out)
	}
	return ns, sub + ".1", sub + ".2", sock
}

// Two hosts on one link, each with an agent and a Docker Engine of its
// own: the agents route each other's blocks, so a task on either host
// reaches a task on the other at its task address, with nothing set up
// by hand.
func TestAwsvpcAcrossHosts(t *testing.T) {
	ns, here, _, sock := secondHost(t)
	c := newCluster(t, func(cfg *server.Config) {
		cfg.Listen = here + ":0"
		cfg.Credentials = map[string]string{"test": "test"}
	})
	c.addAgent("zone-a", "", withTestKeys)
	b := exec.Command("nsenter", "--net=/var/run/netns/"+ns, buildBerth(t), "agent", "--server", c.srv.Endpoint(), "--access-key", "test:test",
		"--docker-host", "unix://"+sock, "--zone", "zone-b", "--data-dir", t.TempDir(), "--task-cleanup-wait", "1s")
	b.Stderr = os.Stderr
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Process.Kill(); b.Wait() })
	if !waitFor(60*time.Second, func() bool {
		l, err := c.ecs.ListContainerInstances(c.ctx, &ecs.ListContainerInstancesInput{})
		return err == nil && len(l.ContainerInstanceArns) == 2
	}) {
		t.Fatal("the second host's agent did not register")
	}
	web := fargateWeb(c, "hosts-web")
	addr := map[string]string{}
	served := map[string]string{}
	for _, zone := range []string{"zone-a", "zone-b"} {
		out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(web), LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-" + zone)})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("run in %s: %v %+v", zone, err, out)
		}
		tk := c.wait(out.Tasks[0].TaskArn, "RUNNING")
		addr[zone] = eniDetail(tk, "privateIPv4Address")
	}
	// The zone-b task lives behind the other host: this one reaches it
	// only through the route its agent added.
	if !waitFor(30*time.Second, func() bool {
		var err error
		served["zone-b"], err = httpGet("http://" + addr["zone-b"] + "/index.html")
		return err == nil && served["zone-b"] != ""
	}) {
		routes, _ := exec.Command("ip", "route").CombinedOutput()
		t.Fatalf("this host does not reach the other host's task at %s; routes:\n%s", addr["zone-b"], routes)
	}
	served["zone-a"], _ = httpGet("http://" + addr["zone-a"] + "/index.html")
	client := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("hosts-client"), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("get"),
			Command: sh(`for i in $(seq 1 40); do test "$(wget -qO- http://$TARGET/index.html)" = "$WANT" && exit 0; sleep 0.5; done; exit 1`)}}})
	for from, to := range map[string]string{"zone-a": "zone-b", "zone-b": "zone-a"} {
		run, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(client), LaunchType: types.LaunchTypeFargate,
			NetworkConfiguration: awsvpcIn("subnet-" + from), Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String("get"),
				Environment: []types.KeyValuePair{{Name: aws.String("TARGET"), Value: aws.String(addr[to])}, {Name: aws.String("WANT"), Value: aws.String(served[to])}}}}}})
		if err != nil || len(run.Tasks) != 1 {
			t.Fatalf("run client in %s: %v %+v", from, err, run)
		}
		done := c.wait(run.Tasks[0].TaskArn, "STOPPED")
		if exitCode(done, "get") != 0 {
			t.Fatalf("a task in %s could not reach the task in %s at %s: %s", from, to, addr[to], describeContainers(done))
		}
	}
}
