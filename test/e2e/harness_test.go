// Package e2e drives a real Berth control plane (embedded etcd, HTTP) with
// the official AWS SDK for Go v2 and the AWS CLI.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/cli"
	"github.com/berth-project/berth/internal/server"
)

type env struct {
	t   *testing.T
	srv *server.Server
	ecs *ecs.Client
	ctx context.Context
}

func start(t testing.TB, mod ...func(*server.Config)) *server.Server {
	t.Helper()
	dir := t.TempDir()
	// Runs after the server is closed and before the test's temporary
	// directory is removed: a mount a late task start left under it would
	// otherwise wait for the closed server (minutes) and fail the removal.
	t.Cleanup(func() { unmountUnder(filepath.Dir(dir)) })
	cfg := server.Config{DataDir: dir, Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(endpoint, key, secret string) *ecs.Client {
	return ecs.New(ecs.Options{
		HTTPClient:       cli.NewHTTPClient(),
		BaseEndpoint:     aws.String(endpoint),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func newEnv(t *testing.T, mod ...func(*server.Config)) *env {
	s := start(t, mod...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, srv: s, ecs: client(s.Endpoint(), "test", "test"), ctx: ctx}
}

// registerInstance registers a simulated container instance through the API.
func (e *env) registerInstance(cluster, zone string, cpu, mem int32, attrs ...types.Attribute) string {
	e.t.Helper()
	attrs = append(attrs,
		types.Attribute{Name: aws.String("com.amazonaws.ecs.capability.docker-remote-api.1.25")},
		types.Attribute{Name: aws.String("ecs.capability.efs")},
		types.Attribute{Name: aws.String("ecs.capability.efsAuth")},
		types.Attribute{Name: aws.String("ecs.capability.container-health-check")},
		types.Attribute{Name: aws.String("ecs.capability.container-ordering")},
	)
	out, err := e.ecs.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{
		Cluster:                  aws.String(cluster),
		InstanceIdentityDocument: aws.String(fmt.Sprintf(`{"availabilityZone":%q,"instanceType":"m5.large"}`, zone)),
		TotalResources: []types.Resource{
			{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: cpu},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: mem},
		},
		Attributes: attrs,
	})
	if err != nil {
		e.t.Fatalf("register instance: %v", err)
	}
	return aws.ToString(out.ContainerInstance.ContainerInstanceArn)
}

func (e *env) createCluster(name string) {
	e.t.Helper()
	if _, err := e.ecs.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String(name)}); err != nil {
		e.t.Fatalf("create cluster: %v", err)
	}
}

func (e *env) registerSimple(family string, mem int32, ports ...int32) string {
	e.t.Helper()
	c := types.ContainerDefinition{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(mem)}
	for _, p := range ports {
		c.PortMappings = append(c.PortMappings, types.PortMapping{ContainerPort: aws.Int32(p), HostPort: aws.Int32(p)})
	}
	out, err := e.ecs.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), ContainerDefinitions: []types.ContainerDefinition{c},
	})
	if err != nil {
		e.t.Fatalf("register task definition: %v", err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

// TestMain runs the tests, or, in a child process a test started, the part
// that must run in a process of its own.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BERTH_TEST_WRITER"); dir != "" {
		os.Exit(writerMain(dir))
	}
	code := m.Run()
	if berthBuild.path != "" {
		os.RemoveAll(filepath.Dir(berthBuild.path))
	}
	os.Exit(code)
}

// unmountUnder lazily unmounts every mount below root.
func unmountUnder(root string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- { // the most recent (innermost) first
		f := strings.Fields(lines[i])
		if len(f) > 1 && strings.HasPrefix(f[1], root+"/") {
			exec.Command("umount", "-l", f[1]).Run()
		}
	}
}
