package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/server"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// TestTaskCountsFollowTasks: whatever order of reports agents send
// (STOPPING and DEPROVISIONING before STOPPED, RUNNING skipped, a StopTask
// in between), each instance's and the cluster's running and pending
// counts equal what the task records say, and nothing is counted once all
// tasks stopped. Counts left wrong in etcd are corrected when a server
// starts.
func TestTaskCountsFollowTasks(t *testing.T) {
	dir := t.TempDir()
	s := start(t, func(c *server.Config) { c.DataDir = dir })
	e := &env{t: t, srv: s, ecs: client(s.Endpoint(), "k", "s"), ctx: context.Background()}
	e.createCluster("counts")
	for i := 0; i < 2; i++ {
		e.registerInstance("counts", "z1", 4096, 8192)
	}
	td := e.registerSimple("counts", 64)
	var tasks []string
	for len(tasks) < 20 {
		out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("counts"), TaskDefinition: aws.String(td), Count: aws.Int32(10)})
		if err != nil || len(out.Tasks) != 10 {
			t.Fatalf("run: %v %+v", err, out)
		}
		for _, tk := range out.Tasks {
			tasks = append(tasks, aws.ToString(tk.TaskArn))
		}
	}
	check := func(when string) {
		t.Helper()
		d, err := e.ecs.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String("counts"), Tasks: tasks})
		if err != nil {
			t.Fatal(err)
		}
		type counts struct{ running, pending int32 }
		want := map[string]*counts{}
		var all counts
		for _, tk := range d.Tasks {
			arn := aws.ToString(tk.ContainerInstanceArn)
			if want[arn] == nil {
				want[arn] = &counts{}
			}
			switch aws.ToString(tk.LastStatus) {
			case "STOPPED":
			case "PROVISIONING", "PENDING", "ACTIVATING":
				want[arn].pending++
				all.pending++
			default:
				want[arn].running++
				all.running++
			}
		}
		list, err := e.ecs.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("counts")})
		if err != nil {
			t.Fatal(err)
		}
		ci, err := e.ecs.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("counts"), ContainerInstances: list.ContainerInstanceArns})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ci.ContainerInstances {
			w := want[aws.ToString(in.ContainerInstanceArn)]
			if w == nil {
				w = &counts{}
			}
			if in.RunningTasksCount != w.running || in.PendingTasksCount != w.pending {
				t.Fatalf("%s: instance counts running %d pending %d, its tasks say %d and %d", when, in.RunningTasksCount, in.PendingTasksCount, w.running, w.pending)
			}
		}
		cl, err := e.ecs.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{Clusters: []string{"counts"}})
		if err != nil {
			t.Fatal(err)
		}
		if c := cl.Clusters[0]; c.RunningTasksCount != all.running || c.PendingTasksCount != all.pending {
			t.Fatalf("%s: cluster counts running %d pending %d, tasks say %d and %d", when, c.RunningTasksCount, c.PendingTasksCount, all.running, all.pending)
		}
	}
	check("after placement")
	paths := [][]string{
		{"PENDING", "RUNNING", "STOPPING", "DEPROVISIONING", "STOPPED"},
		{"RUNNING", "DEACTIVATING", "STOPPING", "STOPPED"},
		{"PENDING", "STOPPED"},
		{"PENDING", "STOPPING", "STOPPED"},
		{"RUNNING", "stop", "STOPPING", "STOPPED"},
		{"stop", "STOPPED"},
		{"RUNNING", "STOPPED"},
	}
	rng := rand.New(rand.NewSource(1))
	step := make([]int, len(tasks))
	path := make([][]string, len(tasks))
	for i := range tasks {
		path[i] = paths[rng.Intn(len(paths))]
	}
	for moved := true; moved; {
		moved = false
		for _, i := range rng.Perm(len(tasks)) {
			if step[i] == len(path[i]) || rng.Intn(2) == 0 {
				continue
			}
			moved = true
			st := path[i][step[i]]
			step[i]++
			var err error
			if st == "stop" {
				_, err = e.ecs.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: aws.String("counts"), Task: aws.String(tasks[i])})
			} else {
				_, err = e.ecs.SubmitTaskStateChange(e.ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("counts"), Task: aws.String(tasks[i]), Status: aws.String(st)})
			}
			if err != nil {
				t.Fatalf("task %d %s: %v", i, st, err)
			}
			check(fmt.Sprintf("task %d to %s", i, st))
		}
	}

	// Counts a former version left wrong are corrected at start.
	rec := &state.InstanceRecord{}
	list, err := e.ecs.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("counts")})
	if err != nil {
		t.Fatal(err)
	}
	id := list.ContainerInstanceArns[0]
	key := state.InstanceKey("counts", id[strings.LastIndex(id, "/")+1:])
	resp, err := s.Client().Get(e.ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read %s: %v", key, err)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
		t.Fatal(err)
	}
	rec.RunningTasksCount = spec.I32(57)
	if _, err := s.Client().Txn(e.ctx).Then(clientv3.OpPut(key, state.Marshal(rec))).Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = start(t, func(c *server.Config) { c.DataDir = dir })
	e.ecs = client(s.Endpoint(), "k", "s")
	check("after a restart with a wrong stored count")
}
