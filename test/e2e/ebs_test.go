package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/launch"
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

func (c *cluster) volume(id string) agentapi.Volume {
	c.t.Helper()
	var out agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/describe", &agentapi.VolumesRequest{VolumeIDs: []string{id}}, &out); err != nil {
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
	dir := t.TempDir()
	c.addAgent("local-a", dir)
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
	if st := aws.ToString(done.Attachments[0].Status); st != "DETACHED" {
		t.Fatalf("attachment after the task: %s", st)
	}
	if v := c.volume(vol); v.State != "available" || v.Attachment != nil || v.Zone != "local-a" || v.FilesystemType != "xfs" {
		t.Fatalf("volume after the task: %+v", v)
	}
	// Attach the kept volume to a new task, which reads the data; this time it goes with the task.
	reader := ebsDefinition(c, "ebs-r", "grep -q durable /data/file")
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader),
		Tags: []types.Tag{{Key: aws.String(launch.AttachVolumeTagPrefix + "data"), Value: aws.String(vol)}}})
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
		var d agentapi.VolumesResponse
		err := c.post("/berth/v1/volumes/describe", &agentapi.VolumesRequest{VolumeIDs: []string{gone}}, &d)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s not deleted with its task: %v", gone, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Its data went too: no image on the instance, no loop device on it.
	image := filepath.Join(dir, "volumes", gone+".img")
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Fatalf("the deleted volume's image is still there: %v", err)
	}
	if out, _ := exec.Command("losetup", "-j", image).Output(); len(out) != 0 {
		t.Fatalf("a loop device still holds the deleted volume: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "volumes", vol+".img")); err != nil {
		t.Fatalf("the kept volume's image: %v", err)
	}
}

// TestBlockVolumeExclusiveAttach: two tasks ask for one volume at once;
// exactly one gets it, every round.
func TestBlockVolumeExclusiveAttach(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	var created agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &agentapi.CreateVolumeRequest{Zone: "local-a", SizeInGiB: aws.Int32(1)}, &created); err != nil {
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
					Tags: []types.Tag{{Key: aws.String(launch.AttachVolumeTagPrefix + "data"), Value: aws.String(vol)}}})
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
	var out agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &agentapi.CreateVolumeRequest{Zone: "nowhere-1a", SizeInGiB: aws.Int32(1)}, &out); err == nil || !strings.Contains(err.Error(), "no connected container instances in availability zone 'nowhere-1a'") {
		t.Errorf("zone without instances: %v", err)
	}
	if err := c.post("/berth/v1/volumes/describe", &agentapi.VolumesRequest{}, &out); err != nil || len(out.Volumes) != 0 {
		t.Fatalf("rejected calls created volumes: %v %+v", err, out.Volumes)
	}
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{})
	if len(list.TaskArns) != 0 {
		t.Fatalf("rejected calls created tasks: %v", list.TaskArns)
	}
}

func (c *cluster) snapshot(vol string) agentapi.Snapshot {
	c.t.Helper()
	var out agentapi.SnapshotsResponse
	if err := c.post("/berth/v1/snapshots/create", &agentapi.SnapshotsRequest{VolumeID: vol}, &out); err != nil {
		c.t.Fatal(err)
	}
	id := out.Snapshots[0].SnapshotID
	deadline := time.Now().Add(120 * time.Second)
	for {
		if err := c.post("/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{SnapshotIDs: []string{id}}, &out); err != nil {
			c.t.Fatal(err)
		}
		switch sn := out.Snapshots[0]; sn.State {
		case "completed":
			return sn
		case "error":
			c.t.Fatalf("snapshot failed: %s", sn.StateReason)
		}
		if time.Now().After(deadline) {
			c.t.Fatal("snapshot did not complete")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSnapshotWhileRunningAndRestoreInAnotherZone is the snapshot
// test through a running cluster: a task writes 1 GiB and keeps running
// (appending to a log) while it is snapshotted; it changes 10 MiB and the
// second snapshot sends at most 11 MiB of new chunks; the first snapshot
// is deleted and the second restores into a task in another zone with
// the same checksum.
func TestSnapshotWhileRunningAndRestoreInAnotherZone(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("local-a", "")
	c.addAgent("local-b", "")
	writer := ebsDefinition(c, "snap-w", `head -c 1073741824 /dev/urandom > /data/big && sync && touch /data/ready && `+
		`while [ ! -e /data/go ]; do date >> /data/log; sleep 0.1; done && `+
		`dd if=/dev/urandom of=/data/big bs=1M count=10 seek=300 conv=notrunc && sync && touch /data/changed && sleep 3600`)
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(writer), VolumeConfigurations: managed(2, true),
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == local-a")}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	task := out.Tasks[0]
	if aws.ToString(task.ContainerInstanceArn) != a.arn {
		t.Fatal("memberOf ignored")
	}
	vol := volumeIDOf(task)
	c.wait(task.TaskArn, "RUNNING")
	mount := fmt.Sprintf("%s/mounts/%s", c.agentDir(a), vol)
	waitFile := func(name string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !fileExists(filepath.Join(mount, name)) {
			if time.Now().After(deadline) {
				t.Fatalf("the writer never made %s", name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFile("ready")
	logSize := func() int64 { fi, _ := os.Stat(filepath.Join(mount, "log")); return fi.Size() }
	first := c.snapshot(vol)
	// The task kept running through the snapshot and writes again.
	grown := logSize()
	time.Sleep(500 * time.Millisecond)
	if logSize() <= grown {
		t.Fatal("the task's writes did not resume after the snapshot")
	}
	os.WriteFile(filepath.Join(mount, "go"), nil, 0o644)
	waitFile("changed")
	want := md5File(t, filepath.Join(mount, "big"))
	second := c.snapshot(vol)
	t.Logf("first snapshot uploaded %d MiB, second (10 MiB changed) %.2f MiB", first.UploadedBytes>>20, float64(second.UploadedBytes)/(1<<20))
	if first.UploadedBytes < 1<<30 || second.UploadedBytes > 11<<20 {
		t.Fatalf("snapshots not incremental: %d then %d bytes", first.UploadedBytes, second.UploadedBytes)
	}
	d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(task.TaskArn)}})
	if aws.ToString(d.Tasks[0].LastStatus) != "RUNNING" {
		t.Fatal("the task stopped during the snapshots")
	}
	var del agentapi.SnapshotsResponse
	if err := c.post("/berth/v1/snapshots/delete", &agentapi.SnapshotsRequest{SnapshotIDs: []string{first.SnapshotID}}, &del); err != nil {
		t.Fatal(err)
	}
	reader := ebsDefinition(c, "snap-r", `test "$(md5sum /data/big | cut -c1-32)" = "`+want+`" && test -s /data/log`)
	cfg := managed(2, false)
	cfg[0].ManagedEBSVolume.SnapshotId = aws.String(second.SnapshotID)
	cfg[0].ManagedEBSVolume.SizeInGiB = aws.Int32(2)
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader), VolumeConfigurations: cfg,
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == local-b")}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	if aws.ToString(out.Tasks[0].AvailabilityZone) != "local-b" {
		t.Fatalf("restored in %s", aws.ToString(out.Tasks[0].AvailabilityZone))
	}
	done := c.wait(out.Tasks[0].TaskArn, "STOPPED")
	if exitCode(done, "app") != 0 {
		t.Fatalf("restored data differs: %s %s", aws.ToString(done.StoppedReason), describeContainers(done))
	}
	// The filesystem of a restore must match its snapshot's.
	cfg[0].ManagedEBSVolume.FilesystemType = types.TaskFilesystemTypeExt4
	_, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader), VolumeConfigurations: cfg})
	if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, "does not match the file system of snapshot") {
		t.Fatalf("fs mismatch: %s %q", code, msg)
	}
	c.stop(task.TaskArn)
}

// An agent that dies while a snapshot has the volume frozen leaves the
// task's writes hanging; the next run of the agent resumes them.
func TestAgentRestartThawsAVolumeLeftFrozen(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	a := c.addAgent("local-a", dir)
	td := ebsDefinition(c, "frozen", `while true; do date >> /data/log; sleep 0.1; done`)
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), VolumeConfigurations: managed(1, false)})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	c.wait(out.Tasks[0].TaskArn, "RUNNING")
	mnt := fmt.Sprintf("%s/mounts/%s", dir, volumeIDOf(out.Tasks[0]))
	lines := func() int {
		b, _ := os.ReadFile(mnt + "/log")
		return strings.Count(string(b), "\n")
	}
	c.stopAgent(a)
	// What a snapshot interrupted between freeze and thaw leaves behind.
	if out, err := exec.Command("fsfreeze", "--freeze", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze: %v: %s", err, out)
	}
	defer exec.Command("fsfreeze", "--unfreeze", mnt).Run()
	time.Sleep(500 * time.Millisecond)
	before := lines()
	time.Sleep(time.Second)
	if n := lines(); n != before {
		t.Fatalf("the log grew from %d to %d lines while the volume was frozen", before, n)
	}
	c.addAgent("local-a", dir)
	deadline := time.Now().Add(10 * time.Second)
	for lines() <= before+3 {
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume after the agent restarted: %d lines, %d when frozen", lines(), before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop(out.Tasks[0].TaskArn)
}

// A volume's provisioned IOPS and throughput limit the task's I/O to it:
// gp3's default 125 MiB/s, and io2's provisioned IOPS.
func TestBlockVolumeIOLimits(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	// 400 MiB of direct writes take 3.2 s at 125 MiB/s; 300 direct 4 KiB
	// writes take 3 s at 100 IOPS. Unlimited, either takes well under 1 s
	// on the disks this runs on.
	// The container's write limits: bytes a second, then operations a second.
	const limitsFormat = "{{range .HostConfig.BlkioDeviceWriteBps}}{{.Rate}}{{end}} {{range .HostConfig.BlkioDeviceWriteIOps}}{{.Rate}}{{end}}"
	for _, tc := range []struct {
		name, script string
		cfg          func(*types.TaskManagedEBSVolumeConfiguration)
		limits       string
	}{
		{"gp3-throughput", `dd if=/dev/zero of=/data/f bs=1M count=400 oflag=direct`,
			func(*types.TaskManagedEBSVolumeConfiguration) {}, "131072000 3000"},
		{"io2-iops", `dd if=/dev/zero of=/data/f bs=4k count=300 oflag=direct`,
			func(m *types.TaskManagedEBSVolumeConfiguration) {
				m.VolumeType, m.Iops = aws.String("io2"), aws.Int32(100)
			}, " 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := ebsDefinition(c, "io-"+tc.name, `s=$(date +%s); `+tc.script+` && e=$(date +%s) && echo "took $((e-s)) s" && test $((e-s)) -ge 2`)
			cfg := managed(4, false)
			tc.cfg(cfg[0].ManagedEBSVolume)
			out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), VolumeConfigurations: cfg})
			if err != nil || len(out.Tasks) != 1 {
				t.Fatal(err, out)
			}
			c.wait(out.Tasks[0].TaskArn, "RUNNING")
			ids := taskContainers(t, aws.ToString(out.Tasks[0].TaskArn))
			if len(ids) != 1 {
				t.Fatalf("containers %v", ids)
			}
			limits, _ := exec.Command("docker", "inspect", "-f", limitsFormat, ids[0]).Output()
			if got := strings.TrimRight(string(limits), "\n"); got != tc.limits {
				t.Fatalf("container write limits (bytes/s, IOPS) %q, want %q", got, tc.limits)
			}
			done := c.wait(out.Tasks[0].TaskArn, "STOPPED")
			if exitCode(done, "app") != 0 {
				t.Fatalf("the I/O was not limited: %s", describeContainers(done))
			}
		})
	}
}

// md5File is the file's MD5 in hex, as md5sum prints it.
func md5File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
