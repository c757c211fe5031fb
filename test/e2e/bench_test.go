package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/server"
)

var benchOnce struct {
	sync.Once
	e  *env
	td string
}

// benchEnv is one embedded server with 1,000 simulated instances, shared by
// the benchmarks of a run so that they measure side by side.
func benchEnv(b *testing.B) (*env, string) {
	benchOnce.Do(func() {
		t := &testing.T{}
		dir, err := os.MkdirTemp("", "berth-bench-")
		if err != nil {
			b.Fatal(err)
		}
		// Shared by every benchmark of the run; it ends with the process.
		s, err := server.Start(context.Background(), server.Config{DataDir: dir, Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			LeaseTTL: time.Hour}) // the simulated instances send no heartbeats
		if err != nil {
			b.Fatal(err)
		}
		e := &env{t: t, srv: s, ecs: client(s.Endpoint(), "k", "s"), ctx: context.Background()}
		if _, err := e.ecs.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("bench")}); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				_, err := e.ecs.RegisterContainerInstance(e.ctx, &ecs.RegisterContainerInstanceInput{
					Cluster:                  aws.String("bench"),
					InstanceIdentityDocument: aws.String(fmt.Sprintf(`{"availabilityZone":"us-east-1%c","instanceType":"m5.large"}`, 'a'+i%3)),
					TotalResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1 << 20},
						{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1 << 30}},
				})
				if err != nil {
					panic(err)
				}
			}(i)
		}
		wg.Wait()
		out, err := e.ecs.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("bench"),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Cpu: 16, Memory: aws.Int32(32)}}})
		if err != nil {
			b.Fatal(err)
		}
		benchOnce.e, benchOnce.td = e, aws.ToString(out.TaskDefinition.TaskDefinitionArn)
	})
	if benchOnce.e == nil {
		b.Fatal("bench setup failed")
	}
	return benchOnce.e, benchOnce.td
}

// BenchmarkRunTask commits tasks end to end: SDK client, HTTP, validation,
// scheduler over 1,000 instances with memberOf and spread+binpack, and the
// plan applier's etcd transaction, ten tasks per call, 8 callers at once.
func BenchmarkRunTask(b *testing.B) {
	e, td := benchEnv(b)
	var tasks atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String(td), Count: aws.Int32(10),
				PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.instance-type == m5.large")}},
				PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeSpread, Field: aws.String("attribute:ecs.availability-zone")},
					{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("memory")}}})
			if err != nil {
				b.Error(err)
				return
			}
			tasks.Add(int64(len(out.Tasks)))
		}
	})
	b.ReportMetric(float64(tasks.Load())/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEtcdTxn is the baseline: raw guarded transactions on the same
// embedded etcd, each the shape of one placement commit (compare one key's
// revision, put one 2 KiB instance record and ten 2 KiB task records).
func BenchmarkEtcdTxn(b *testing.B) {
	e, _ := benchEnv(b)
	cli := e.srv.Client()
	val := string(make([]byte, 2048))
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := fmt.Sprintf("/bench/instance/%d", i%1000)
			ops := []clientv3.Op{clientv3.OpPut(key, val)}
			for j := 0; j < 10; j++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("/bench/task/%d-%d", i, j), val))
			}
			if _, err := cli.Txn(e.ctx).If(clientv3.Compare(clientv3.Version(key), "<", int64(1<<40))).Then(ops...).Commit(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "txn/s")
	b.ReportMetric(10*float64(n.Load())/b.Elapsed().Seconds(), "task-puts/s")
}
