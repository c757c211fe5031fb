package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/berth-project/berth/internal/server"
)

func connected(t *testing.T, e *env, cluster, inst string) bool {
	d, err := e.ecs.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String(cluster), ContainerInstances: []string{inst}})
	if err != nil || len(d.ContainerInstances) != 1 {
		t.Fatalf("describe: %v %+v", err, d)
	}
	return d.ContainerInstances[0].AgentConnected
}

// TestAgentLease: an agent that stops heartbeating loses its lease, shows
// agentConnected=false and gets no tasks (reason AGENT); a heartbeat
// reconnects it.
func TestAgentLease(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.LeaseTTL = 2 * time.Second })
	e.createCluster("l")
	inst := e.registerInstance("l", "z", 1024, 1024)
	td := e.registerSimple("l", 64)
	kept := e.registerInstance("l", "z", 1024, 1024)
	if !connected(t, e, "l", inst) {
		t.Fatal("a freshly registered instance is connected")
	}
	deadline := time.Now().Add(15 * time.Second)
	for connected(t, e, "l", inst) {
		if time.Now().After(deadline) {
			t.Fatal("lease never expired")
		}
		if resp, err := httpPost(e.srv.Endpoint()+"/berth/v1/agent/heartbeat", "", `{"cluster":"l","containerInstance":"`+kept+`"}`); err != nil || !strings.Contains(resp, "ACK") {
			t.Fatalf("heartbeat: %v %s", err, resp)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !connected(t, e, "l", kept) {
		t.Fatal("heartbeats did not keep the other instance connected")
	}
	out, err := e.ecs.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String("l"), TaskDefinition: aws.String(td), ContainerInstances: []string{inst}})
	if err != nil || len(out.Tasks) != 0 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != "AGENT" {
		t.Fatalf("start on disconnected instance: %v %+v", err, out)
	}
	if resp, err := httpPost(e.srv.Endpoint()+"/berth/v1/agent/heartbeat", "", `{"cluster":"l","containerInstance":"`+inst+`"}`); err != nil || !strings.Contains(resp, "ACK") {
		t.Fatalf("heartbeat: %v %s", err, resp)
	}
	if !connected(t, e, "l", inst) {
		t.Fatal("heartbeat did not reconnect the agent")
	}
}
