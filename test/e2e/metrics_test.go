package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"

	"github.com/berth-project/berth/internal/agentapi"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric is the value of the sample whose name and labels match (labels
// in the order the exposition prints them: sorted), or -1.
func metric(text, sample string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// /metrics describes Berth — API calls of every service, placements and
// their failures by reason, tasks, agents, block volumes, file system
// sessions — and leaves etcd's own to /metrics/etcd.
func TestMetricsDescribeBerth(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("m"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("trap 'exit 0' TERM; sleep 600 & wait")}}})
	c.wait(c.run(td).TaskArn, "RUNNING")
	big := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("big"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Memory: aws.Int32(1 << 20)}}})
	if out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(big)}); err != nil || len(out.Failures) != 1 {
		t.Fatalf("an unplaceable task: %v %+v", err, out)
	}
	fs, err := efsClient(c.srv.Endpoint()).CreateFileSystem(c.ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("m")})
	if err != nil {
		t.Fatal(err)
	}
	var created agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &agentapi.CreateVolumeRequest{Zone: "local-a", SizeInGiB: aws.Int32(1)}, &created); err != nil {
		t.Fatal(err)
	}
	vol := created.Volumes[0].VolumeID
	if !waitFor(60*time.Second, func() bool { return c.volume(vol).State == "available" }) {
		t.Fatalf("volume %+v", c.volume(vol))
	}
	// An agent reports the renewals it missed with the next that goes
	// through; the server counts them.
	var ack map[string]any
	if err := c.post("/berth/v1/agent/heartbeat", map[string]any{"cluster": "default", "containerInstance": c.agents[0].arn, "missedRenewals": 3}, &ack); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, c.srv.Endpoint()+"/metrics")
	for _, want := range []struct {
		sample string
		min    float64
	}{
		{`berth_api_requests_total{code="200",operation="RunTask",service="ecs"}`, 2},
		{`berth_api_requests_total{code="201",operation="POST /2015-02-01/file-systems",service="efs"}`, 1},
		{`berth_api_requests_total{code="200",operation="POST /berth/v1/volumes/create",service="berth"}`, 1},
		{`berth_api_requests_total{code="200",operation="POST /berth/v1/agent/heartbeat",service="agent"}`, 1},
		{`berth_api_request_duration_seconds_count{operation="RunTask",service="ecs"}`, 2},
		{`berth_tasks_placed_total`, 1},
		{`berth_placement_failures_total{reason="RESOURCE:MEMORY"}`, 1},
		{`berth_tasks{cluster="default",state="RUNNING"}`, 1},
		{`berth_agents_connected{cluster="default"}`, 1},
		{`berth_container_instances{cluster="default"}`, 1},
		{`berth_block_volumes{cluster="default",state="available"}`, 1},
		{`berth_fs_mount_sessions{file_system="` + aws.ToString(fs.FileSystemId) + `"}`, 0},
		{`berth_agent_leases_lost_total`, 0},
		{`berth_agent_lease_renewals_missed_total`, 3},
	} {
		if got := metric(text, want.sample); got < want.min {
			t.Errorf("%s = %v, want at least %v", want.sample, got, want.min)
		}
	}
	if got := metric(text, `berth_tasks{cluster="default",state="RUNNING"}`); got != 1 {
		t.Errorf("running tasks %v, want 1", got)
	}
	if strings.Contains(text, "\netcd_") || strings.Contains(text, "\ngrpc_") {
		t.Error("/metrics carries etcd's metrics")
	}
	if etcd := scrape(t, c.srv.Endpoint()+"/metrics/etcd"); !strings.Contains(etcd, "etcd_server_has_leader") {
		t.Error("/metrics/etcd lacks the etcd member's metrics")
	}
}
