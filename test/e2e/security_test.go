package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/server"
	"github.com/berth-project/berth/internal/state"
)

// TestAgentKeyBoundToInstance: an agent's key acts only for the instance
// it registered. Another agent can neither read that instance's tasks
// (their environment holds secrets), report for them, renew its lease,
// claim its data, read its snapshots, nor take over its ARN.
func TestAgentKeyBoundToInstance(t *testing.T) {
	s := start(t, func(c *server.Config) {
		c.Credentials = map[string]string{"OPERATOR": "op-secret"}
		c.AgentCredentials = map[string]string{"AGENT1": "a1-secret", "AGENT2": "a2-secret"}
		c.RequireAuth = true
	})
	ctx := context.Background()
	op := client(s.Endpoint(), "OPERATOR", "op-secret")
	a1, a2 := client(s.Endpoint(), "AGENT1", "a1-secret"), client(s.Endpoint(), "AGENT2", "a2-secret")
	register := func(c *ecs.Client, arn *string) (string, error) { return registerAs(ctx, c, "us-east-1a", arn) }
	inst1, err := register(a1, nil)
	if err != nil {
		t.Fatal(err)
	}
	inst2, err := register(a2, nil)
	if err != nil {
		t.Fatal(err)
	}
	td, err := op.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("secret"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64),
			Environment: []ecstypes.KeyValuePair{{Name: aws.String("PASSWORD"), Value: aws.String("hunter2")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := op.StartTask(ctx, &ecs.StartTaskInput{TaskDefinition: td.TaskDefinition.TaskDefinitionArn, ContainerInstances: []string{inst1}})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("start: %v %+v", err, run)
	}
	task := aws.ToString(run.Tasks[0].TaskArn)
	signed := func(id, secret string) *agent.Client {
		return &agent.Client{Endpoint: s.Endpoint(), Credentials: &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}}
	}
	ag1, ag2 := signed("AGENT1", "a1-secret"), signed("AGENT2", "a2-secret")
	denied := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("%s with another agent's key: %v, want AccessDeniedException", what, err)
		}
	}
	inst := map[string]any{"cluster": "default", "containerInstance": inst1}
	var tasks struct {
		Tasks []struct {
			Task struct {
				TaskArn string `json:"taskArn"`
			} `json:"task"`
		} `json:"tasks"`
	}
	denied("long-poll of tasks", ag2.Post(ctx, "/berth/v1/agent/tasks", inst, &tasks))
	denied("heartbeat", ag2.Post(ctx, "/berth/v1/agent/heartbeat", inst, nil))
	denied("residency", ag2.Post(ctx, "/berth/v1/agent/residency", map[string]any{"cluster": "default", "containerInstance": inst1, "keys": []string{"docker-volume/x"}}, nil))
	denied("volume event", ag2.Post(ctx, "/berth/v1/agent/volume-event", map[string]any{"cluster": "default", "containerInstance": inst1, "volumeId": "vol-x", "event": "created"}, nil))
	denied("snapshot listing", ag2.Post(ctx, "/berth/v1/snapshots/describe", map[string]any{"cluster": "default"}, nil))
	_, err = a2.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Task: aws.String(task), Status: aws.String("STOPPED"), Reason: aws.String("forged")})
	denied("SubmitTaskStateChange", err)
	_, err = register(a2, aws.String(inst1))
	denied("re-registration of the instance", err)

	// The instance's own agent may do all of it, and the forged report
	// changed nothing.
	if err := ag1.Post(ctx, "/berth/v1/agent/tasks", inst, &tasks); err != nil || len(tasks.Tasks) != 1 || tasks.Tasks[0].Task.TaskArn != task {
		t.Fatalf("the instance's own agent reads its tasks: %v %+v", err, tasks)
	}
	if err := ag1.Post(ctx, "/berth/v1/agent/heartbeat", inst, nil); err != nil {
		t.Fatalf("heartbeat of the own instance: %v", err)
	}
	if _, err := a1.SubmitTaskStateChange(ctx, &ecs.SubmitTaskStateChangeInput{Task: aws.String(task), Status: aws.String("RUNNING")}); err != nil {
		t.Fatalf("the own agent reports RUNNING: %v", err)
	}
	d, err := op.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: []string{task}})
	if err != nil || len(d.Tasks) != 1 || aws.ToString(d.Tasks[0].LastStatus) != "RUNNING" {
		t.Fatalf("task after the reports: %v %+v", err, d)
	}
	if got, err := register(a1, aws.String(inst1)); err != nil || got != inst1 {
		t.Fatalf("the own agent re-registers: %v %s", err, got)
	}
	// Re-registration by the operator keeps the instance its agent's.
	if _, err := register(op, aws.String(inst2)); err != nil {
		t.Fatal(err)
	}
	if err := ag2.Post(ctx, "/berth/v1/agent/heartbeat", map[string]any{"cluster": "default", "containerInstance": inst2}, nil); err != nil {
		t.Fatalf("agent 2 after the operator re-registered its instance: %v", err)
	}
}

// TestOperationHeaderMustBeSigned: a request whose signature does not
// cover X-Amz-Target (or Content-Type) is refused, so a captured request
// cannot be replayed as another operation.
func TestOperationHeaderMustBeSigned(t *testing.T) {
	s := start(t, func(c *server.Config) {
		c.Credentials = map[string]string{"OPERATOR": "op-secret"}
		c.RequireAuth = true
	})
	ctx := context.Background()
	send := func(signFirst bool) (int, string) {
		body := []byte(`{}`)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint()+"/", bytes.NewReader(body))
		target := func() {
			req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters")
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		}
		if signFirst {
			target()
		}
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "OPERATOR", SecretAccessKey: "op-secret"}, req,
			hex.EncodeToString(sum[:]), "ecs", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		if !signFirst {
			target() // added after signing: SignedHeaders is host;x-amz-date
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e struct {
			Type string `json:"__type"`
		}
		json.Unmarshal(b, &e)
		return resp.StatusCode, e.Type
	}
	if code, typ := send(false); code == 200 || typ != "IncompleteSignatureException" {
		t.Fatalf("X-Amz-Target outside the signature: HTTP %d %s, want IncompleteSignatureException", code, typ)
	}
	if code, typ := send(true); code != 200 {
		t.Fatalf("a fully signed request: HTTP %d %s", code, typ)
	}
}

// TestStatefulSlotNeverGetsANewVolumeOnAFailedRead: when the controller
// cannot read a slot's volume record, it stops its pass for the service
// instead of giving the slot a new, empty volume.
func TestStatefulSlotNeverGetsANewVolumeOnAFailedRead(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.LeaseTTL = 120 * time.Second })
	e.createCluster("default")
	e.registerInstance("default", "us-east-1a", 2048, 2048, ecstypes.Attribute{Name: aws.String("ecs.capability.ebs-task-attach")})
	td, err := e.ecs.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("db"),
		Volumes: []ecstypes.Volume{{Name: aws.String("data"), ConfiguredAtLaunch: aws.Bool(true)}},
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64),
			MountPoints: []ecstypes.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ecs.CreateService(e.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("db"), TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(1),
		Tags: []ecstypes.Tag{{Key: aws.String("berth:stateful"), Value: aws.String("true")}},
		VolumeConfigurations: []ecstypes.ServiceVolumeConfiguration{{Name: aws.String("data"), ManagedEBSVolume: &ecstypes.ServiceManagedEBSVolumeConfiguration{
			RoleArn: aws.String("arn:aws:iam::000000000000:role/ecs"), SizeInGiB: aws.Int32(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	volumes := func() []string {
		resp, err := e.srv.Client().Get(e.ctx, state.VolumePrefix("default"), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		return keys
	}
	var task string
	for deadline := time.Now().Add(20 * time.Second); task == "" || len(volumes()) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			d, _ := e.ecs.DescribeServices(e.ctx, &ecs.DescribeServicesInput{Services: []string{"db"}})
			for _, ev := range d.Services[0].Events {
				t.Log(aws.ToString(ev.Message))
			}
			t.Fatal("the service's slot never got a task and a volume")
		}
		list, err := e.ecs.ListTasks(e.ctx, &ecs.ListTasksInput{ServiceName: aws.String("db")})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.TaskArns) == 1 {
			task = list.TaskArns[0]
		}
	}
	vols := volumes()
	if len(vols) != 1 {
		t.Fatalf("volumes of a one-slot service: %v", vols)
	}
	// Scale to zero and stop the task (there is no agent: the test reports
	// for it); then the slot's volume record cannot be read, and the slot
	// is wanted again.
	if _, err := e.ecs.UpdateService(e.ctx, &ecs.UpdateServiceInput{Service: aws.String("db"), DesiredCount: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ecs.StopTask(e.ctx, &ecs.StopTaskInput{Task: aws.String(task)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ecs.SubmitTaskStateChange(e.ctx, &ecs.SubmitTaskStateChangeInput{Task: aws.String(task), Status: aws.String("STOPPED")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Client().Put(e.ctx, vols[0], "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ecs.UpdateService(e.ctx, &ecs.UpdateServiceInput{Service: aws.String("db"), DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // the controller passes every second
	if got := volumes(); len(got) != 1 {
		t.Fatalf("the slot was given a new volume while its own could not be read: %v", got)
	}
}

// TestOversizedRequestsGetECSErrors: requests past ECS's documented size
// limits get ECS's exceptions and change nothing; none reaches etcd's
// request limit (which answered 500 before).
func TestOversizedRequestsGetECSErrors(t *testing.T) {
	e := newEnv(t)
	e.createCluster("default")
	e.registerInstance("default", "z1", 4096, 8192)
	code := func(err error) string {
		t.Helper()
		if err == nil {
			return ""
		}
		if c := efsCode(err); c != "" {
			return c
		}
		t.Fatalf("not an API error: %v", err)
		return ""
	}
	big := strings.Repeat("x", 2<<20)
	_, err := e.ecs.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("big"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64),
			Environment: []ecstypes.KeyValuePair{{Name: aws.String("BIG"), Value: aws.String(big)}}}}})
	if c := code(err); c != "ClientException" {
		t.Fatalf("a 2 MB environment value: %v, want ClientException", err)
	}
	if l, err := e.ecs.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{}); err != nil || len(l.Families) != 0 {
		t.Fatalf("a refused definition left a family: %v %v", err, l)
	}
	td := e.registerSimple("small", 64)
	override := func(size int) *ecstypes.TaskOverride {
		return &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{Name: aws.String("app"),
			Environment: []ecstypes.KeyValuePair{{Name: aws.String("V"), Value: aws.String(strings.Repeat("y", size))}}}}}
	}
	for _, c := range []struct {
		size  int
		count int32
	}{{1600 << 10, 1}, {160 << 10, 10}, {8200, 1}} {
		_, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), Count: aws.Int32(c.count), Overrides: override(c.size)})
		if code(err) != "InvalidParameterException" || !strings.Contains(err.Error(), "8192") {
			t.Fatalf("RunTask of %d with %d bytes of overrides: %v, want InvalidParameterException", c.count, c.size, err)
		}
	}
	if l, err := e.ecs.ListTasks(e.ctx, &ecs.ListTasksInput{}); err != nil || len(l.TaskArns) != 0 {
		t.Fatalf("refused RunTasks left tasks: %v %v", err, l)
	}
	// A service keeps its network configuration in every deployment: ECS's
	// limits keep it small.
	_, err = e.ecs.CreateService(e.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("net"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(0),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{Subnets: []string{strings.Repeat("s", 1600<<10)}}}})
	if code(err) != "InvalidParameterException" {
		t.Fatalf("a service with a 1.6 MB subnet id: %v", err)
	}
	out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), Count: aws.Int32(10), Overrides: override(8000)})
	if err != nil || len(out.Tasks) != 10 {
		t.Fatalf("ten tasks with overrides just under the limit: %v", err)
	}
	// A body past the server's limit is said to be too large.
	req, _ := http.NewRequest(http.MethodPost, e.srv.Endpoint()+"/", strings.NewReader(`{"family":"`+strings.Repeat("z", 5<<20)+`"}`))
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "too large") {
		t.Fatalf("a 5 MiB body: HTTP %d %s", resp.StatusCode, b)
	}
}

// TestSlowClientsHoldNothing: a body trickled a byte at a time is cut off
// after the body timeout, and one address cannot hold more connections
// than its share; the server keeps answering others.
func TestSlowClientsHoldNothing(t *testing.T) {
	s := start(t, func(c *server.Config) {
		c.BodyTimeout = time.Second
		c.MaxConnsPerIP = 20
	})
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	// A slow body.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonEC2ContainerServiceV20141113.ListClusters\r\nContent-Length: 100\r\n\r\n")
	done := make(chan bool)
	go func() { done <- closedWithin(c, 5*time.Second) }()
	for i := 0; i < 10; i++ {
		c.Write([]byte(" "))
		time.Sleep(300 * time.Millisecond)
	}
	if !<-done {
		t.Fatal("a body trickled in for 3 s kept its connection past a 1 s body timeout")
	}
	// More connections than an address may hold: the ones past its share
	// are closed at once.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 25; i++ {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("POST / HTTP/1.1\r\n"))
		conns = append(conns, c)
	}
	refused := 0
	for _, c := range conns[20:] {
		if closedWithin(c, 2*time.Second) {
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("%d of the 5 connections past the limit of 20 were closed", refused)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	time.Sleep(200 * time.Millisecond)
	if _, err := client(s.Endpoint(), "k", "s").ListClusters(context.Background(), &ecs.ListClustersInput{}); err != nil {
		t.Fatalf("the server after the slow clients left: %v", err)
	}
}

// TestSmallValidations: inputs ECS refuses are refused, with nothing
// written.
func TestSmallValidations(t *testing.T) {
	e := newEnv(t)
	e.createCluster("default")
	base := func() *ecs.RegisterTaskDefinitionInput {
		return &ecs.RegisterTaskDefinitionInput{Family: aws.String("v"),
			ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64)}}}
	}
	bad := map[string]func(*ecs.RegisterTaskDefinitionInput){
		"NUL in a container name": func(in *ecs.RegisterTaskDefinitionInput) { in.ContainerDefinitions[0].Name = aws.String("a\x00b") },
		"NUL in the family":       func(in *ecs.RegisterTaskDefinitionInput) { in.Family = aws.String("v\x00") },
		"NUL in an image": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Image = aws.String("busy\x00box")
		},
		"a 5,000-character image": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Image = aws.String(strings.Repeat("a", 5000))
		},
		"NUL in an environment name": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Environment = []ecstypes.KeyValuePair{{Name: aws.String("A\x00"), Value: aws.String("1")}}
		},
		"sharedMemorySize -1": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].LinuxParameters = &ecstypes.LinuxParameters{SharedMemorySize: aws.Int32(-1)}
		},
		"an unknown logDriver": func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].LogConfiguration = &ecstypes.LogConfiguration{LogDriver: "nosuchdriver"}
		},
		"NUL in a tag key": func(in *ecs.RegisterTaskDefinitionInput) {
			in.Tags = []ecstypes.Tag{{Key: aws.String("k\x00"), Value: aws.String("v")}}
		},
	}
	for what, mod := range bad {
		in := base()
		mod(in)
		_, err := e.ecs.RegisterTaskDefinition(e.ctx, in)
		if c := efsCode(err); c != "ClientException" && c != "InvalidParameterException" {
			t.Errorf("%s: %v, want ClientException or InvalidParameterException", what, err)
		}
	}
	if l, err := e.ecs.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{}); err != nil || len(l.Families) != 0 {
		t.Fatalf("refused definitions left families: %v %v", err, l)
	}
	if _, err := e.ecs.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("c\x00")}); efsCode(err) != "InvalidParameterException" {
		t.Errorf("NUL in a cluster name: %v", err)
	}
	td := e.registerSimple("ok", 64)
	for what, in := range map[string]*ecs.CreateServiceInput{
		"desiredCount 1e9":      {ServiceName: aws.String("big"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1e9)},
		"NUL in a service name": {ServiceName: aws.String("s\x00"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1)},
	} {
		if _, err := e.ecs.CreateService(e.ctx, in); efsCode(err) != "InvalidParameterException" {
			t.Errorf("%s: %v, want InvalidParameterException", what, err)
		}
	}
	if l, err := e.ecs.ListServices(e.ctx, &ecs.ListServicesInput{}); err != nil || len(l.ServiceArns) != 0 {
		t.Fatalf("refused services were created: %v %v", err, l)
	}
}

// TestEFSEdgeErrors: the EFS API answers authentication failures with 403
// and unknown paths and methods in its own error shape.
func TestEFSEdgeErrors(t *testing.T) {
	s := start(t, func(c *server.Config) {
		c.Credentials = map[string]string{"OPERATOR": "op-secret"}
		c.RequireAuth = true
	})
	ctx := context.Background()
	send := func(method, path string, sign bool) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, s.Endpoint()+path, nil)
		if sign {
			sum := sha256.Sum256(nil)
			if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "OPERATOR", SecretAccessKey: "op-secret"}, req,
				hex.EncodeToString(sum[:]), "elasticfilesystem", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ ErrorCode string }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: not a JSON error: %q", method, path, b)
		}
		return resp.StatusCode, e.ErrorCode
	}
	if code, ec := send("GET", "/2015-02-01/file-systems", false); code != 403 || ec == "" {
		t.Errorf("an unsigned EFS call: HTTP %d %q, want 403", code, ec)
	}
	if code, ec := send("GET", "/2015-02-01/no-such-thing", true); code != 404 || ec != "UnknownOperationException" {
		t.Errorf("an unknown EFS path: HTTP %d %q", code, ec)
	}
	if code, ec := send("PATCH", "/2015-02-01/file-systems", true); code != 404 || ec != "UnknownOperationException" {
		t.Errorf("an unknown EFS method: HTTP %d %q", code, ec)
	}
	if code, _ := send("GET", "/2015-02-01/file-systems", true); code != 200 {
		t.Errorf("a signed DescribeFileSystems: HTTP %d", code)
	}
}

// registerAs registers (or, with arn, re-registers) a container instance
// with a client's key, as an agent does.
func registerAs(ctx context.Context, c *ecs.Client, zone string, arn *string) (string, error) {
	out, err := c.RegisterContainerInstance(ctx, &ecs.RegisterContainerInstanceInput{
		ContainerInstanceArn:     arn,
		InstanceIdentityDocument: aws.String(`{"availabilityZone":"` + zone + `"}`),
		TotalResources: []ecstypes.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1024}},
		Attributes: []ecstypes.Attribute{{Name: aws.String("ecs.capability.efs")}}})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ContainerInstance.ContainerInstanceArn), nil
}

// A server open on loopback (no keys) answers requests addressed to an IP
// address or localhost only: a web page whose own name was made to resolve
// to it (DNS rebinding) cannot call the API.
func TestOpenServerRefusesOtherNames(t *testing.T) {
	e := newEnv(t)
	for host, want := range map[string]int{"rebound.example:7440": http.StatusForbidden, "localhost": http.StatusOK, "127.0.0.1": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.Endpoint()+"/", strings.NewReader("{}"))
		req.Host = host
		req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
