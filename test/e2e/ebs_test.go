package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	becs "github.com/berth-project/berth/internal/ecs"
	"github.com/berth-project/berth/internal/state"
)

func (c *cluster) post(path string, in, out any) error {
	b, _ := json.Marshal(in)
	resp, err := http.Post(c.srv.Endpoint()+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s: %s", e.Type, e.Message)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *cluster) volume(id string) state.VolumeRecord {
	c.t.Helper()
	var out becs.VolumesResponse
	if err := c.post("/berth/v1/volumes/describe", &becs.VolumesRequest{VolumeIDs: []string{id}}, &out); err != nil {
		c.t.Fatal(err)
	}
	return out.Volumes[0]
}

func ebsDefinition(c *cluster, family, script string) string {
	return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String(family),
		Volumes: []types.Volume{{Name: aws.String("data"), ConfiguredAtLaunch: aws.Bool(true)}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh(script),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}}}}})
}

func managed(size int32, keep bool) []types.TaskVolumeConfiguration {
	return []types.TaskVolumeConfiguration{{Name: aws.String("data"), ManagedEBSVolume: &types.TaskManagedEBSVolumeConfiguration{
		RoleArn: aws.String("arn:aws:iam::000000000000:role/ecsInfrastructureRole"), SizeInGiB: aws.Int32(size),
		TerminationPolicy: &types.TaskManagedEBSVolumeTerminationPolicy{DeleteOnTermination: aws.Bool(!keep)}}}}
}

func volumeIDOf(t types.Task) string {
	for _, at := range t.Attachments {
		if aws.ToString(at.Type) == "AmazonElasticBlockStorage" {
			for _, d := range at.Details {
				if aws.ToString(d.Name) == "volumeId" {
					return aws.ToString(d.Value)
				}
			}
		}
	}
	return ""
}

// TestManagedBlockVolumeLifecycle: a managed volume is created and written
// by a task, survives the task with deleteOnTermination false, is attached
// to a new task which reads the data, and is deleted with that task.
func TestManagedBlockVolumeLifecycle(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	writer := ebsDefinition(c, "ebs-w", "echo durable > /data/file && grep -q ' /data xfs ' /proc/mounts")
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(writer), VolumeConfigurations: managed(1, true)})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("run: %v %+v", err, out)
	}
	vol := volumeIDOf(out.Tasks[0])
	if !strings.HasPrefix(vol, "vol-") {
		t.Fatalf("attachment: %+v", out.Tasks[0].Attachments)
	}
	done := c.wait(out.Tasks[0].TaskArn, "STOPPED")
	if exitCode(done, "app") != 0 {
		t.Fatalf("writer: %s %s", aws.ToString(done.StoppedReason), describeContainers(done))
	}
	if v := c.volume(vol); v.State != "available" || v.Attachment != nil || v.Zone != "local-a" || v.FilesystemType != "xfs" {
		t.Fatalf("volume after the task: %+v", v)
	}
	// Attach the kept volume to a new task, which reads the data; this time it goes with the task.
	reader := ebsDefinition(c, "ebs-r", "grep -q durable /data/file")
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader),
		Tags: []types.Tag{{Key: aws.String(becs.AttachVolumeTagPrefix + "data"), Value: aws.String(vol)}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("attach existing: %v %+v", err, out)
	}
	done = c.wait(out.Tasks[0].TaskArn, "STOPPED")
	if exitCode(done, "app") != 0 {
		t.Fatalf("reader did not see the data: %s %s", aws.ToString(done.StoppedReason), describeContainers(done))
	}
	if v := c.volume(vol); v.State != "available" {
		t.Fatalf("kept volume: %+v", v)
	}
	// A managed volume with deleteOnTermination (the default) goes with its task.
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(writer), VolumeConfigurations: managed(1, false)})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	gone := volumeIDOf(out.Tasks[0])
	c.wait(out.Tasks[0].TaskArn, "STOPPED")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var d becs.VolumesResponse
		err := c.post("/berth/v1/volumes/describe", &becs.VolumesRequest{VolumeIDs: []string{gone}}, &d)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s not deleted with its task: %v", gone, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBlockVolumeExclusiveAttach: two tasks ask for one volume at once;
// exactly one gets it, every round.
func TestBlockVolumeExclusiveAttach(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	var created becs.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &becs.CreateVolumeRequest{Zone: "local-a", SizeInGiB: aws.Int32(1)}, &created); err != nil {
		t.Fatal(err)
	}
	vol := created.Volumes[0].VolumeID
	td := ebsDefinition(c, "ebs-x", "trap 'exit 0' TERM; sleep 3600 & wait")
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*string
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td),
					Tags: []types.Tag{{Key: aws.String(becs.AttachVolumeTagPrefix + "data"), Value: aws.String(vol)}}})
				if err == nil && len(out.Tasks) == 1 {
					mu.Lock()
					won = append(won, out.Tasks[0].TaskArn)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d tasks got the volume", round, len(won))
		}
		if v := c.volume(vol); v.Attachment == nil || v.Attachment.TaskArn != aws.ToString(won[0]) {
			t.Fatalf("round %d: attachment %+v", round, v.Attachment)
		}
		c.wait(won[0], "RUNNING")
		c.stop(won[0])
	}
}

func TestManagedVolumeValidation(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := ebsDefinition(c, "ebs-v", "true")
	cases := []struct {
		cfg  types.TaskManagedEBSVolumeConfiguration
		want string
	}{
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(0)}, "The sizeInGiB 0 is not valid for volume type gp3. Valid range: 1-16384 GiB."},
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(10), VolumeType: aws.String("st1")}, "The sizeInGiB 10 is not valid for volume type st1. Valid range: 125-16384 GiB."},
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(10), VolumeType: aws.String("io2")}, "iops is required for volume type io2."},
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(10), VolumeType: aws.String("gp2"), Iops: aws.Int32(3000)}, "iops is not supported for volume type gp2."},
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(10), Throughput: aws.Int32(2000)}, "The throughput 2000 is not valid. Valid range: 125-1000 MiB/s."},
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(10), SnapshotId: aws.String("snap-00000000000000000")}, "The snapshot 'snap-00000000000000000' does not exist."},
		{types.TaskManagedEBSVolumeConfiguration{SizeInGiB: aws.Int32(10), FilesystemType: types.TaskFilesystemTypeNtfs}, "Invalid filesystemType 'ntfs'. Valid values for Linux: ext3, ext4, xfs."},
		{types.TaskManagedEBSVolumeConfiguration{}, "sizeInGiB is required for volume 'data' when no snapshotId is given."},
	}
	for _, tc := range cases {
		cfg := tc.cfg
		cfg.RoleArn = aws.String("arn:aws:iam::000000000000:role/r")
		_, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td),
			VolumeConfigurations: []types.TaskVolumeConfiguration{{Name: aws.String("data"), ManagedEBSVolume: &cfg}}})
		if code, msg := apiCode(err); code != "InvalidParameterException" || msg != tc.want {
			t.Errorf("%+v: got %s %q, want %q", tc.cfg, code, msg, tc.want)
		}
	}
	_, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td)})
	if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, "configured at launch") {
		t.Errorf("missing volumeConfigurations: %s %q", code, msg)
	}
	var out becs.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &becs.CreateVolumeRequest{Zone: "nowhere-1a", SizeInGiB: aws.Int32(1)}, &out); err == nil || !strings.Contains(err.Error(), "no connected container instances in availability zone 'nowhere-1a'") {
		t.Errorf("zone without instances: %v", err)
	}
	if err := c.post("/berth/v1/volumes/describe", &becs.VolumesRequest{}, &out); err != nil || len(out.Volumes) != 0 {
		t.Fatalf("rejected calls created volumes: %v %+v", err, out.Volumes)
	}
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{})
	if len(list.TaskArns) != 0 {
		t.Fatalf("rejected calls created tasks: %v", list.TaskArns)
	}
}
