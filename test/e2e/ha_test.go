package e2e

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-project/berth/internal/server"
)

// TestControllerFailsOverBetweenServers runs two servers on one external
// etcd: the first leads the service controller; when it stops, the second
// takes over and keeps reconciling.
func TestControllerFailsOverBetweenServers(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd (Debian package etcd-server) is required: %v", err)
	}
	client_, peer := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--name", "ha",
		"--listen-client-urls", "http://"+client_, "--advertise-client-urls", "http://"+client_,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer, "--initial-cluster", "ha=http://"+peer)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	startOn := func() *server.Server {
		var s *server.Server
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if s, err = server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", EtcdEndpoints: []string{"http://" + client_}, Log: testLogger()}); err == nil {
				return s
			}
		}
		t.Fatalf("server: %v", err)
		return nil
	}
	first := startOn()
	second := startOn()
	defer second.Close()
	e := &env{t: t, ecs: clientFor(first), ctx: context.Background()}
	e.createCluster("default")
	inst := e.registerInstance("default", "zone-a", 4096, 4096)
	// The simulated instance keeps its lease through whichever server is up.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			for _, s := range []*server.Server{first, second} {
				httpPost(s.Endpoint()+"/berth/v1/agent/heartbeat", "", `{"cluster":"default","containerInstance":"`+inst+`"}`)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	td := e.registerSimple("ha", 64)
	if _, err := e.ecs.CreateService(e.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("ha"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	tasks := func(c *ecs.Client) int {
		l, err := c.ListTasks(e.ctx, &ecs.ListTasksInput{ServiceName: aws.String("ha")})
		if err != nil {
			return -1
		}
		return len(l.TaskArns)
	}
	for deadline := time.Now().Add(20 * time.Second); tasks(e.ecs) != 1; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the controller did not start the service's task")
		}
	}
	first.Close()
	c2 := clientFor(second)
	if _, err := c2.UpdateService(e.ctx, &ecs.UpdateServiceInput{Service: aws.String("ha"), DesiredCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); tasks(c2) != 3; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			d, _ := c2.DescribeServices(e.ctx, &ecs.DescribeServicesInput{Services: []string{"ha"}})
			t.Fatalf("the second server did not take over the controller: %d tasks, %+v", tasks(c2), d)
		}
	}
}
