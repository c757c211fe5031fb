package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/blob/s3/s3test"
	"github.com/berth-project/berth/internal/server"
)

// serverProc is a `berth server` process.
type serverProc struct {
	name, dir, endpoint string
	argv                []string
	cmd                 *exec.Cmd
}

// startServerProc runs `berth server` with an embedded etcd member named
// name whose peers listen on loopback, and waits until it answers.
func startServerProc(t testing.TB, bin, name, blobStore string, args ...string) *serverProc {
	return startServerProcIn(t, bin, "", "127.0.0.1", name, append([]string{"--blob-store", blobStore}, args...)...)
}

// startServerProcIn runs `berth server` in a network namespace (none: this
// one) with its API on all addresses and its member's peers on host.
func startServerProcIn(t testing.TB, bin, netns, host, name string, args ...string) *serverProc {
	t.Helper()
	port := freeTCPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	if host != "127.0.0.1" {
		listen = fmt.Sprintf("0.0.0.0:%d", port)
		args = append(args, "--access-key", s3test.AccessKey+":"+s3test.SecretKey)
	}
	p := &serverProc{name: name, dir: t.TempDir(), endpoint: fmt.Sprintf("http://%s:%d", host, port)}
	argv := append([]string{bin, "server", "--data-dir", p.dir, "--listen", listen,
		"--etcd-name", name, "--etcd-peer-listen", host + ":0", "--agent-lease-ttl", "5s"}, args...)
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	p.argv = argv
	p.start(t)
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	return p
}

// restart starts a killed server again on its data dir (it joined before:
// no --join now).
func (p *serverProc) restart(t testing.TB) {
	t.Helper()
	var argv []string
	for i := 0; i < len(p.argv); i++ {
		if p.argv[i] == "--join" || p.argv[i] == "--token" {
			i++
			continue
		}
		argv = append(argv, p.argv[i])
	}
	p.argv = argv
	p.start(t)
}

func (p *serverProc) start(t testing.TB) {
	t.Helper()
	p.cmd = exec.Command(p.argv[0], p.argv[1:]...)
	p.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3test.SecretKey)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(p.endpoint + "/berth/v1/ca"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s did not come up", p.name)
		}
	}
}

// member is what a server's data dir says of its etcd member.
func (p *serverProc) member(t testing.TB) (peerURL string, clientPort int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "etcd-member.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		PeerURL    string `json:"peerURL"`
		ClientPort int    `json:"clientPort"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.PeerURL, m.ClientPort
}

// peerPort is the port a server's member listens on for its peers.
func (p *serverProc) peerPort(t testing.TB) string {
	t.Helper()
	peerURL, _ := p.member(t)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(peerURL, "https://"))
	if err != nil {
		t.Fatalf("peer URL %q: %v", peerURL, err)
	}
	return port
}

// leaderOf is the server whose member leads, as the first one sees it.
func leaderOf(t testing.TB, bin string, procs []*serverProc) *serverProc {
	t.Helper()
	for _, m := range members(t, bin, procs[0].endpoint) {
		for _, p := range procs {
			if m.Leader && m.Name == p.name {
				return p
			}
		}
	}
	t.Fatal("no member leads")
	return nil
}

// berthCmd runs the berth CLI with the test's access key.
func berthCmd(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3test.SecretKey)
	return cmd
}

func freeTCPPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// memberToken makes a member token through a server with the CLI.
func memberToken(t testing.TB, bin, endpoint string) string {
	t.Helper()
	out, err := berthCmd(bin, "server", "members", "add", "--endpoint", endpoint, "-o", "json").Output()
	if err != nil {
		t.Fatalf("berth server members add: %v", err)
	}
	var tok server.MemberTokenResponse
	if err := json.Unmarshal(out, &tok); err != nil || !strings.HasPrefix(tok.Token, "BERTH1:") {
		t.Fatalf("member token: %q %v", out, err)
	}
	return tok.Token
}

func members(t testing.TB, bin, endpoint string) []server.Member {
	t.Helper()
	out, err := berthCmd(bin, "server", "members", "ls", "--endpoint", endpoint, "-o", "json").Output()
	if err != nil {
		t.Fatalf("berth server members ls through %s: %v", endpoint, err)
	}
	var ms []server.Member
	if err := json.Unmarshal(out, &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestThreeServersOutliveTheLeader: three `berth server` processes, each
// with an etcd member (peers over TLS), two agents and a mount given all
// three, a service of four tasks and a storm of RunTask calls spread over
// the servers. kill -9 of the server whose member leads etcd: every
// RunTask acknowledged (before or after) is there exactly once, the
// service is back at four running tasks, every fsynced line of the mount
// is intact and the mount goes on without remounting. Then the dead member
// is removed and a new server joins in its place.
func TestThreeServersOutliveTheLeader(t *testing.T) {
	ensureTestImage(t)
	bin := buildBerth(t)
	s3srv := s3test.Start(t, "berth")
	blobStore := "s3://berth/ha?endpoint=" + s3srv.Endpoint + "&path-style=true"
	procs := []*serverProc{startServerProc(t, bin, "s1", blobStore)}
	for _, name := range []string{"s2", "s3"} {
		procs = append(procs, startServerProc(t, bin, name, blobStore, "--join", procs[0].endpoint, "--token", memberToken(t, bin, procs[0].endpoint)))
	}
	ms := members(t, bin, procs[2].endpoint)
	if len(ms) != 3 {
		t.Fatalf("members: %+v", ms)
	}
	for _, m := range ms {
		if m.Learner || !m.Reachable || !strings.HasPrefix(m.PeerURLs[0], "https://") {
			t.Fatalf("member %+v: want a reachable voter whose peers talk TLS", m)
		}
	}
	var all []string
	for _, p := range procs {
		all = append(all, p.endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Joined servers received the cluster's secrets key: a secret sealed
	// by the first opens on the third.
	if _, err := smClient(procs[0].endpoint).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("ha"), SecretString: aws.String("sealed-by-s1")}); err != nil {
		t.Fatal(err)
	}
	if got, err := smClient(procs[2].endpoint).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ha")}); err != nil || aws.ToString(got.SecretString) != "sealed-by-s1" {
		t.Fatalf("a secret read through a joined server: %v", err)
	}
	c := &cluster{env: &env{t: t, ecs: client(procs[1].endpoint, "test", "test"), ctx: ctx}}
	c.createCluster("default")
	for _, zone := range []string{"us-east-1a", "us-east-1b"} {
		c.addAgent(zone, "", func(cfg *agent.Config) { cfg.Server = strings.Join(all, ",") })
	}
	sleeper := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("sleeper"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16), Command: []string{"sleep", "3600"}}}})
	if _, err := c.ecs.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("four"), TaskDefinition: aws.String(sleeper), DesiredCount: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	running := func(cl *ecs.Client) int {
		l, err := cl.ListTasks(ctx, &ecs.ListTasksInput{ServiceName: aws.String("four"), DesiredStatus: types.DesiredStatusRunning})
		if err != nil || len(l.TaskArns) == 0 {
			return 0
		}
		d, err := cl.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: l.TaskArns})
		if err != nil {
			return 0
		}
		n := 0
		for _, task := range d.Tasks {
			if aws.ToString(task.LastStatus) == "RUNNING" {
				n++
			}
		}
		return n
	}
	eventually(t, "the service's four tasks running", func() bool { return running(c.ecs) == 4 })

	ec := efsClient(procs[0].endpoint)
	created, err := ec.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("ha")})
	if err != nil {
		t.Fatal(err)
	}
	fs := aws.ToString(created.FileSystemId)
	m := (&fsServer{t: t, bin: bin, endpoint: strings.Join(all, ",")}).mountFS(fs)

	// The mount holds a lock across the kill (its session lives in etcd).
	lockFile, err := os.OpenFile(m.path("lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lockFile.Close()
	if err := syscall.Flock(int(lockFile.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("lock: %v", err)
	}

	// Writers: the mount appends a line and fsyncs it, again and again;
	// RunTask goes to the servers in turn, each call with its own client
	// token, retried on the next server when one cannot be reached.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]string{} // startedBy -> task ARN
	synced := 0
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(m.path("log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			writeErr = err
			return
		}
		defer f.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := fmt.Fprintf(f, "line %06d\n", i); err != nil {
				writeErr = fmt.Errorf("write %d: %w", i, err)
				return
			}
			if err := f.Sync(); err != nil {
				writeErr = fmt.Errorf("fsync %d: %w", i, err)
				return
			}
			mu.Lock()
			synced = i + 1
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	clients := []*ecs.Client{}
	for _, p := range procs {
		clients = append(clients, client(p.endpoint, "test", "test"))
	}
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(150 * time.Millisecond):
				}
				by := fmt.Sprintf("storm-%d-%d", w, i)
				for attempt := 0; attempt < 30; attempt++ {
					out, err := clients[(w+i+attempt)%3].RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(sleeper), StartedBy: aws.String(by), ClientToken: aws.String(by)})
					if err == nil && len(out.Tasks) == 1 {
						mu.Lock()
						acked[by] = aws.ToString(out.Tasks[0].TaskArn)
						mu.Unlock()
						break
					}
					var oe interface{ ErrorCode() string }
					if err != nil && errors.As(err, &oe) && oe.ErrorCode() != "ServerException" {
						t.Errorf("run task %s: %v", by, err)
						return
					}
					time.Sleep(300 * time.Millisecond) // unreachable, or etcd electing a leader: another server
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	leader := leaderOf(t, bin, procs)
	mu.Lock()
	before, syncedBefore := len(acked), synced
	mu.Unlock()
	leader.cmd.Process.Signal(syscall.SIGKILL)
	leader.cmd.Wait()
	t.Logf("killed %s (the etcd leader) after %d RunTask calls and %d fsynced lines", leader.name, before, syncedBefore)
	var alive []*serverProc
	for _, p := range procs {
		if p != leader {
			alive = append(alive, p)
		}
	}
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("the mount across the leader's death: %v", writeErr)
	}
	if synced <= syncedBefore || len(acked) <= before {
		t.Fatalf("nothing went on after the kill: %d fsynced lines (%d before), %d RunTask calls (%d before)", synced, syncedBefore, len(acked), before)
	}
	// Every acknowledged RunTask is there, exactly once.
	c.ecs = client(alive[0].endpoint, "test", "test")
	for by, arn := range acked {
		l, err := c.ecs.ListTasks(ctx, &ecs.ListTasksInput{StartedBy: aws.String(by)})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.TaskArns) != 1 || l.TaskArns[0] != arn {
			t.Errorf("RunTask %s acknowledged %s; the cluster has %v", by, arn, l.TaskArns)
		}
	}
	eventually(t, "the service back at four running tasks", func() bool { return running(c.ecs) == 4 })
	// Every fsynced line, through a fresh mount on a surviving server.
	fresh := (&fsServer{t: t, bin: bin, endpoint: alive[1].endpoint}).mountFS(fs)
	got, err := os.ReadFile(fresh.path("log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) < synced {
		t.Fatalf("%d lines fsynced, %d there", synced, len(lines))
	}
	for i := 0; i < synced; i++ {
		if lines[i] != fmt.Sprintf("line %06d", i) {
			t.Fatalf("line %d: %q", i, lines[i])
		}
	}
	// The lock taken before the kill still holds, and its release is seen.
	other, err := os.OpenFile(fresh.path("lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != syscall.EWOULDBLOCK {
		t.Fatalf("another mount's lock while the first still holds it: %v, want EWOULDBLOCK", err)
	}
	if err := syscall.Flock(int(lockFile.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatalf("unlock after the kill: %v", err)
	}
	eventually(t, "the other mount's lock once the first released it", func() bool {
		return syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	})
	// The mount goes on, as it was.
	if err := os.WriteFile(m.path("after"), []byte("still mounted"), 0o644); err != nil {
		t.Fatalf("the mount after the kill: %v", err)
	}
	t.Logf("%d RunTask calls acknowledged, each once; %d lines fsynced, all there", len(acked), synced)

	// The dead member is shown, removed, and replaced.
	for _, mb := range members(t, bin, alive[0].endpoint) {
		if mb.Name == leader.name && mb.Reachable {
			t.Fatalf("the killed member shows as reachable: %+v", mb)
		}
	}
	if out, err := berthCmd(bin, "server", "members", "rm", leader.name, "--endpoint", alive[0].endpoint).CombinedOutput(); err != nil {
		t.Fatalf("members rm: %v: %s", err, out)
	}
	replacement := startServerProc(t, bin, "s4", blobStore, "--join", alive[1].endpoint, "--token", memberToken(t, bin, alive[0].endpoint))
	ms = members(t, bin, replacement.endpoint)
	if len(ms) != 3 {
		t.Fatalf("members after the replacement: %+v", ms)
	}
	for _, mb := range ms {
		if mb.Name == leader.name || mb.Learner || !mb.Reachable {
			t.Fatalf("member %+v after the replacement", mb)
		}
	}
	// With the replacement a member, one more of the first three can go.
	alive[0].cmd.Process.Signal(syscall.SIGKILL)
	alive[0].cmd.Wait()
	rc := client(replacement.endpoint, "test", "test")
	eventually(t, "a write through the replacement with one old member left", func() bool {
		_, err := rc.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("after-replacement")})
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(replacement.dir, "etcd-peer", "ca-key.pem")); err == nil {
		t.Fatal("a joined member holds the peer CA's key")
	}
}

// TestMinorityPartitionRefusesWrites: three servers, the third in a
// network namespace of its own; its member is cut from the other two by
// dropping their peer traffic (its API stays reachable). The minority
// refuses writes with an error, soon; the majority goes on. Healed, the
// third catches up: every server lists the same clusters, the majority's
// write once and the refused one not at all.
func TestMinorityPartitionRefusesWrites(t *testing.T) {
	bin := buildBerth(t)
	ns := fmt.Sprintf("berth-part-%d", os.Getpid()%10000)
	sub := fmt.Sprintf("10.%d.%d", 200+os.Getpid()%50, os.Getpid()%250)
	veth := fmt.Sprintf("bp%d", os.Getpid()%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	linkedNamespace(t, ns, veth, sub)

	host, inNS := sub+".1", sub+".2"
	s1 := startServerProcIn(t, bin, "", host, "s1")
	local := func(p *serverProc) string { return strings.Replace(p.endpoint, host, "127.0.0.1", 1) }
	s2 := startServerProcIn(t, bin, "", host, "s2", "--join", "https://"+strings.TrimPrefix(s1.endpoint, "http://"), "--token", memberToken(t, bin, local(s1)))
	s3 := startServerProcIn(t, bin, ns, inNS, "s3", "--join", "https://"+strings.TrimPrefix(s1.endpoint, "http://"), "--token", memberToken(t, bin, local(s1)))
	if ms := members(t, bin, local(s2)); len(ms) != 3 {
		t.Fatalf("members: %+v", ms)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c1, c2, c3 := client(local(s1), s3test.AccessKey, s3test.SecretKey), client(local(s2), s3test.AccessKey, s3test.SecretKey), client(s3.endpoint, s3test.AccessKey, s3test.SecretKey)
	create := func(c *ecs.Client, name string) error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := c.CreateCluster(cctx, &ecs.CreateClusterInput{ClusterName: aws.String(name)})
		return err
	}
	if err := create(c3, "before"); err != nil {
		t.Fatal(err)
	}

	// Cut s3's member from the others' (both directions, established
	// connections too); its API port stays open.
	p1, p2, p3 := s1.peerPort(t), s2.peerPort(t), s3.peerPort(t)
	rules := [][]string{{"INPUT", "--dport", p3}, {"OUTPUT", "--sport", p3}}
	for _, p := range []string{p1, p2} {
		rules = append(rules, []string{"INPUT", "--sport", p}, []string{"OUTPUT", "--dport", p})
	}
	for _, r := range rules {
		run("ip", "netns", "exec", ns, "iptables", "-A", r[0], "-p", "tcp", r[1], r[2], "-j", "DROP")
	}
	// A write sent as the partition begins may time out and still land
	// once it heals (its outcome is unknown, as etcd says); once the
	// member knows it has no leader, which its health check says, writes
	// are refused at once and never land.
	cut := time.Now()
	for {
		resp, err := http.Get(s3.endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Since(cut) > 20*time.Second {
			t.Fatal("the cut-off member's health check still says ok")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the cut-off member knew it had no leader after %s", time.Since(cut).Round(time.Millisecond))
	began := time.Now()
	err := create(c3, "minority")
	took := time.Since(began)
	if err == nil {
		t.Fatal("the minority side took a write")
	}
	var oe interface{ ErrorCode() string }
	if !errors.As(err, &oe) || oe.ErrorCode() != "ServerException" || took > 2*time.Second || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("the minority's refusal after %s: %v (want a ServerException naming the lost majority, at once)", took, err)
	}
	t.Logf("the minority refused a write after %s: %v", took.Round(time.Millisecond), err)
	var majorityErr error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if majorityErr = create(c1, "majority"); majorityErr == nil || time.Now().After(deadline) {
			break
		}
	}
	if majorityErr != nil {
		t.Fatalf("the majority during the partition: %v", majorityErr)
	}

	run("ip", "netns", "exec", ns, "iptables", "-F")
	want := "before,majority"
	for _, c := range []*ecs.Client{c1, c2, c3} {
		var got string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			l, err := c.ListClusters(ctx, &ecs.ListClustersInput{})
			if err == nil {
				var names []string
				for _, arn := range l.ClusterArns {
					names = append(names, arn[strings.LastIndex(arn, "/")+1:])
				}
				sort.Strings(names)
				if got = strings.Join(names, ","); got == want {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("after healing, a server lists %q, want %q (%v)", got, want, err)
			}
		}
	}
	if err := create(c3, "healed"); err != nil {
		t.Fatalf("a write through the healed member: %v", err)
	}
}

// linkedNamespace makes network namespace ns, linked to this one by the
// veth pair veth (here) and veth+"n" (there) on the /24 sub: SUB.1 here,
// SUB.2 there. The test's cleanup removes both.
func linkedNamespace(t *testing.T, ns, veth, sub string) {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", veth, "type", "veth", "peer", "name", veth+"n")
	t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
	run("ip", "link", "set", veth+"n", "netns", ns)
	run("ip", "addr", "add", sub+".1/24", "dev", veth)
	run("ip", "link", "set", veth, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", sub+".2/24", "dev", veth+"n")
	run("ip", "netns", "exec", ns, "ip", "link", "set", veth+"n", "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
}
