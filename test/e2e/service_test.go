package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/server"
)

func (c *cluster) service(name string) types.Service {
	c.t.Helper()
	out, err := c.ecs.DescribeServices(c.ctx, &ecs.DescribeServicesInput{Services: []string{name}})
	if err != nil || len(out.Services) != 1 {
		c.t.Fatalf("describe service: %v %+v", err, out)
	}
	return out.Services[0]
}

func (c *cluster) waitService(name string, what string, ok func(types.Service) bool) types.Service {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := c.service(name)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			var ev []string
			for _, e := range s.Events {
				ev = append(ev, aws.ToString(e.Message))
			}
			c.t.Fatalf("service %s: %s never happened; running %d pending %d; events:\n%s", name, what, s.RunningCount, s.PendingCount, strings.Join(ev, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func hasEvent(s types.Service, substr string) bool {
	for _, e := range s.Events {
		if strings.Contains(aws.ToString(e.Message), substr) {
			return true
		}
	}
	return false
}

// TestServiceSpreadsAndReplacesLostTasks: three agents in three zones; a
// service of 3 spreads 1/1/1; one agent stops (its lease lapses) and its
// task is replaced on the others after the grace; when the agent comes
// back its replaced container is stopped, with no duplicate.
func TestServiceSpreadsAndReplacesLostTasks(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.LeaseTTL = 2 * time.Second; cfg.LostInstanceGrace = 3 * time.Second })
	var agents []*runningAgent
	for _, z := range []string{"zone-a", "zone-b", "zone-c"} {
		agents = append(agents, c.addAgent(z, ""))
	}
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("web"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("trap 'exit 0' TERM; sleep 3600 & wait")}}})
	if _, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(3)})
	if code, msg := apiCode(err); code != "InvalidParameterException" || msg != "Creation of service was not idempotent." {
		t.Fatalf("duplicate service: %s %q", code, msg)
	}
	s := c.waitService("web", "steady state with 3 running", func(s types.Service) bool {
		return s.RunningCount == 3 && hasEvent(s, "has reached a steady state.")
	})
	if !hasEvent(s, "(service web) has started 3 tasks:") {
		t.Fatalf("events: %+v", s.Events)
	}
	zones := map[string]int{}
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("web")})
	d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: list.TaskArns})
	var lostTask string
	for _, tk := range d.Tasks {
		zones[aws.ToString(tk.AvailabilityZone)]++
		if aws.ToString(tk.ContainerInstanceArn) == agents[0].arn {
			lostTask = aws.ToString(tk.TaskArn)
		}
	}
	if len(zones) != 3 {
		t.Fatalf("not spread 1/1/1: %v", zones)
	}
	before := taskContainers(t, lostTask)

	killed := time.Now()
	c.stopAgent(agents[0])
	c.waitService("web", "replacement of the lost task", func(s types.Service) bool {
		return hasEvent(s, "running tasks on lost container instances") && s.RunningCount == 3
	})
	t.Logf("replaced %s after the agent stopped", time.Since(killed).Round(100*time.Millisecond))
	if time.Since(killed) > 2*time.Second+3*time.Second+10*time.Second {
		t.Fatalf("replacement took %s", time.Since(killed))
	}
	d, _ = c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{lostTask}})
	if aws.ToString(d.Tasks[0].LastStatus) != "STOPPED" || d.Tasks[0].StopCode != types.TaskStopCodeServiceSchedulerInitiated {
		t.Fatalf("lost task: %s %s", aws.ToString(d.Tasks[0].LastStatus), d.Tasks[0].StopCode)
	}
	// The agent comes back: the replaced task's container is stopped, not run twice.
	c.addAgent("zone-a", agents[0].dir)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec_("docker", "inspect", "-f", "{{.State.Running}}", before[0])
		if strings.TrimSpace(out) == "false" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replaced container still runs after its agent came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s := c.service("web"); s.RunningCount != 3 {
		t.Fatalf("running %d after the agent came back", s.RunningCount)
	}
	// Scale to zero and delete.
	if _, err := c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), DesiredCount: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	c.waitService("web", "scale to 0", func(s types.Service) bool { return s.RunningCount == 0 && s.PendingCount == 0 })
	if _, err := c.ecs.DeleteService(c.ctx, &ecs.DeleteServiceInput{Service: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	c.waitService("web", "INACTIVE", func(s types.Service) bool { return aws.ToString(s.Status) == "INACTIVE" })
}

// TestServiceRollingUpdateAndCircuitBreaker: an update from revision 1 to
// 2 keeps at least minimumHealthyPercent running (sampled throughout); a
// broken revision trips the circuit breaker and rolls back.
func TestServiceRollingUpdateAndCircuitBreaker(t *testing.T) {
	c := newCluster(t)
	c.addAgent("zone-a", "")
	c.addAgent("zone-b", "")
	mk := func(script string) string {
		return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("roll"), ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("app"), Command: sh(script)}}})
	}
	v1 := mk("trap 'exit 0' TERM; sleep 3600 & wait")
	v2 := mk("trap 'exit 0' TERM; sleep 3601 & wait")
	broken := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("roll"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Image: aws.String("berth-test/missing:1")}}})
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("roll"), TaskDefinition: aws.String(v1), DesiredCount: aws.Int32(4),
		DeploymentConfiguration: &types.DeploymentConfiguration{MaximumPercent: aws.Int32(150), MinimumHealthyPercent: aws.Int32(50),
			DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitService("roll", "4 running", func(s types.Service) bool { return s.RunningCount == 4 && len(s.Deployments) == 1 })
	if _, err := c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("roll"), TaskDefinition: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := c.service("roll")
		if s.RunningCount < 2 {
			t.Fatalf("running %d < minimumHealthyPercent of 4 during the update", s.RunningCount)
		}
		if s.RunningCount+s.PendingCount > 6 {
			t.Fatalf("%d tasks > maximumPercent of 4", s.RunningCount+s.PendingCount)
		}
		if len(s.Deployments) == 1 && aws.ToString(s.Deployments[0].TaskDefinition) == v2 && s.Deployments[0].RolloutState == types.DeploymentRolloutStateCompleted && s.RunningCount == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("update did not complete: %+v", s.Deployments)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("roll"), TaskDefinition: aws.String(broken)}); err != nil {
		t.Fatal(err)
	}
	s := c.waitService("roll", "circuit breaker and rollback", func(s types.Service) bool {
		return hasEvent(s, "deployment failed: tasks failed to start.") && aws.ToString(s.TaskDefinition) == v2 &&
			len(s.Deployments) == 1 && s.RunningCount == 4
	})
	if !hasEvent(s, "rolling back to task definition "+v2) {
		t.Fatalf("no rollback event: %+v", s.Events)
	}
	if !hasEvent(s, "is backing off for") {
		var msgs []string
		for _, e := range s.Events {
			msgs = append(msgs, aws.ToString(e.Message))
		}
		t.Fatalf("failed starts were retried without back-off:\n%s", strings.Join(msgs, "\n"))
	}
}

// TestDaemonService runs one task per instance, follows new instances, and
// does not take a desired count.
func TestDaemonService(t *testing.T) {
	c := newCluster(t)
	c.addAgent("zone-a", "")
	c.addAgent("zone-b", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("agentd"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("trap 'exit 0' TERM; sleep 3600 & wait")}}})
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("agentd"), TaskDefinition: aws.String(td),
		SchedulingStrategy: types.SchedulingStrategyDaemon, DesiredCount: aws.Int32(2)})
	if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, "does not support a desired count") {
		t.Fatalf("daemon with desiredCount: %s %q", code, msg)
	}
	if _, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("agentd"), TaskDefinition: aws.String(td),
		SchedulingStrategy: types.SchedulingStrategyDaemon}); err != nil {
		t.Fatal(err)
	}
	c.waitService("agentd", "one task per instance", func(s types.Service) bool { return s.RunningCount == 2 && s.DesiredCount == 2 })
	c.addAgent("zone-c", "")
	c.waitService("agentd", "a task on the new instance", func(s types.Service) bool { return s.RunningCount == 3 && s.DesiredCount == 3 })
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("agentd")})
	d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: list.TaskArns})
	seen := map[string]bool{}
	for _, tk := range d.Tasks {
		if seen[aws.ToString(tk.ContainerInstanceArn)] {
			t.Fatal("two daemon tasks on one instance")
		}
		seen[aws.ToString(tk.ContainerInstanceArn)] = true
	}
}

// TestServiceOfQuickExitsBacksOff: a service whose task runs and exits at
// once is throttled as ECS throttles it: each such task counts as failed,
// the wait before the next one grows, and a circuit breaker on the
// deployment trips.
func TestServiceOfQuickExitsBacksOff(t *testing.T) {
	c := newCluster(t)
	c.addAgent("zone-a", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("quick"), ContainerDefinitions: []types.ContainerDefinition{
		{Name: aws.String("app"), Command: sh("echo ran once")}}})
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("quick"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1),
		DeploymentConfiguration: &types.DeploymentConfiguration{MaximumPercent: aws.Int32(200), MinimumHealthyPercent: aws.Int32(0),
			DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * time.Second)
	list, err := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("quick"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil {
		t.Fatal(err)
	}
	// Back-off of 1, 2, 4 and 8 s leaves room for at most five starts in
	// 15 s; without it a task started every second or so.
	if n := len(list.TaskArns); n > 5 || n < 2 {
		t.Fatalf("%d tasks started in 15 s by a service whose task exits at once", n)
	}
	s := c.service("quick")
	if !hasEvent(s, "is backing off for") {
		t.Fatalf("no back-off event: %+v", s.Events)
	}
	if len(s.Deployments) != 1 || s.Deployments[0].FailedTasks < 2 {
		t.Fatalf("the deployment's failed tasks: %+v", s.Deployments)
	}
}
