package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/server"
	"github.com/berth-project/berth/internal/service"
)

// TestStatefulServiceSlotsKeepTheirVolumes: a stateful service of 2 slots
// with block volumes; each slot writes its identity into its volume; every
// task is stopped and the replacements find their own slot's data in the
// same zones; scaling 2 -> 1 -> 2 gives slot 1 its old volume back.
func TestStatefulServiceSlotsKeepTheirVolumes(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("zone-a", "")
	b := c.addAgent("zone-b", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("db"),
		Volumes: []types.Volume{{Name: aws.String("data"), ConfiguredAtLaunch: aws.Bool(true)}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}},
			Command: sh(`if [ -e /data/id ]; then test "$(cat /data/id)" = "$BERTH_SERVICE_SLOT" || echo "$BERTH_SERVICE_SLOT" >> /data/mismatch; else echo "$BERTH_SERVICE_SLOT" > /data/id; fi; echo start >> /data/starts; trap 'exit 0' TERM; sleep 3600 & wait`)}}})
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("db"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(2),
		Tags: []types.Tag{{Key: aws.String(service.StatefulTag), Value: aws.String("true")}},
		VolumeConfigurations: []types.ServiceVolumeConfiguration{{Name: aws.String("data"), ManagedEBSVolume: &types.ServiceManagedEBSVolumeConfiguration{
			RoleArn: aws.String("arn:aws:iam::000000000000:role/ecs"), SizeInGiB: aws.Int32(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitService("db", "2 slots running", func(s types.Service) bool { return s.RunningCount == 2 && hasEvent(s, "steady state") })
	slots := func() map[string]string { // slot -> volume id
		var out agentapi.VolumesResponse
		c.post("/berth/v1/volumes/describe", &agentapi.VolumesRequest{}, &out)
		m := map[string]string{}
		for _, v := range out.Volumes {
			for _, tg := range v.Tags {
				if aws.ToString(tg.Key) == service.SlotTag {
					m[aws.ToString(tg.Value)] = v.VolumeID + "@" + v.Zone + "@" + v.InstanceID
				}
			}
		}
		return m
	}
	first := slots()
	if len(first) != 2 {
		t.Fatalf("slot volumes: %v", first)
	}
	read := func(vol, file string) string {
		id := strings.Split(vol, "@")[0]
		for _, ag := range []*runningAgent{a, b} {
			if data, err := os.ReadFile(filepath.Join(ag.dir, "mounts", id, file)); err == nil {
				return string(data)
			}
		}
		return ""
	}
	for slot, vol := range first {
		if got := strings.TrimSpace(read(vol, "id")); got != "db-"+slot {
			t.Fatalf("slot %s volume holds %q", slot, got)
		}
	}
	// Stop every task: replacements get their own slot's volume.
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("db")})
	for _, arn := range list.TaskArns {
		c.ecs.StopTask(c.ctx, &ecs.StopTaskInput{Task: aws.String(arn)})
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, vol := range first {
			if strings.Count(read(vol, "starts"), "start") < 2 {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slots were not restarted on their volumes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, vol := range first {
		if m := read(vol, "mismatch"); m != "" {
			t.Fatalf("a replacement got another slot's volume: %s", m)
		}
	}
	if after := slots(); len(after) != 2 || after["0"] != first["0"] || after["1"] != first["1"] {
		t.Fatalf("slot volumes changed: %v -> %v", first, after)
	}
	// Scale 2 -> 1 -> 2: slot 1 gets its old volume back.
	c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("db"), DesiredCount: aws.Int32(1)})
	c.waitService("db", "scale to 1", func(s types.Service) bool { return s.RunningCount == 1 && s.PendingCount == 0 })
	c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("db"), DesiredCount: aws.Int32(2)})
	c.waitService("db", "scale back to 2", func(s types.Service) bool { return s.RunningCount == 2 })
	for deadline := time.Now().Add(30 * time.Second); strings.Count(read(first["1"], "starts"), "start") < 3; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("slot 1 did not come back on its volume: %q", read(first["1"], "starts"))
		}
	}
	if m := read(first["1"], "mismatch"); m != "" {
		t.Fatalf("slot 1 got another slot's volume: %s", m)
	}
	if after := slots(); len(after) != 2 || after["1"] != first["1"] {
		t.Fatalf("slot 1 volume changed: %v -> %v", first, after)
	}
}

// TestStatefulSlotRestoredFromSnapshotWhenItsInstanceIsLost: with a
// snapshot schedule and berth:restore-lost-slots, a slot whose instance is
// lost starts elsewhere on a volume restored from its latest snapshot.
func TestStatefulSlotRestoredFromSnapshotWhenItsInstanceIsLost(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.LeaseTTL = 2 * time.Second; cfg.LostInstanceGrace = 3 * time.Second })
	a := c.addAgent("zone-a", "")
	b := c.addAgent("zone-b", "")
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("kv"),
		Volumes: []types.Volume{{Name: aws.String("data"), ConfiguredAtLaunch: aws.Bool(true)}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/data")}},
			Command: sh(`if [ -e /data/id ]; then test "$(cat /data/id)" = "$BERTH_SERVICE_SLOT" || echo "$BERTH_SERVICE_SLOT" >> /data/mismatch; else echo "$BERTH_SERVICE_SLOT" > /data/id; fi; echo start >> /data/starts; trap 'exit 0' TERM; sleep 3600 & wait`)}}})
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("kv"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1),
		Tags: []types.Tag{{Key: aws.String(service.StatefulTag), Value: aws.String("true")}, {Key: aws.String(service.SnapshotIntervalTag), Value: aws.String("2s")},
			{Key: aws.String(service.RestoreLostSlotsTag), Value: aws.String("true")}},
		VolumeConfigurations: []types.ServiceVolumeConfiguration{{Name: aws.String("data"), ManagedEBSVolume: &types.ServiceManagedEBSVolumeConfiguration{
			RoleArn: aws.String("arn:aws:iam::000000000000:role/ecs"), SizeInGiB: aws.Int32(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitService("kv", "slot running", func(s types.Service) bool { return s.RunningCount == 1 })
	var vol, home string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var out agentapi.VolumesResponse
		c.post("/berth/v1/volumes/describe", &agentapi.VolumesRequest{}, &out)
		if len(out.Volumes) == 1 && out.Volumes[0].Attachment != nil {
			vol, home = out.Volumes[0].VolumeID, out.Volumes[0].InstanceID
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot volume")
		}
	}
	holder, other := a, b
	if !strings.HasSuffix(a.arn, home) {
		holder, other = b, a
	}
	// Wait for a completed snapshot taken after the slot wrote its identity.
	wrote := time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var out agentapi.SnapshotsResponse
		c.post("/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{}, &out)
		done := false
		for _, sn := range out.Snapshots {
			if sn.VolumeID == vol && sn.State == "completed" && sn.CreatedAt.After(wrote.Add(time.Second)) {
				done = true
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled snapshot of %s: %+v", vol, out.Snapshots)
		}
	}
	c.stopAgent(holder)
	s := c.waitService("kv", "slot restored elsewhere", func(s types.Service) bool {
		return s.RunningCount == 1 && hasEvent(s, "is restoring slot kv-0 elsewhere from snapshot")
	})
	if !hasEvent(s, "was lost") {
		t.Fatal("no event")
	}
	var out agentapi.VolumesResponse
	c.post("/berth/v1/volumes/describe", &agentapi.VolumesRequest{}, &out)
	var restored string
	for _, v := range out.Volumes {
		for _, tg := range v.Tags {
			if aws.ToString(tg.Key) == service.SlotTag && v.VolumeID != vol {
				restored = v.VolumeID
				if !strings.HasSuffix(other.arn, v.InstanceID) || v.SnapshotID == "" {
					t.Fatalf("restored volume %+v", v)
				}
			}
		}
	}
	if restored == "" {
		t.Fatalf("no restored volume: %+v", out.Volumes)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		data, _ := os.ReadFile(filepath.Join(other.dir, "mounts", restored, "starts"))
		if strings.Count(string(data), "start") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			ls, _ := exec_("sh", "-c", "ls -la "+filepath.Join(other.dir, "mounts", restored)+"; grep "+restored+" /proc/self/mountinfo; docker ps -a --format '{{.Names}} {{.Status}} {{.Mounts}}' | grep kv")
			d, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("kv")})
			t.Fatalf("restored slot did not start on its restored data: %q\n%s\n%v", data, ls, d.TaskArns)
		}
	}
	if m, _ := os.ReadFile(filepath.Join(other.dir, "mounts", restored, "mismatch")); len(m) > 0 {
		t.Fatalf("restored volume holds another slot's identity: %s", m)
	}
}
