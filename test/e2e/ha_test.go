package e2e

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/server"
)

// TestControllerFailsOverBetweenServers runs two servers on one external
// etcd: the first leads the service controller; when it stops, the second
// takes over and keeps reconciling.
func TestControllerFailsOverBetweenServers(t *testing.T) {
	etcdURL := externalEtcd(t)
	startOn := func() *server.Server { return serverOn(t, etcdURL) }
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

// externalEtcd starts a one-member etcd (Debian's etcd-server) for servers
// to share, and returns its client URL.
func externalEtcd(t *testing.T) string {
	t.Helper()
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
	return "http://" + client_
}

// serverOn starts a server on an external etcd, waiting for etcd to come up.
func serverOn(t *testing.T, etcdURL string, mod ...func(*server.Config)) *server.Server {
	t.Helper()
	var s *server.Server
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		cfg := server.Config{Listen: "127.0.0.1:0", EtcdEndpoints: []string{etcdURL}, Log: testLogger()}
		for _, m := range mod {
			m(&cfg)
		}
		if s, err = server.Start(context.Background(), cfg); err == nil {
			return s
		}
	}
	t.Fatalf("server: %v", err)
	return nil
}

// TestClientsFailOverBetweenServers: two servers share an etcd and a blob
// store (S3: what several servers need for file data). An agent and a
// mount given both ("A,B") go on through the second when the first goes
// away: the
// mount keeps its session and its data (a write after the failover is
// fsynced), the agent keeps its instance connected, runs a new task
// placed through the second server and stops the old one.
func TestClientsFailOverBetweenServers(t *testing.T) {
	ensureTestImage(t)
	etcdURL := externalEtcd(t)
	_, store := s3Store(t, "ha")
	onS3 := func(cfg *server.Config) { cfg.Blobs = store }
	a, b := serverOn(t, etcdURL, onS3), serverOn(t, etcdURL, onS3)
	defer b.Close()
	both := a.Endpoint() + "," + b.Endpoint()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := &cluster{env: &env{t: t, srv: a, ecs: clientFor(a), ctx: ctx}}
	c.createCluster("default")
	c.addAgent("us-east-1a", "", func(cfg *agent.Config) { cfg.Server = both })
	fs := c.efsFS("failover", "us-east-1a")
	m := (&fsServer{t: t, bin: buildBerth(t), endpoint: both}).mountFS(fs)
	if err := os.WriteFile(m.path("before"), []byte("written through A"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("long"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(32), Command: []string{"sleep", "3600"}}}})
	first := c.run(long)
	c.wait(first.TaskArn, "RUNNING")

	a.Close()
	c.srv, c.ecs = b, clientFor(b)

	f, err := os.Create(m.path("after"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("written through B"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync after the first server went away: %v", err)
	}
	f.Close()
	fresh := (&fsServer{t: t, bin: buildBerth(t), endpoint: b.Endpoint()}).mountFS(fs)
	for name, want := range map[string]string{"before": "written through A", "after": "written through B"} {
		if got, err := os.ReadFile(fresh.path(name)); err != nil || string(got) != want {
			t.Fatalf("%s on a fresh mount through B: %q %v", name, got, err)
		}
	}
	second := c.run(long)
	c.wait(second.TaskArn, "RUNNING")
	c.stop(first.TaskArn)
	if got := c.finish(first.TaskArn); aws.ToString(got.LastStatus) != "STOPPED" {
		t.Fatalf("the first task: %s", aws.ToString(got.LastStatus))
	}
	d, err := c.ecs.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: []string{c.agents[0].arn}})
	if err != nil || len(d.ContainerInstances) != 1 || !d.ContainerInstances[0].AgentConnected {
		t.Fatalf("the instance after the failover: %v %+v", err, d)
	}
}

// TestTwoServersNeverOverCommit: RunTask calls to two servers on one etcd
// at once (each server plans one cluster at a time, but only for itself)
// place no more than the instances hold: every placement transaction is
// guarded on the instances' revisions, so the loser of a race plans again.
func TestTwoServersNeverOverCommit(t *testing.T) {
	etcdURL := externalEtcd(t)
	a, b := serverOn(t, etcdURL), serverOn(t, etcdURL)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := &env{t: t, srv: a, ecs: clientFor(a), ctx: ctx}
	e.createCluster("default")
	const instances, capacity, task = 3, 1024, 128 // 8 tasks fit an instance
	var arns []string
	for i := 0; i < instances; i++ {
		arns = append(arns, e.registerInstance("default", "zone-a", 4096, capacity))
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the simulated instances keep their leases
		for {
			for _, arn := range arns {
				httpPost(a.Endpoint()+"/berth/v1/agent/heartbeat", "", `{"cluster":"default","containerInstance":"`+arn+`"}`)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	td := e.registerSimple("storm", task)
	var mu sync.Mutex
	placed := 0
	var wg sync.WaitGroup
	for _, c := range []*ecs.Client{clientFor(a), clientFor(b), clientFor(a), clientFor(b)} {
		wg.Add(1)
		go func(c *ecs.Client) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				out, err := c.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), Count: aws.Int32(3)})
				if err != nil {
					t.Errorf("run task: %v", err)
					return
				}
				mu.Lock()
				placed += len(out.Tasks)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if want := instances * capacity / task; placed != want {
		t.Fatalf("%d tasks placed by 120 asked for, want the %d the instances hold", placed, want)
	}
	d, err := e.ecs.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: arns})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range d.ContainerInstances {
		if m := resource(in.RemainingResources, "MEMORY"); m != 0 {
			t.Errorf("instance %s: %d MiB left, want 0 (full, never below)", aws.ToString(in.ContainerInstanceArn), m)
		}
		if n := in.RunningTasksCount + in.PendingTasksCount; n != capacity/task {
			t.Errorf("instance %s counts %d tasks, want %d", aws.ToString(in.ContainerInstanceArn), n, capacity/task)
		}
	}
}

// TestBusyMachineLosesNoInstance: with the default lease (7 s, renewed
// every second), both cores saturated for 60 s by other processes lose no
// instance: every agent stays connected throughout and the service's
// tasks are never replaced.
func TestBusyMachineLosesNoInstance(t *testing.T) {
	c := newCluster(t)
	c.createCluster("default")
	for _, zone := range []string{"us-east-1a", "us-east-1b"} {
		c.addAgent(zone, "", func(cfg *agent.Config) { cfg.HeartbeatInterval = 0 }) // the default
	}
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("busy"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16), Command: []string{"sleep", "3600"}}}})
	if _, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("busy"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	tasks := func() []string {
		l, err := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("busy")})
		if err != nil {
			t.Fatal(err)
		}
		return l.TaskArns
	}
	eventually(t, "the service's two tasks", func() bool { return len(tasks()) == 2 })
	before := tasks()
	var burners []*exec.Cmd
	for i := 0; i < 4; i++ { // two per core
		b := exec.Command("sh", "-c", "while :; do :; done")
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		burners = append(burners, b)
	}
	defer func() {
		for _, b := range burners {
			b.Process.Kill()
			b.Wait()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	arns := []string{c.agents[0].arn, c.agents[1].arn}
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		d, err := c.ecs.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{ContainerInstances: arns})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range d.ContainerInstances {
			if !in.AgentConnected {
				t.Fatalf("instance %s lost its agent on a busy machine", aws.ToString(in.ContainerInstanceArn))
			}
		}
	}
	if after := tasks(); len(after) != 2 || !sameSet(before, after) {
		t.Fatalf("the service's tasks changed on a busy machine: %v, then %v", before, after)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

// TestMountEventsResumeOnAnotherServer: a mount's change stream, cut when
// its server goes away, resumes on the next server from the last revision
// it saw: a change another mount made in the gap still reaches it (its
// kernel drops the attributes it cached, well within their 5 s timeout).
func TestMountEventsResumeOnAnotherServer(t *testing.T) {
	requireFUSE(t)
	etcdURL := externalEtcd(t)
	a, b := serverOn(t, etcdURL), serverOn(t, etcdURL)
	defer b.Close()
	bin := buildBerth(t)
	fs := (&fsServer{t: t, bin: bin, endpoint: b.Endpoint()}).createFS("resume")
	w := (&fsServer{t: t, bin: bin, endpoint: b.Endpoint()}).mountFS(fs)
	r := (&fsServer{t: t, bin: bin, endpoint: a.Endpoint() + "," + b.Endpoint()}).mountFS(fs)
	if err := os.WriteFile(w.path("x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(r.path("x"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat through the reading mount: %v %v", fi, err)
	}
	cached := time.Now()
	a.Close() // the reading mount's event stream ends with it
	if since := time.Since(cached); since > 2*time.Second {
		t.Fatalf("closing a server with a mount's event stream took %v", since)
	}
	if err := os.Chmod(w.path("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The stream comes back on b and the change reaches the kernel before
	// the attributes' timeout (5 s) runs out.
	for {
		fi, err = os.Stat(r.path("x"))
		if err == nil && fi.Mode().Perm() == 0o600 {
			t.Logf("the change reached the reading mount %v after it cached the attributes", time.Since(cached).Round(time.Millisecond))
			return
		}
		if time.Since(cached) > 4500*time.Millisecond {
			t.Fatalf("a change made while the reading mount's stream moved servers: %v %v after %v (want -rw-------)", fi.Mode(), err, time.Since(cached))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
