package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	efstypes "github.com/aws/aws-sdk-go-v2/service/efs/types"

	"github.com/berth-project/berth/internal/server"
)

// efsFS creates a file system with mount targets in zones.
func (c *cluster) efsFS(token string, zones ...string) string {
	c.t.Helper()
	ec := efsClient(c.srv.Endpoint())
	fs, err := ec.CreateFileSystem(c.ctx, &efs.CreateFileSystemInput{CreationToken: aws.String(token)})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, z := range zones {
		if _, err := ec.CreateMountTarget(c.ctx, &efs.CreateMountTargetInput{FileSystemId: fs.FileSystemId, SubnetId: aws.String("subnet-" + z)}); err != nil {
			c.t.Fatal(err)
		}
	}
	return aws.ToString(fs.FileSystemId)
}

// efsTask registers a task definition whose one container runs script
// (sh -c) with the EFS volume at /mnt/efs, in zone when given.
func (c *cluster) efsTask(family, zone string, vol *types.EFSVolumeConfiguration, script string, mod ...func(*ecs.RegisterTaskDefinitionInput)) string {
	in := &ecs.RegisterTaskDefinitionInput{Family: aws.String(family),
		Volumes: []types.Volume{{Name: aws.String("data"), EfsVolumeConfiguration: vol}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: []string{"sh", "-c", script},
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/mnt/efs")}}}}}
	if zone != "" {
		in.PlacementConstraints = []types.TaskDefinitionPlacementConstraint{{Type: types.TaskDefinitionPlacementConstraintTypeMemberOf,
			Expression: aws.String("attribute:ecs.availability-zone == " + zone)}}
	}
	for _, m := range mod {
		m(in)
	}
	return c.register(in)
}

// finish waits for a task to stop and returns it.
func (c *cluster) finish(arn *string) types.Task {
	c.t.Helper()
	return c.wait(arn, "STOPPED")
}

// adminMount mounts a file system as the operator, for checking what
// tasks wrote.
func (c *cluster) adminMount(fs string) *fsMount {
	s := &fsServer{t: c.t, bin: buildBerth(c.t), endpoint: c.srv.Endpoint()}
	return s.mountFS(fs)
}

// TestEFSTasksShareAcrossZones: two tasks on two instances in different
// zones mount one file system at once; one writes and closes a file, the
// other then reads it; the data outlives both, and a task on a new
// instance sees it. A zone without a mount target gets no such task.
func TestEFSTasksShareAcrossZones(t *testing.T) {
	c := newCluster(t)
	c.addAgent("us-east-1a", "")
	c.addAgent("us-east-1b", "")
	fs := c.efsFS("share", "us-east-1a", "us-east-1b", "us-east-1c")
	vol := &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs)}
	writer := c.run(c.efsTask("writer", "us-east-1a", vol, "echo hello-across-zones > /mnt/efs/msg.tmp && mv /mnt/efs/msg.tmp /mnt/efs/msg; sleep 60"))
	reader := c.run(c.efsTask("reader", "us-east-1b", vol,
		"for i in $(seq 1 150); do grep -q hello-across-zones /mnt/efs/msg 2>/dev/null && exit 0; sleep 0.2; done; exit 1"))
	c.wait(writer.TaskArn, "RUNNING")
	if r := c.finish(reader.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("the reader in us-east-1b did not see the writer's file: %s", describeContainers(r))
	}
	c.stop(writer.TaskArn)
	c.finish(writer.TaskArn)
	// A new instance, in a third zone, sees the data.
	c.addAgent("us-east-1c", "")
	third := c.run(c.efsTask("third", "us-east-1c", vol, "grep -q hello-across-zones /mnt/efs/msg"))
	if r := c.finish(third.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("a task on a new instance did not see the data: %s %s", aws.ToString(r.StoppedReason), describeContainers(r))
	}
	// Deleting a zone's mount target breaks that zone's mounts.
	looper := c.run(c.efsTask("looper", "us-east-1b", vol, "while echo x >> /mnt/efs/loop; do sleep 0.1; done; exit 3"))
	c.wait(looper.TaskArn, "RUNNING")
	ec := efsClient(c.srv.Endpoint())
	mts, _ := ec.DescribeMountTargets(c.ctx, &efs.DescribeMountTargetsInput{FileSystemId: aws.String(fs)})
	for _, mt := range mts.MountTargets {
		if aws.ToString(mt.AvailabilityZoneName) == "us-east-1b" {
			if _, err := ec.DeleteMountTarget(c.ctx, &efs.DeleteMountTargetInput{MountTargetId: mt.MountTargetId}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := c.finish(looper.TaskArn); exitCode(r, "app") != 3 {
		t.Fatalf("a mount in a zone whose mount target was deleted kept working: %s", describeContainers(r))
	}
	// A file system with a mount target only in a zone with no instance.
	lonely := c.efsFS("lonely", "us-east-1d")
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(c.efsTask("lonely", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(lonely)}, "true"))})
	if err != nil || len(out.Tasks) != 0 || len(out.Failures) != 3 || !strings.Contains(aws.ToString(out.Failures[0].Detail), "no mount target in zone") ||
		!strings.Contains(aws.ToString(out.Failures[0].Detail), lonely) {
		t.Fatalf("placement without a mount target: %v %+v", err, out)
	}
}

// TestEFSAccessPoint: through an access point with PosixUser 1000:1000, a
// container running as root creates files owned by 1000:1000, the access
// point's root is created with CreationInfo's owner and mode, and the
// client sees only that directory. A missing root without CreationInfo
// stops the task with a reason naming the file system.
func TestEFSAccessPoint(t *testing.T) {
	c := newCluster(t)
	c.addAgent("us-east-1a", "")
	fs := c.efsFS("ap", "us-east-1a")
	ec := efsClient(c.srv.Endpoint())
	ap, err := ec.CreateAccessPoint(c.ctx, &efs.CreateAccessPointInput{FileSystemId: aws.String(fs),
		PosixUser: &efstypes.PosixUser{Uid: aws.Int64(1000), Gid: aws.Int64(1000)},
		RootDirectory: &efstypes.RootDirectory{Path: aws.String("/app/data"),
			CreationInfo: &efstypes.CreationInfo{OwnerUid: aws.Int64(1000), OwnerGid: aws.Int64(1000), Permissions: aws.String("0750")}}})
	if err != nil {
		t.Fatal(err)
	}
	vol := &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs), TransitEncryption: types.EFSTransitEncryptionEnabled,
		AuthorizationConfig: &types.EFSAuthorizationConfig{AccessPointId: ap.AccessPointId}}
	script := `id -u | grep -qx 0 || exit 10
echo data > /mnt/efs/created || exit 11
[ "$(stat -c %u:%g /mnt/efs/created)" = 1000:1000 ] || exit 12
chown 0:0 /mnt/efs/created 2>/dev/null && exit 13
ls -a /mnt/efs | grep -qx created || exit 14
ln -s ../.. /mnt/efs/escape || exit 15
[ -e /mnt/efs/escape/app ] && exit 16
[ -e /mnt/efs/../app ] && exit 17
[ -e /mnt/efs/../../app/data ] && exit 18
exit 0`
	task := c.run(c.efsTask("ap", "", vol, script))
	if r := c.finish(task.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("task through the access point: %s %s", aws.ToString(r.StoppedReason), describeContainers(r))
	}
	m := c.adminMount(fs)
	var st syscall.Stat_t
	if err := syscall.Stat(m.path("app/data"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o7777 != 0o750 {
		t.Fatalf("access point root: %v uid %d gid %d mode %o", err, st.Uid, st.Gid, st.Mode&0o7777)
	}
	if err := syscall.Stat(m.path("app/data/created"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("file created by root through the access point: %v uid %d gid %d", err, st.Uid, st.Gid)
	}
	entries, _ := os.ReadDir(m.dir)
	if len(entries) != 1 || entries[0].Name() != "app" {
		t.Fatalf("file system root: %v", entries)
	}
	// Missing root, no CreationInfo.
	bad, err := ec.CreateAccessPoint(c.ctx, &efs.CreateAccessPointInput{FileSystemId: aws.String(fs),
		RootDirectory: &efstypes.RootDirectory{Path: aws.String("/nowhere")}})
	if err != nil {
		t.Fatal(err)
	}
	vol.AuthorizationConfig.AccessPointId = bad.AccessPointId
	task = c.run(c.efsTask("ap-missing", "", vol, "true"))
	r := c.finish(task.TaskArn)
	if reason := aws.ToString(r.StoppedReason); !strings.Contains(reason, fs) || !strings.Contains(reason, "does not exist") {
		t.Fatalf("missing access point root: %q", reason)
	}
}

// TestEFSPolicies: a file system policy decides read-only, read-write or
// no mount; without ClientRootAccess root is squashed; with iam ENABLED
// the task's role is the principal.
func TestEFSPolicies(t *testing.T) {
	c := newCluster(t)
	c.addAgent("us-east-1a", "")
	ec := efsClient(c.srv.Endpoint())
	policy := func(fs, doc string) {
		if _, err := ec.PutFileSystemPolicy(c.ctx, &efs.PutFileSystemPolicyInput{FileSystemId: aws.String(fs), Policy: aws.String(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	allow := func(principal string, actions ...string) string {
		return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":["%s"]}]}`, principal, strings.Join(actions, `","`))
	}
	const mount, write, root = "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"

	// Read-only: writes fail with EROFS.
	ro := c.efsFS("ro", "us-east-1a")
	policy(ro, allow("*", mount))
	task := c.run(c.efsTask("ro", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(ro)},
		`{ echo x > /mnt/efs/f; } 2>/tmp/err && exit 20; cat /tmp/err; grep -q "Read-only file system" /tmp/err`))
	if r := c.finish(task.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("read-only policy: %s", describeContainers(r))
	}
	// ClientMount denied: the task stops with a reason naming the file system.
	denied := c.efsFS("denied", "us-east-1a")
	policy(denied, `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"elasticfilesystem:ClientMount"},{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"elasticfilesystem:*"}]}`)
	task = c.run(c.efsTask("denied", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(denied)}, "true"))
	if r := c.finish(task.TaskArn); !strings.Contains(aws.ToString(r.StoppedReason), denied) || !strings.Contains(aws.ToString(r.StoppedReason), "ClientMount") {
		t.Fatalf("denied mount: %q", aws.ToString(r.StoppedReason))
	}
	// Without ClientRootAccess, root is squashed to 65534.
	sq := c.efsFS("squash", "us-east-1a")
	policy(sq, allow("*", mount, write))
	task = c.run(c.efsTask("squash", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(sq)},
		`mkdir /mnt/efs/d 2>/tmp/err && exit 30; grep -q "Permission denied" /tmp/err || exit 31; exit 0`))
	if r := c.finish(task.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("root squash (the root directory is root's, 0755): %s", describeContainers(r))
	}
	m := c.adminMount(sq)
	os.Mkdir(m.path("open"), 0o777)
	os.Chmod(m.path("open"), 0o777)
	task = c.run(c.efsTask("squash2", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(sq)}, `touch /mnt/efs/open/f`))
	if r := c.finish(task.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("squashed root writing a world-writable directory: %s", describeContainers(r))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(m.dir, "open", "f"), &st); err != nil || st.Uid != 65534 {
		t.Fatalf("squashed root's file: %v uid %d", err, st.Uid)
	}
	// IAM: only the task role the policy names may mount.
	iam := c.efsFS("iam", "us-east-1a")
	role := "arn:aws:iam::000000000000:role/app"
	policy(iam, allow(role, mount, write, root))
	withRole := func(arn string) func(*ecs.RegisterTaskDefinitionInput) {
		return func(in *ecs.RegisterTaskDefinitionInput) { in.TaskRoleArn = aws.String(arn) }
	}
	iamVol := &types.EFSVolumeConfiguration{FileSystemId: aws.String(iam), AuthorizationConfig: &types.EFSAuthorizationConfig{Iam: types.EFSAuthorizationConfigIAMEnabled},
		TransitEncryption: types.EFSTransitEncryptionEnabled}
	task = c.run(c.efsTask("iam-ok", "", iamVol, "echo ok > /mnt/efs/f", withRole(role)))
	if r := c.finish(task.TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("the allowed role: %s %s", aws.ToString(r.StoppedReason), describeContainers(r))
	}
	task = c.run(c.efsTask("iam-other", "", iamVol, "true", withRole("arn:aws:iam::000000000000:role/other")))
	if r := c.finish(task.TaskArn); !strings.Contains(aws.ToString(r.StoppedReason), "ClientMount") {
		t.Fatalf("another role: %q", aws.ToString(r.StoppedReason))
	}
}

// TestEFSTransitEncryption: a volume with transitEncryption ENABLED is
// mounted over TLS; its mount token is refused over plain HTTP.
func TestEFSTransitEncryption(t *testing.T) {
	c := newCluster(t)
	ra := c.addAgent("us-east-1a", "")
	fs := c.efsFS("tls", "us-east-1a")
	vol := &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs), TransitEncryption: types.EFSTransitEncryptionEnabled}
	task := c.run(c.efsTask("tls", "", vol, "echo secret > /mnt/efs/f && sleep 60"))
	c.wait(task.TaskArn, "RUNNING")
	defer c.stop(task.TaskArn)
	// Take another token for the task's volume, as its agent would.
	var grant ecs2EFSGrant
	if err := c.post("/berth/v1/agent/efs-mount", map[string]string{"cluster": "default", "containerInstance": ra.arn,
		"task": aws.ToString(task.TaskArn), "volume": "data"}, &grant); err != nil || !grant.TLS || !strings.Contains(grant.CA, "BEGIN CERTIFICATE") {
		t.Fatalf("mount grant: %v %+v", err, grant)
	}
	open := map[string]any{"op": "session.open", "fs": fs, "host": "test"}
	var plain struct {
		Errno   int    `json:"errno"`
		Message string `json:"message"`
	}
	if err := postWithToken(nil, c.srv.Endpoint(), grant.Token, open, &plain); err != nil || plain.Errno != int(syscall.EACCES) || !strings.Contains(plain.Message, "TLS") {
		t.Fatalf("plain session with a TLS-only token: %v %+v", err, plain)
	}
	var secure struct {
		Errno   int    `json:"errno"`
		Session string `json:"session"`
	}
	if err := postWithToken([]byte(grant.CA), c.srv.Endpoint(), grant.Token, open, &secure); err != nil || secure.Errno != 0 || secure.Session == "" {
		t.Fatalf("TLS session: %v %+v", err, secure)
	}
	// A token opens one session only, and the bogus one nothing.
	if err := postWithToken([]byte(grant.CA), c.srv.Endpoint(), grant.Token, open, &plain); err != nil || plain.Errno != int(syscall.EACCES) {
		t.Fatalf("second session with one token: %v %+v", err, plain)
	}
	if err := postWithToken(nil, c.srv.Endpoint(), "bogus", open, &plain); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("bogus token: %v", err)
	}
}

type ecs2EFSGrant struct {
	Token string `json:"token"`
	TLS   bool   `json:"tls"`
	CA    string `json:"ca"`
}

// TestStatefulServiceOnEFS: each slot of a stateful service mounts its own
// directory (SERVICE-N) of the EFS volume; replacements, wherever they
// land, find their slot's data.
func TestStatefulServiceOnEFS(t *testing.T) {
	c := newCluster(t)
	c.addAgent("us-east-1a", "")
	c.addAgent("us-east-1b", "")
	fs := c.efsFS("slots", "us-east-1a", "us-east-1b")
	td := c.efsTask("db", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs)},
		`if [ -e /mnt/efs/id ]; then test "$(cat /mnt/efs/id)" = "$BERTH_SERVICE_SLOT" || echo "$BERTH_SERVICE_SLOT" >> /mnt/efs/mismatch; else echo "$BERTH_SERVICE_SLOT" > /mnt/efs/id; fi; echo start >> /mnt/efs/starts; trap 'exit 0' TERM; sleep 3600 & wait`)
	if _, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("db"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(2),
		Tags: []types.Tag{{Key: aws.String("berth:stateful"), Value: aws.String("true")}}}); err != nil {
		t.Fatal(err)
	}
	c.waitService("db", "2 slots running", func(s types.Service) bool { return s.RunningCount == 2 && hasEvent(s, "steady state") })
	m := c.adminMount(fs)
	starts := func(slot string) int {
		b, _ := os.ReadFile(m.path(slot + "/starts"))
		return strings.Count(string(b), "start")
	}
	if !waitFor(15*time.Second, func() bool { return starts("db-0") == 1 && starts("db-1") == 1 }) {
		entries, _ := os.ReadDir(m.dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("db")})
		d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: list.TaskArns, Include: []types.TaskField{types.TaskFieldTags}})
		var tags []string
		for _, tk := range d.Tasks {
			for _, tg := range tk.Tags {
				tags = append(tags, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
			}
		}
		t.Fatalf("slot directories: root has %v; task tags %v", names, tags)
	}
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("db")})
	for _, arn := range list.TaskArns {
		c.ecs.StopTask(c.ctx, &ecs.StopTaskInput{Task: aws.String(arn)})
	}
	eventually(t, "replacements found their slots' data", func() bool { return starts("db-0") == 2 && starts("db-1") == 2 })
	for _, slot := range []string{"db-0", "db-1"} {
		if id, _ := os.ReadFile(m.path(slot + "/id")); strings.TrimSpace(string(id)) != slot {
			t.Fatalf("%s holds %q", slot, id)
		}
		if _, err := os.Stat(m.path(slot + "/mismatch")); err == nil {
			t.Fatalf("a replacement of %s got another slot's directory", slot)
		}
	}
}

func waitFor(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// TestLostInstanceEFSSlotIsFenced: a stateful slot on EFS whose instance
// is lost starts elsewhere, and the old task's mount — still running on
// the lost host — can no longer write once the task is marked stopped, so
// the slot's directory has one writer.
func TestLostInstanceEFSSlotIsFenced(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) { cfg.LeaseTTL = 2 * time.Second; cfg.LostInstanceGrace = 2 * time.Second })
	a := c.addAgent("us-east-1a", "")
	c.addAgent("us-east-1b", "")
	fs := c.efsFS("fence", "us-east-1a", "us-east-1b")
	td := c.efsTask("db", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs)},
		`while echo "$(hostname)" >> /mnt/efs/log; do sleep 0.1; done; exit 3`)
	if _, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("db"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(1),
		Tags:                 []types.Tag{{Key: aws.String("berth:stateful"), Value: aws.String("true")}},
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == us-east-1a")}}}); err != nil {
		t.Fatal(err)
	}
	c.waitService("db", "the slot running in us-east-1a", func(s types.Service) bool { return s.RunningCount == 1 })
	list, _ := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("db")})
	old := taskContainers(t, list.TaskArns[0])
	if len(old) != 1 {
		t.Fatalf("containers of the first task: %v", old)
	}
	host, _ := exec.Command("docker", "inspect", "-f", "{{.Config.Hostname}}", old[0]).Output()
	oldHost := strings.TrimSpace(string(host))
	// Let the slot move: only us-east-1b is left.
	if _, err := c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("db"), PlacementConstraints: []types.PlacementConstraint{}}); err != nil {
		t.Fatal(err)
	}
	c.stopAgent(a) // the host's agent is gone; its container and mount are not
	m := c.adminMount(fs)
	count := func(h string) int {
		b, _ := os.ReadFile(m.path("db-0/log"))
		return strings.Count(string(b), h+"\n")
	}
	var seen string // the first line of another writer, as read
	if !waitFor(30*time.Second, func() bool {
		b, _ := os.ReadFile(m.path("db-0/log"))
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && l != oldHost {
				seen = l
				return true
			}
		}
		return false
	}) {
		sv := c.service("db")
		var ev []string
		for _, e := range sv.Events {
			ev = append(ev, aws.ToString(e.Message))
		}
		t.Fatalf("the slot did not start elsewhere: constraints %+v events %v", sv.PlacementConstraints, ev)
	}
	// The log is appended in commit order: once the replacement's first
	// line is there, no line of the lost task may follow it.
	time.Sleep(1500 * time.Millisecond)
	b, err := os.ReadFile(m.path("db-0/log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	first := -1
	for i, l := range lines {
		if first < 0 && l != oldHost {
			first = i
		}
		if first >= 0 && l == oldHost {
			t.Fatalf("the lost task wrote to the slot after its replacement started: line %d of %d, the replacement's first is line %d", i+1, len(lines), first+1)
		}
	}
	if first < 0 || count(oldHost) == 0 {
		distinct := map[string]int{}
		for _, l := range lines {
			distinct[l]++
		}
		t.Fatalf("the log has %d lines of the lost task (%q) and none of its replacement; an earlier read showed %q; its lines now: %v",
			count(oldHost), oldHost, seen, distinct)
	}
	state, _ := exec.Command("docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", old[0]).Output()
	if !strings.HasPrefix(strings.TrimSpace(string(state)), "exited 3") {
		t.Fatalf("the lost task's writer: %s (want it stopped by a write error)", state)
	}
}

// TestEFSFargateTask: a FARGATE-compatible task definition (awsvpc, task
// cpu and memory) with an EFS volume runs with launchType FARGATE.
func TestEFSFargateTask(t *testing.T) {
	c := newCluster(t)
	c.addAgent("us-east-1a", "")
	fs := c.efsFS("fargate", "us-east-1a")
	td := c.efsTask("fargate", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs), TransitEncryption: types.EFSTransitEncryptionEnabled},
		"echo fargate > /mnt/efs/f && grep -q fargate /mnt/efs/f", func(in *ecs.RegisterTaskDefinitionInput) {
			in.RequiresCompatibilities = []types.Compatibility{types.CompatibilityFargate}
			in.NetworkMode = types.NetworkModeAwsvpc
			in.Cpu, in.Memory = aws.String("256"), aws.String("512")
			in.ContainerDefinitions[0].Memory = nil
		})
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), LaunchType: types.LaunchTypeFargate,
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-us-east-1a"}}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("run on FARGATE: %v %+v", err, out)
	}
	if r := c.finish(out.Tasks[0].TaskArn); exitCode(r, "app") != 0 {
		t.Fatalf("FARGATE task on EFS: %s %s", aws.ToString(r.StoppedReason), describeContainers(r))
	}
}

// TestEFSMountOutlivesAgentRestart: the mount is served by a process of
// its own, so stopping and restarting the agent does not interrupt a
// running task's file access; stopping the task afterwards unmounts it.
func TestEFSMountOutlivesAgentRestart(t *testing.T) {
	c := newCluster(t)
	ra := c.addAgent("us-east-1a", "")
	fs := c.efsFS("restart", "us-east-1a")
	task := c.run(c.efsTask("writer", "", &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs)},
		`trap 'exit 0' TERM; while echo x >> /mnt/efs/log; do sleep 0.05; done; exit 3`))
	c.wait(task.TaskArn, "RUNNING")
	m := c.adminMount(fs)
	lines := func() int {
		b, _ := os.ReadFile(m.path("log"))
		return strings.Count(string(b), "x")
	}
	c.stopAgent(ra)
	before := lines()
	if !waitFor(5*time.Second, func() bool { return lines() > before+10 }) {
		t.Fatal("the task stopped writing while its agent was down")
	}
	ra2 := c.addAgent("us-east-1a", ra.dir)
	if ra2.arn != ra.arn {
		t.Fatalf("the agent came back as another instance: %s", ra2.arn)
	}
	after := lines()
	if !waitFor(5*time.Second, func() bool { return lines() > after+10 }) {
		t.Fatal("the task stopped writing after its agent came back")
	}
	c.stop(task.TaskArn)
	r := c.finish(task.TaskArn)
	if exitCode(r, "app") != 0 {
		t.Fatalf("the writer: %s", describeContainers(r))
	}
	mp := filepath.Join(ra.dir, "efs", aws.ToString(task.TaskArn)[strings.LastIndex(aws.ToString(task.TaskArn), "/")+1:], "data")
	if !waitFor(5*time.Second, func() bool {
		out, _ := os.ReadFile("/proc/self/mountinfo")
		return !strings.Contains(string(out), mp)
	}) {
		t.Fatalf("%s is still mounted after the task stopped", mp)
	}
}
