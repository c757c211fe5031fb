package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

var berthBuild struct {
	sync.Mutex
	path string
}

// buildBerth builds the berth binary once per test run.
func buildBerth(t testing.TB) string {
	t.Helper()
	berthBuild.Lock()
	defer berthBuild.Unlock()
	if berthBuild.path != "" {
		return berthBuild.path
	}
	dir, err := os.MkdirTemp("", "berth-test-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/berth")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	berthBuild.path = bin
	return bin
}

func startProcess(t testing.TB, bin, dir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "server", "--data-dir", dir, "--listen", addr, "--agent-lease-ttl", "10m")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := client("http://"+addr, "k", "s")
	for i := 0; i < 300; i++ {
		if _, err := c.ListClusters(context.Background(), &ecs.ListClustersInput{}); err == nil {
			return cmd
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatal("server did not come up")
	return nil
}

// TestKill9DuringRunTaskStorm kills the server with SIGKILL while clients
// run tasks concurrently, restarts it, retries the unacknowledged calls with
// their clientTokens, and checks that every acknowledged task exists exactly
// once and that no instance's reservations exceed its capacity or disagree
// with the tasks placed on it.
func TestKill9DuringRunTaskStorm(t *testing.T) {
	bin := buildBerth(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startProcess(t, bin, dir, addr)
	defer func() { srv.Process.Kill(); srv.Wait() }()
	ctx := context.Background()
	c := client("http://"+addr, "k", "s")
	e := &env{t: t, ecs: c, ctx: ctx}
	e.createCluster("storm")
	const instances, capacity = 20, 1 << 16
	for i := 0; i < instances; i++ {
		e.registerInstance("storm", fmt.Sprintf("z%d", i%3), 4096, capacity)
	}
	td := e.registerSimple("storm", 64)

	type call struct {
		token string
		count int32
		acked []string
	}
	var mu sync.Mutex
	var calls []*call
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				cl := &call{token: fmt.Sprintf("w%d-%d", w, n), count: int32(1 + n%3)}
				mu.Lock()
				calls = append(calls, cl)
				mu.Unlock()
				out, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("storm"), TaskDefinition: aws.String(td), Count: aws.Int32(cl.count), ClientToken: aws.String(cl.token)})
				if err != nil {
					return // the server died under us
				}
				for _, tk := range out.Tasks {
					cl.acked = append(cl.acked, aws.ToString(tk.TaskArn))
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	close(stop)
	wg.Wait()

	acked := 0
	for _, cl := range calls {
		acked += len(cl.acked)
	}
	if acked < 50 {
		t.Fatalf("only %d tasks acknowledged before the kill; the storm was too small to mean anything", acked)
	}
	srv = startProcess(t, bin, dir, addr)

	// Every acknowledged task exists; a retry with the same token returns
	// the same tasks rather than new ones.
	seen := map[string]bool{}
	for _, cl := range calls {
		out, err := c.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("storm"), TaskDefinition: aws.String(td), Count: aws.Int32(cl.count), ClientToken: aws.String(cl.token)})
		if err != nil {
			t.Fatalf("retry %s: %v", cl.token, err)
		}
		var arns []string
		for _, tk := range out.Tasks {
			arns = append(arns, aws.ToString(tk.TaskArn))
			if seen[arns[len(arns)-1]] {
				t.Fatalf("task %s returned for two tokens", arns[len(arns)-1])
			}
			seen[arns[len(arns)-1]] = true
		}
		if cl.acked != nil && fmt.Sprint(arns) != fmt.Sprint(cl.acked) {
			t.Fatalf("token %s: acknowledged %v, now %v", cl.token, cl.acked, arns)
		}
	}
	var all []string
	p := ecs.NewListTasksPaginator(c, &ecs.ListTasksInput{Cluster: aws.String("storm")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.TaskArns...)
	}
	if len(all) != len(seen) {
		t.Fatalf("%d tasks stored, %d reachable through tokens: a placement committed without its token", len(all), len(seen))
	}
	// Reservations agree with the tasks and never exceed capacity.
	used, count := map[string]int{}, map[string]int32{}
	for i := 0; i < len(all); i += 100 {
		d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("storm"), Tasks: all[i:min(i+100, len(all))]})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range d.Tasks {
			m, _ := strconv.Atoi(aws.ToString(tk.Memory))
			used[aws.ToString(tk.ContainerInstanceArn)] += m
			count[aws.ToString(tk.ContainerInstanceArn)]++
		}
	}
	list, err := c.ListContainerInstances(ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("storm")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeContainerInstances(ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("storm"), ContainerInstances: list.ContainerInstanceArns})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range d.ContainerInstances {
		remaining := resource(in.RemainingResources, "MEMORY")
		arn := aws.ToString(in.ContainerInstanceArn)
		if remaining < 0 || capacity-remaining != used[arn] {
			t.Fatalf("instance %s: remaining %d, tasks use %d of %d", arn, remaining, used[arn], capacity)
		}
		if n := in.RunningTasksCount + in.PendingTasksCount; n != count[arn] {
			t.Fatalf("instance %s counts %d tasks, holds %d", arn, n, count[arn])
		}
	}
	t.Logf("%d RunTask calls, %d tasks acknowledged before SIGKILL, %d tasks stored after restart", len(calls), acked, len(all))
}

func resource(rs []types.Resource, name string) int {
	for _, r := range rs {
		if aws.ToString(r.Name) == name {
			return int(r.IntegerValue)
		}
	}
	return -1
}
