package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func TestClusterLifecycle(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"c1", "c2", "c3"} {
		e.createCluster(n)
	}
	// CreateCluster is idempotent.
	e.createCluster("c1")
	var all []string
	p := ecs.NewListClustersPaginator(e.ecs, &ecs.ListClustersInput{MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.ClusterArns...)
	}
	if len(all) != 3 || all[0] != "arn:aws:ecs:us-east-1:000000000000:cluster/c1" {
		t.Fatalf("clusters %v", all)
	}
	d, err := e.ecs.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{Clusters: []string{"c2", "ghost"}})
	if err != nil || len(d.Clusters) != 1 || len(d.Failures) != 1 || aws.ToString(d.Failures[0].Reason) != "MISSING" {
		t.Fatalf("describe: %v %+v", err, d)
	}
	_, err = e.ecs.DeleteCluster(e.ctx, &ecs.DeleteClusterInput{Cluster: aws.String("ghost")})
	if code, msg := apiCode(err); code != "ClusterNotFoundException" || msg != "Cluster not found." {
		t.Fatalf("delete missing: %s %s", code, msg)
	}
	up, err := e.ecs.UpdateCluster(e.ctx, &ecs.UpdateClusterInput{Cluster: aws.String("c3"),
		Settings: []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String("enabled")}}})
	if err != nil || len(up.Cluster.Settings) != 1 || aws.ToString(up.Cluster.Settings[0].Value) != "enabled" {
		t.Fatalf("update cluster: %v %+v", err, up)
	}
	_, err = e.ecs.UpdateCluster(e.ctx, &ecs.UpdateClusterInput{Cluster: aws.String("c3"),
		Settings: []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String("sometimes")}}})
	if code, _ := apiCode(err); code != "InvalidParameterException" {
		t.Fatalf("bad setting: %v", err)
	}
	inst := e.registerInstance("c2", "z1", 1024, 1024)
	_, err = e.ecs.DeleteCluster(e.ctx, &ecs.DeleteClusterInput{Cluster: aws.String("c2")})
	if code, _ := apiCode(err); code != "ClusterContainsContainerInstancesException" {
		t.Fatalf("delete with instance: %v", err)
	}
	if _, err := e.ecs.DeregisterContainerInstance(e.ctx, &ecs.DeregisterContainerInstanceInput{Cluster: aws.String("c2"), ContainerInstance: aws.String(inst)}); err != nil {
		t.Fatal(err)
	}
	out, err := e.ecs.DeleteCluster(e.ctx, &ecs.DeleteClusterInput{Cluster: aws.String("c2")})
	if err != nil || aws.ToString(out.Cluster.Status) != "INACTIVE" {
		t.Fatalf("delete: %v %+v", err, out)
	}
	_, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c2"), TaskDefinition: aws.String("x")})
	if code, _ := apiCode(err); code != "ClusterNotFoundException" {
		t.Fatalf("run in deleted cluster: %v", err)
	}
	// The default cluster is created on first use.
	d, err = e.ecs.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{})
	if err != nil || len(d.Clusters) != 1 || aws.ToString(d.Clusters[0].ClusterName) != "default" {
		t.Fatalf("default cluster: %v %+v", err, d)
	}
}

func TestRunTaskPlacesReservesAndReportsFailures(t *testing.T) {
	e := newEnv(t)
	e.createCluster("c")
	_, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(e.registerSimple("web", 512, 80))})
	if code, msg := apiCode(err); code != "InvalidParameterException" || msg != "No Container Instances were found in your cluster." {
		t.Fatalf("empty cluster: %s %q", code, msg)
	}
	i1 := e.registerInstance("c", "z1", 2048, 1024)
	i2 := e.registerInstance("c", "z2", 2048, 1024)
	// Host port 80: one task per instance; the third fails on ports.
	out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("web"), Count: aws.Int32(3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 2 {
		t.Fatalf("placed %d tasks, failures %+v", len(out.Tasks), out.Failures)
	}
	if out.Tasks[0].ContainerInstanceArn == out.Tasks[1].ContainerInstanceArn {
		t.Fatal("two tasks share host port 80 on one instance")
	}
	for _, f := range out.Failures {
		if aws.ToString(f.Reason) != "RESOURCE:PORTS" {
			t.Fatalf("failure %+v", f)
		}
	}
	if len(out.Failures) != 2 {
		t.Fatalf("want one failure per instance, got %+v", out.Failures)
	}
	task := out.Tasks[0]
	if aws.ToString(task.LastStatus) != "PROVISIONING" || aws.ToString(task.DesiredStatus) != "RUNNING" || aws.ToString(task.Group) != "family:web" ||
		task.LaunchType != types.LaunchTypeEc2 || aws.ToString(task.Memory) != "512" || !strings.HasPrefix(aws.ToString(task.TaskArn), "arn:aws:ecs:us-east-1:000000000000:task/c/") {
		t.Fatalf("task fields: %+v", task)
	}
	ci, err := e.ecs.DescribeContainerInstances(e.ctx, &ecs.DescribeContainerInstancesInput{Cluster: aws.String("c"), ContainerInstances: []string{i1, i2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ci.ContainerInstances {
		if !in.AgentConnected || in.PendingTasksCount != 1 {
			t.Fatalf("instance %+v", in)
		}
		for _, r := range in.RemainingResources {
			if aws.ToString(r.Name) == "MEMORY" && r.IntegerValue != 512 {
				t.Fatalf("remaining memory %d", r.IntegerValue)
			}
			if aws.ToString(r.Name) == "PORTS" && !contains(r.StringSetValue, "80") {
				t.Fatalf("ports %v", r.StringSetValue)
			}
		}
	}
	// Memory: a 1 GiB task fits nowhere now.
	big := e.registerSimple("big", 1000)
	out, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(big)})
	if err != nil || len(out.Tasks) != 0 || len(out.Failures) != 2 || aws.ToString(out.Failures[0].Reason) != "RESOURCE:MEMORY" {
		t.Fatalf("memory failure: %v %+v", err, out)
	}
	// Stopping a task (its agent reports STOPPED) returns the reservation.
	if _, err := e.ecs.StopTask(e.ctx, &ecs.StopTaskInput{Cluster: aws.String("c"), Task: task.TaskArn}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ecs.SubmitTaskStateChange(e.ctx, &ecs.SubmitTaskStateChangeInput{Cluster: aws.String("c"), Task: task.TaskArn, Status: aws.String("STOPPED")}); err != nil {
		t.Fatal(err)
	}
	d, err := e.ecs.DescribeTasks(e.ctx, &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{aws.ToString(task.TaskArn), "0123456789abcdef0123456789abcdef"}})
	if err != nil || len(d.Tasks) != 1 || aws.ToString(d.Tasks[0].LastStatus) != "STOPPED" || d.Tasks[0].StopCode != types.TaskStopCodeUserInitiated ||
		aws.ToString(d.Tasks[0].StoppedReason) != "Task stopped by user" || len(d.Failures) != 1 {
		t.Fatalf("describe stopped: %v %+v", err, d)
	}
	out, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(big)})
	if err != nil || len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].ContainerInstanceArn) != aws.ToString(task.ContainerInstanceArn) {
		t.Fatalf("after release: %v %+v", err, out)
	}
	list, err := e.ecs.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String("c"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil || len(list.TaskArns) != 1 {
		t.Fatalf("stopped list: %v %+v", err, list)
	}
	list, err = e.ecs.ListTasks(e.ctx, &ecs.ListTasksInput{Cluster: aws.String("c"), Family: aws.String("web")})
	if err != nil || len(list.TaskArns) != 1 {
		t.Fatalf("running web list: %v %+v", err, list)
	}
	_, err = e.ecs.DeleteCluster(e.ctx, &ecs.DeleteClusterInput{Cluster: aws.String("c")})
	if code, _ := apiCode(err); code != "ClusterContainsContainerInstancesException" {
		t.Fatalf("delete busy cluster: %v", err)
	}
}

func TestDataResidencyPinsTasksToTheirVolume(t *testing.T) {
	e := newEnv(t)
	e.createCluster("c")
	for i := 0; i < 4; i++ {
		e.registerInstance("c", "z1", 4096, 4096)
	}
	_, err := e.ecs.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("db"),
		Volumes: []types.Volume{{Name: aws.String("pgdata"), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{
			Scope: types.ScopeShared, Autoprovision: aws.Bool(true)}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("pg"), Image: aws.String("postgres"), Memory: aws.Int32(1024),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("pgdata"), ContainerPath: aws.String("/data")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("db"), PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeRandom}}})
	if err != nil || len(first.Tasks) != 1 {
		t.Fatalf("first: %v %+v", err, first)
	}
	home := aws.ToString(first.Tasks[0].ContainerInstanceArn)
	// Later tasks follow the data, whatever the strategy says.
	for i := 0; i < 3; i++ {
		out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("db"),
			PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeSpread, Field: aws.String("instanceId")}}})
		if err != nil || len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].ContainerInstanceArn) != home {
			t.Fatalf("task %d not on the data's instance: %v %+v", i, err, out)
		}
	}
	// The home instance is now full (4 x 1024 MiB): no empty volume elsewhere.
	out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("db")})
	if err != nil || len(out.Tasks) != 0 {
		t.Fatalf("placed away from its data: %v %+v", err, out)
	}
	homeID := home[strings.LastIndex(home, "/")+1:]
	sawHome, sawElsewhere := false, false
	for _, f := range out.Failures {
		switch {
		case aws.ToString(f.Arn) == home:
			sawHome = aws.ToString(f.Reason) == "RESOURCE:MEMORY"
		default:
			sawElsewhere = aws.ToString(f.Reason) == "ATTRIBUTE" && strings.Contains(aws.ToString(f.Detail), "volume 'pgdata' has its data on container instance "+homeID)
		}
	}
	if !sawHome || !sawElsewhere {
		t.Fatalf("failures do not name the data's instance: %+v", out.Failures)
	}
}

func TestPlacementConstraintsAndAttributes(t *testing.T) {
	e := newEnv(t)
	e.createCluster("c")
	a := e.registerInstance("c", "us-east-1a", 4096, 4096)
	b := e.registerInstance("c", "us-east-1b", 4096, 4096)
	_, err := e.ecs.PutAttributes(e.ctx, &ecs.PutAttributesInput{Cluster: aws.String("c"), Attributes: []types.Attribute{
		{Name: aws.String("disk"), Value: aws.String("ssd"), TargetType: types.TargetTypeContainerInstance, TargetId: aws.String(b)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	td := e.registerSimple("svc", 128)
	out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td), Count: aws.Int32(3),
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:disk == ssd")}}})
	if err != nil || len(out.Tasks) != 3 {
		t.Fatalf("memberOf: %v %+v", err, out)
	}
	for _, tk := range out.Tasks {
		if aws.ToString(tk.ContainerInstanceArn) != b || aws.ToString(tk.AvailabilityZone) != "us-east-1b" {
			t.Fatalf("task on %s", aws.ToString(tk.ContainerInstanceArn))
		}
	}
	out, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td), Count: aws.Int32(3), Group: aws.String("g"),
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeDistinctInstance}}})
	if err != nil || len(out.Tasks) != 2 || len(out.Failures) == 0 {
		t.Fatalf("distinctInstance: %v %+v", err, out)
	}
	_, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td),
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:disk ==")}}})
	if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, "expected a value") {
		t.Fatalf("bad expression: %s %q", code, msg)
	}
	list, err := e.ecs.ListContainerInstances(e.ctx, &ecs.ListContainerInstancesInput{Cluster: aws.String("c"), Filter: aws.String("attribute:ecs.availability-zone in [us-east-1a, us-east-1c]")})
	if err != nil || len(list.ContainerInstanceArns) != 1 || list.ContainerInstanceArns[0] != a {
		t.Fatalf("filter: %v %+v", err, list)
	}
	attrs, err := e.ecs.ListAttributes(e.ctx, &ecs.ListAttributesInput{Cluster: aws.String("c"), TargetType: types.TargetTypeContainerInstance, AttributeName: aws.String("disk")})
	if err != nil || len(attrs.Attributes) != 1 || aws.ToString(attrs.Attributes[0].TargetId) != b {
		t.Fatalf("list attributes: %v %+v", err, attrs)
	}
	_, err = e.ecs.PutAttributes(e.ctx, &ecs.PutAttributesInput{Cluster: aws.String("c"), Attributes: []types.Attribute{
		{Name: aws.String("disk"), Value: aws.String("nvme"), TargetId: aws.String(a)},
		{Name: aws.String("disk"), Value: aws.String("nvme"), TargetId: aws.String("0000000000000000000000000000dead")},
	}})
	if code, _ := apiCode(err); code != "TargetNotFoundException" {
		t.Fatalf("missing target: %v", err)
	}
	attrs, _ = e.ecs.ListAttributes(e.ctx, &ecs.ListAttributesInput{Cluster: aws.String("c"), TargetType: types.TargetTypeContainerInstance, AttributeName: aws.String("disk")})
	if len(attrs.Attributes) != 1 {
		t.Fatalf("a failed PutAttributes changed something: %+v", attrs.Attributes)
	}
	if _, err := e.ecs.UpdateContainerInstancesState(e.ctx, &ecs.UpdateContainerInstancesStateInput{Cluster: aws.String("c"), ContainerInstances: []string{b}, Status: types.ContainerInstanceStatusDraining}); err != nil {
		t.Fatal(err)
	}
	out, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td), Count: aws.Int32(2),
		PlacementStrategy: []types.PlacementStrategy{{Type: types.PlacementStrategyTypeBinpack, Field: aws.String("memory")}}})
	if err != nil || len(out.Tasks) != 2 || aws.ToString(out.Tasks[0].ContainerInstanceArn) != a || aws.ToString(out.Tasks[1].ContainerInstanceArn) != a {
		t.Fatalf("draining instance got tasks: %v %+v", err, out)
	}
}

func TestTagsAndStartTask(t *testing.T) {
	e := newEnv(t)
	e.createCluster("c")
	inst := e.registerInstance("c", "z", 1024, 2048)
	arn := "arn:aws:ecs:us-east-1:000000000000:cluster/c"
	if _, err := e.ecs.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("dev")}, {Key: aws.String("x"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ecs.UntagResource(e.ctx, &ecs.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := e.ecs.ListTagsForResource(e.ctx, &ecs.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "env" {
		t.Fatalf("tags: %v %+v", err, tags)
	}
	_, err = e.ecs.TagResource(e.ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{{Key: aws.String("aws:reserved"), Value: aws.String("1")}}})
	if code, _ := apiCode(err); code != "InvalidParameterException" {
		t.Fatalf("reserved tag: %v", err)
	}
	td := e.registerSimple("one", 512)
	out, err := e.ecs.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td), ContainerInstances: []string{inst}, StartedBy: aws.String("me"),
		Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	if err != nil || len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].StartedBy) != "me" {
		t.Fatalf("start: %v %+v", err, out)
	}
	tt, err := e.ecs.ListTagsForResource(e.ctx, &ecs.ListTagsForResourceInput{ResourceArn: out.Tasks[0].TaskArn})
	if err != nil || len(tt.Tags) != 1 {
		t.Fatalf("task tags: %v %+v", err, tt)
	}
	out, err = e.ecs.StartTask(e.ctx, &ecs.StartTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td), ContainerInstances: []string{inst, "ffffffffffffffffffffffffffffffff"}})
	if err != nil || len(out.Tasks) != 1 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != "MISSING" {
		t.Fatalf("start on missing: %v %+v", err, out)
	}
	// A RunTask clientToken makes retries idempotent.
	tok := aws.String("retry-token-1")
	r1, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(e.registerSimple("tiny", 8)), ClientToken: tok})
	if err != nil || len(r1.Tasks) != 1 {
		t.Fatal(err, r1)
	}
	r2, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String("tiny"), ClientToken: tok})
	if err != nil || len(r2.Tasks) != 1 || aws.ToString(r2.Tasks[0].TaskArn) != aws.ToString(r1.Tasks[0].TaskArn) {
		t.Fatalf("token replay: %v %+v", err, r2)
	}
}

// Responses keep empty lists, as ECS writes them: {"taskArns":[]}, and
// RunTask always has tasks and failures.
func TestEmptyListsInResponses(t *testing.T) {
	e := newEnv(t)
	call := func(op, body string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.Endpoint()+"/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+op)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	for op, want := range map[string]string{"ListTasks": `{"taskArns":[]}`, "ListServices": `{"serviceArns":[]}`, "ListTaskDefinitions": `{"taskDefinitionArns":[]}`} {
		if got := call(op, "{}"); got != want {
			t.Errorf("%s: %s, want %s", op, got, want)
		}
	}
	e.registerInstance("default", "z1", 256, 256)
	td := e.registerSimple("huge", 4096)
	if got := call("RunTask", `{"taskDefinition":"`+td+`"}`); !strings.HasPrefix(got, `{"tasks":[],"failures":[{`) {
		t.Errorf("RunTask that places nothing: %s", got)
	}
}

// An agent's pull progress reaches a client that follows the task
// (berth run shows it), and goes once the pull ends.
func TestPullProgressReachesFollowers(t *testing.T) {
	e := newEnv(t)
	e.registerInstance("default", "z1", 1024, 1024)
	out, err := e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(e.registerSimple("pull", 64))})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("run: %v %+v", err, out)
	}
	arn := aws.ToString(out.Tasks[0].TaskArn)
	post := func(path, body string, v any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.Endpoint()+path, strings.NewReader(body))
		if path == "/" {
			req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.SubmitTaskStateChange")
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		defer resp.Body.Close()
		if v != nil {
			json.NewDecoder(resp.Body).Decode(v)
		}
	}
	var w struct {
		Version      int64  `json:"version"`
		PullProgress string `json:"pullProgress"`
	}
	post("/berth/v1/tasks/wait", `{"task":"`+arn+`","version":0,"waitSeconds":1}`, &w)
	v0 := w.Version
	done := make(chan struct{})
	go func() {
		defer close(done)
		post("/berth/v1/tasks/wait", fmt.Sprintf(`{"task":%q,"version":%d,"waitSeconds":20}`, arn, v0), &w)
	}()
	time.Sleep(200 * time.Millisecond)
	post("/", `{"task":"`+arn+`","pullStartedAt":1796400000,"berthPullProgress":"pulling web:1: 50% (6 of 12 MiB)"}`, nil)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting client was not answered when the task changed")
	}
	if w.PullProgress != "pulling web:1: 50% (6 of 12 MiB)" || w.Version == v0 {
		t.Fatalf("wait answer %+v", w)
	}
	post("/", `{"task":"`+arn+`","pullStoppedAt":1796400001}`, nil)
	v := w.Version
	w.PullProgress = ""
	post("/berth/v1/tasks/wait", fmt.Sprintf(`{"task":%q,"version":%d,"waitSeconds":1}`, arn, v), &w)
	if w.PullProgress != "" {
		t.Fatalf("progress after the pull: %+v", w)
	}
}
