package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-project/berth/internal/server"
)

// awsCLI is Debian's AWS CLI v2 (package awscli).
const awsCLI = "/usr/bin/aws"

func runAWS(t *testing.T, endpoint string, args ...string) (map[string]any, string) {
	t.Helper()
	if _, err := os.Stat(awsCLI); err != nil {
		t.Fatalf("the AWS CLI v2 is required at %s (Debian package awscli): %v", awsCLI, err)
	}
	cmd := exec.Command(awsCLI, append(args, "--endpoint-url", endpoint, "--output", "json", "--no-cli-pager")...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=berth", "AWS_SECRET_ACCESS_KEY=berth", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, string(out)
	}
	var m map[string]any
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("aws %v: bad JSON %s", args, out)
		}
	}
	return m, ""
}

func TestAWSCLI(t *testing.T) {
	s := start(t)
	ep := s.Endpoint()
	if _, e := runAWS(t, ep, "ecs", "create-cluster", "--cluster-name", "cli"); e != "" {
		t.Fatal(e)
	}
	dir := t.TempDir()
	// Debian's AWS CLI 2.9 predates configuredAtLaunch; the SDK test covers it.
	def := map[string]any{
		"family": "cli-app",
		"containerDefinitions": []any{map[string]any{"name": "app", "image": "busybox", "memory": 64, "essential": true,
			"mountPoints": []any{map[string]any{"sourceVolume": "shared", "containerPath": "/shared"}, map[string]any{"sourceVolume": "db", "containerPath": "/db"}}}},
		"volumes": []any{
			map[string]any{"name": "host", "host": map[string]any{"sourcePath": "/srv/host"}},
			map[string]any{"name": "db", "dockerVolumeConfiguration": map[string]any{"scope": "shared", "autoprovision": true, "driver": "local", "labels": map[string]any{"a": "b"}}},
			map[string]any{"name": "shared", "efsVolumeConfiguration": map[string]any{"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "authorizationConfig": map[string]any{"accessPointId": "fsap-1", "iam": "ENABLED"}}},
			map[string]any{"name": "win", "fsxWindowsFileServerVolumeConfiguration": map[string]any{"fileSystemId": "fs-2", "rootDirectory": `\data`, "authorizationConfig": map[string]any{"credentialsParameter": "arn:aws:ssm:us-east-1:000000000000:parameter/x", "domain": "example.com"}}},
		},
	}
	b, _ := json.Marshal(def)
	file := filepath.Join(dir, "td.json")
	os.WriteFile(file, b, 0o644)
	for i := 0; i < 3; i++ {
		if _, e := runAWS(t, ep, "ecs", "register-task-definition", "--cli-input-json", "file://"+file); e != "" {
			t.Fatal(e)
		}
	}
	out, e := runAWS(t, ep, "ecs", "describe-task-definition", "--task-definition", "cli-app:2")
	if e != "" {
		t.Fatal(e)
	}
	td := out["taskDefinition"].(map[string]any)
	gotVols, _ := json.Marshal(td["volumes"])
	wantVols, _ := json.Marshal(def["volumes"])
	if string(gotVols) != string(wantVols) {
		t.Fatalf("volumes do not round-trip through the CLI:\n got %s\nwant %s", gotVols, wantVols)
	}
	// The CLI follows nextToken itself; --page-size forces several pages.
	out, e = runAWS(t, ep, "ecs", "list-task-definitions", "--page-size", "1")
	if e != "" {
		t.Fatal(e)
	}
	if arns := out["taskDefinitionArns"].([]any); len(arns) != 3 {
		t.Fatalf("paginated list: %v", arns)
	}
	out, e = runAWS(t, ep, "ecs", "list-task-definitions", "--max-items", "2")
	if e != "" || len(out["taskDefinitionArns"].([]any)) != 2 || out["NextToken"] == nil {
		t.Fatalf("max-items page: %v %s", out, e)
	}
	if _, e := runAWS(t, ep, "ecs", "deregister-task-definition", "--task-definition", "cli-app:1"); e != "" {
		t.Fatal(e)
	}
	out, _ = runAWS(t, ep, "ecs", "list-task-definitions", "--status", "INACTIVE")
	if arns := out["taskDefinitionArns"].([]any); len(arns) != 1 || !strings.HasSuffix(arns[0].(string), "task-definition/cli-app:1") {
		t.Fatalf("inactive list: %v", arns)
	}
	_, e = runAWS(t, ep, "ecs", "register-task-definition", "--family", "x", "--container-definitions", `[{"name":"a","image":"b","memory":8,"mountPoints":[{"sourceVolume":"nope","containerPath":"/x"}]}]`)
	if !strings.Contains(e, "(ClientException)") || !strings.Contains(e, "Unknown volume 'nope'.") {
		t.Fatalf("CLI error output: %s", e)
	}
}

func TestSigV4RequiredOffLoopback(t *testing.T) {
	s := start(t, func(c *server.Config) {
		c.Credentials = map[string]string{"AKIDBERTH": "s3cr3t"}
		c.RequireAuth = true
	})
	ctx := context.Background()
	good := client(s.Endpoint(), "AKIDBERTH", "s3cr3t")
	if _, err := good.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("signed")}); err != nil {
		t.Fatalf("signed request refused: %v", err)
	}
	_, err := client(s.Endpoint(), "AKIDBERTH", "wrong").ListClusters(ctx, &ecs.ListClustersInput{})
	if code, _ := apiCode(err); code != "InvalidSignatureException" {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = client(s.Endpoint(), "AKIDOTHER", "s3cr3t").ListClusters(ctx, &ecs.ListClustersInput{})
	if code, _ := apiCode(err); code != "UnrecognizedClientException" {
		t.Fatalf("unknown key: %v", err)
	}
	// An unsigned request is refused too.
	resp, err := httpPost(s.Endpoint(), "ListClusters", "{}")
	if err != nil || !strings.Contains(resp, "UnrecognizedClientException") {
		t.Fatalf("unsigned: %v %s", err, resp)
	}
	// The AWS CLI signs with the configured key.
	cmd := exec.Command(awsCLI, "ecs", "list-clusters", "--endpoint-url", s.Endpoint(), "--output", "json")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDBERTH", "AWS_SECRET_ACCESS_KEY=s3cr3t", "AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "cluster/signed") {
		t.Fatalf("aws cli signed: %v %s", err, out)
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestExternalEtcd runs the server against an etcd it did not start
// (Debian's etcd-server), then a second server on the same etcd sees the
// same state: servers are stateless over etcd.
func TestExternalEtcd(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd (Debian package etcd-server) is required: %v", err)
	}
	client, peer := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--name", "ext",
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "ext=http://"+peer)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var s1 *server.Server
	deadline := time.Now().Add(30 * time.Second)
	for {
		s1, err = server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", EtcdEndpoints: []string{"http://" + client}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server on external etcd: %v", err)
	}
	defer s1.Close()
	e := &env{t: t, srv: s1, ecs: clientFor(s1), ctx: context.Background()}
	e.createCluster("ext")
	e.registerInstance("ext", "z", 1024, 1024)
	td := e.registerSimple("ext", 128)
	if out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("ext"), TaskDefinition: aws.String(td)}); err != nil || len(out.Tasks) != 1 {
		t.Fatalf("run on external etcd: %v %+v", err, out)
	}
	s2, err := server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", EtcdEndpoints: []string{"http://" + client}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	out, err := clientFor(s2).ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String("ext")})
	if err != nil || len(out.TaskArns) != 1 {
		t.Fatalf("second server view: %v %+v", err, out)
	}
}

func clientFor(s *server.Server) *ecs.Client { return client(s.Endpoint(), "test", "test") }

// TestRestartKeepsState restarts an embedded server on the same data dir.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{DataDir: dir, Listen: "127.0.0.1:0"}
	s, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: s, ecs: clientFor(s), ctx: context.Background()}
	e.createCluster("keep")
	e.registerInstance("keep", "z", 1024, 1024)
	e.registerSimple("keep", 256)
	run, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("keep"), TaskDefinition: aws.String("keep")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatal(err, run)
	}
	s.Close()
	s, err = server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Close()
	c := clientFor(s)
	d, err := c.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String("keep"), Tasks: []string{aws.ToString(run.Tasks[0].TaskArn)}})
	if err != nil || len(d.Tasks) != 1 {
		t.Fatalf("task lost across restart: %v %+v", err, d)
	}
	cl, err := c.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{Clusters: []string{"keep"}})
	if err != nil || len(cl.Clusters) != 1 || cl.Clusters[0].RegisteredContainerInstancesCount != 1 || cl.Clusters[0].PendingTasksCount != 1 {
		t.Fatalf("cluster after restart: %v %+v", err, cl)
	}
	// Reservations survived: a second 1000 MiB task does not fit next to the first.
	e2 := &env{t: t, ecs: c, ctx: e.ctx}
	e2.registerSimple("big", 1000)
	out, err := c.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("keep"), TaskDefinition: aws.String("big")})
	if err != nil || len(out.Tasks) != 0 || aws.ToString(out.Failures[0].Reason) != "RESOURCE:MEMORY" {
		t.Fatalf("reservations after restart: %v %+v", err, out)
	}
}
