package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/server"
)

// partition is an HTTP transport that can be cut, as a network partition
// between an agent and the server would.
type partition struct{ cut atomic.Bool }

func (p *partition) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.cut.Load() {
		return nil, errors.New("simulated partition")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestBlockVolumeFencing cuts an agent off from the server while its task
// writes to a block volume: the agent stops the task and unmounts before
// its lease expires; only after the lease has expired can the volume be
// detached; a report with the old attachment epoch is then refused.
func TestBlockVolumeFencing(t *testing.T) {
	const ttl = 4 * time.Second
	c := newCluster(t, func(cfg *server.Config) { cfg.LeaseTTL = ttl })
	p := &partition{}
	dir := t.TempDir()
	ag, err := agent.New(agent.Config{Server: c.srv.Endpoint(), DataDir: dir, Zone: "local-a", CPU: 4096, Memory: 4096,
		CleanupWait: time.Hour, HeartbeatInterval: 300 * time.Millisecond, Credentials: &agent.Client{HTTP: &http.Client{Transport: p}},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ag.Run(ctx)
	<-ag.Ready()
	t.Cleanup(func() { removeTaskContainers(ag.ContainerInstanceArn()) })
	writer := ebsDefinition(c, "fence-w", "while true; do date >> /data/log; sleep 0.05; done")
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(writer), VolumeConfigurations: managed(1, true)})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	vol := volumeIDOf(out.Tasks[0])
	running := c.wait(out.Tasks[0].TaskArn, "RUNNING")
	container := aws.ToString(running.Containers[0].RuntimeId)
	epoch := c.volume(vol).Epoch
	time.Sleep(time.Second)

	p.cut.Store(true)
	cutAt := time.Now()
	var fencedAt time.Time
	for deadline := cutAt.Add(ttl); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", container).Output()
		if strings.TrimSpace(string(out)) == "false" && !mounted(dir, vol) {
			fencedAt = time.Now()
			break
		}
	}
	if fencedAt.IsZero() {
		t.Fatalf("the cut-off agent kept writing for the whole lease (%s)", ttl)
	}
	t.Logf("fenced %s after the partition (lease %s)", fencedAt.Sub(cutAt).Round(time.Millisecond), ttl)
	// While the lease may still be valid, the volume cannot be taken away.
	var vr agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/detach", &agentapi.VolumesRequest{VolumeIDs: []string{vol}}, &vr); err == nil || !strings.Contains(err.Error(), "VolumeInUse") {
		if connected(t, c.env, "default", ag.ContainerInstanceArn()) {
			t.Fatalf("detached while the instance still held its lease: %v", err)
		}
	}
	for deadline := time.Now().Add(3 * ttl); connected(t, c.env, "default", ag.ContainerInstanceArn()); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("lease never expired")
		}
	}
	if v := c.volume(vol); v.State != "impaired" || !strings.Contains(v.StateReason, "not connected") {
		t.Fatalf("volume of a lost instance: %s %q", v.State, v.StateReason)
	}
	if err := c.post("/berth/v1/volumes/detach", &agentapi.VolumesRequest{VolumeIDs: []string{vol}}, &vr); err != nil {
		t.Fatalf("detach after lease expiry: %v", err)
	}
	if v := vr.Volumes[0]; v.Attachment != nil || v.State != "available" {
		t.Fatalf("volume after detach: %+v", v)
	}
	d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(out.Tasks[0].TaskArn)}})
	if aws.ToString(d.Tasks[0].LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(d.Tasks[0].StoppedReason), "lost its lease") {
		t.Fatalf("task after detach: %s %q", aws.ToString(d.Tasks[0].LastStatus), aws.ToString(d.Tasks[0].StoppedReason))
	}
	// The partition heals; a new task gets the volume with a new epoch and
	// reads what the old one wrote; a report with the old epoch is refused.
	p.cut.Store(false)
	for deadline := time.Now().Add(10 * time.Second); !connected(t, c.env, "default", ag.ContainerInstanceArn()); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("agent did not reconnect")
		}
	}
	reader := ebsDefinition(c, "fence-r", "test -s /data/log && sleep 3600")
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader),
		Tags: []types.Tag{{Key: aws.String(launch.AttachVolumeTagPrefix + "data"), Value: aws.String(vol)}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	c.wait(out.Tasks[0].TaskArn, "RUNNING")
	if v := c.volume(vol); v.Epoch != epoch+1 || v.Attachment == nil || v.Attachment.Epoch != epoch+1 {
		t.Fatalf("new attachment: %+v", v)
	}
	err = c.post("/berth/v1/agent/volume-event", &agentapi.VolumeEventRequest{ContainerInstance: ag.ContainerInstanceArn(), VolumeID: vol, Event: "created", Epoch: epoch}, &vr)
	if err == nil || !strings.Contains(err.Error(), "StaleAttachmentException") {
		t.Fatalf("stale epoch accepted: %v", err)
	}
	c.stop(out.Tasks[0].TaskArn)
}

func mounted(dir, vol string) bool {
	b, _ := exec.Command("grep", "-c", dir+"/mounts/"+vol, "/proc/self/mountinfo").Output()
	return strings.TrimSpace(string(b)) != "0"
}
