package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/blob/s3/s3test"
)

// threeServers starts three `berth server` processes whose members form
// one etcd cluster.
func threeServers(b testing.TB, args ...string) (string, []*serverProc) {
	bin := buildBerth(b)
	s3srv := s3test.Start(b, "berth")
	store := "s3://berth/bench?endpoint=" + s3srv.Endpoint + "&path-style=true"
	procs := []*serverProc{startServerProc(b, bin, "s1", store, args...)}
	for _, name := range []string{"s2", "s3"} {
		procs = append(procs, startServerProc(b, bin, name, store, append(args, "--join", procs[0].endpoint, "--token", memberToken(b, bin, procs[0].endpoint))...))
	}
	return bin, procs
}

// BenchmarkLeaderKill measures what API clients see when the server whose
// etcd member leads is killed (-9): four clients each create clusters one
// after another, every call with a 10 s timeout, a failed call tried at
// once on the next server. A client's unavailability is the time from
// the kill to its first success after it (its call in flight at the kill
// included). Five rounds; the killed server restarts between rounds.
func BenchmarkLeaderKill(b *testing.B) {
	bin, procs := threeServers(b)
	clients := make([]*ecs.Client, len(procs))
	for i, p := range procs {
		clients[i] = client(p.endpoint, "k", "s")
	}
	var samples []time.Duration
	var seq atomic.Int64
	for i := 0; i < b.N; i++ {
		for round := 0; round < 5; round++ {
			leader := leaderOf(b, bin, procs)
			var killedAt atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			var gaps []time.Duration
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					at := w
					for {
						select {
						case <-stop:
							return
						default:
						}
						issued := time.Now().UnixNano()
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err := clients[at%3].CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String(fmt.Sprintf("c%d", seq.Add(1)))})
						cancel()
						if err != nil {
							at++ // the next server, at once
							continue
						}
						// The first success of a call made after the kill (a
						// call in flight at the kill delays it).
						if k := killedAt.Load(); k != 0 && issued >= k {
							mu.Lock()
							gaps = append(gaps, time.Since(time.Unix(0, k)))
							mu.Unlock()
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}
			time.Sleep(time.Second)
			killedAt.Store(time.Now().UnixNano())
			leader.cmd.Process.Signal(syscall.SIGKILL)
			leader.cmd.Wait()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				close(stop)
				<-done
				b.Fatal("clients did not get through within 60 s of the kill")
			}
			sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
			worst := gaps[len(gaps)-1]
			samples = append(samples, worst)
			b.Logf("round %d: killed %s; the four clients got through after %v", round, leader.name, gaps)
			leader.restart(b)
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				healthy := 0
				for _, p := range procs {
					if resp, err := http.Get(p.endpoint + "/healthz"); err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							healthy++
						}
					}
				}
				if healthy == 3 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("the restarted server did not rejoin")
				}
			}
			time.Sleep(2 * time.Second) // etcd adds no member, but let the restarted one catch up
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(samples[len(samples)/2].Seconds(), "median-s")
	b.ReportMetric(samples[len(samples)-1].Seconds(), "max-s")
}

// BenchmarkRunTaskServers compares RunTask (10 tasks a call, 8 callers)
// through three servers over a three-member etcd with one server over a
// single member, beside raw guarded etcd transactions of a placement's
// shape on each cluster (through a member's own client URL).
func BenchmarkRunTaskServers(b *testing.B) {
	bin := buildBerth(b)
	// The simulated instances send no heartbeats: a lease outlasts the run.
	one := startServerProc(b, bin, "solo", "file://"+b.TempDir(), "--agent-lease-ttl", "1h")
	_, three := threeServers(b, "--agent-lease-ttl", "1h")
	for _, c := range []struct {
		name  string
		procs []*serverProc
	}{{"one-server", []*serverProc{one}}, {"three-servers", three}} {
		b.Run(c.name, func(b *testing.B) {
			var clients []*ecs.Client
			for _, p := range c.procs {
				clients = append(clients, client(p.endpoint, "k", "s"))
			}
			if _, err := clients[0].CreateCluster(context.Background(), &ecs.CreateClusterInput{ClusterName: aws.String("bench")}); err != nil {
				b.Fatal(err)
			}
			benchInstances(b, clients[0], "bench", 100)
			td := registerBenchTD(b, clients[0])
			var tasks atomic.Int64
			var calls atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					cl := clients[int(calls.Add(1))%len(clients)]
					out, err := cl.RunTask(context.Background(), &ecs.RunTaskInput{Cluster: aws.String("bench"), TaskDefinition: aws.String(td), Count: aws.Int32(10)})
					if err != nil {
						b.Error(err)
						return
					}
					tasks.Add(int64(len(out.Tasks)))
				}
			})
			b.ReportMetric(float64(tasks.Load())/b.Elapsed().Seconds(), "tasks/s")
			b.StopTimer()
			b.ReportMetric(rawTxnRate(b, c.procs[0]), "etcd-txn/s")
		})
	}
}

// rawTxnRate runs guarded transactions of a placement commit's shape
// (compare one key, put an instance record and ten task records of 2 KiB)
// for 3 s through a member's client URL, 8 at a time.
func rawTxnRate(b *testing.B, p *serverProc) float64 {
	_, port := p.member(b)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", port)}, DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	val := string(make([]byte, 2048))
	var n atomic.Int64
	end := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				i := n.Add(1)
				key := fmt.Sprintf("/bench/instance/%d", i%1000)
				ops := []clientv3.Op{clientv3.OpPut(key, val)}
				for j := 0; j < 10; j++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("/bench/task/%d-%d", i, j), val))
				}
				if _, err := cli.Txn(context.Background()).If(clientv3.Compare(clientv3.Version(key), "<", int64(1<<40))).Then(ops...).Commit(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / 3
}

// benchInstances registers n simulated instances with room for any number
// of tasks.
func benchInstances(b *testing.B, c *ecs.Client, cluster string, n int) {
	for i := 0; i < n; i++ {
		_, err := c.RegisterContainerInstance(context.Background(), &ecs.RegisterContainerInstanceInput{
			Cluster:                  aws.String(cluster),
			InstanceIdentityDocument: aws.String(fmt.Sprintf(`{"availabilityZone":"us-east-1%c","instanceType":"m5.large"}`, 'a'+i%3)),
			TotalResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1 << 20},
				{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1 << 30}},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func registerBenchTD(b *testing.B, c *ecs.Client) string {
	out, err := c.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{Family: aws.String("bench"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Cpu: 16, Memory: aws.Int32(32)}}})
	if err != nil {
		b.Fatal(err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}
