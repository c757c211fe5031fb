package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	efssdk "github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	fsxtypes "github.com/aws/aws-sdk-go-v2/service/fsx/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/cli"
	"github.com/berth-project/berth/internal/state"
)

// smbPollForTests is the agent's SMB poll interval (agent.smbPoll).
const smbPollForTests = 2 * time.Second

func fsxClient(endpoint string) *fsx.Client {
	return fsx.New(fsx.Options{HTTPClient: cli.NewHTTPClient(), BaseEndpoint: aws.String(endpoint), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), RetryMaxAttempts: 1})
}

func selfManagedAD(user, password string) *fsxtypes.SelfManagedActiveDirectoryConfiguration {
	return &fsxtypes.SelfManagedActiveDirectoryConfiguration{DomainName: aws.String("corp.example.com"), DnsIps: []string{"10.0.0.10"},
		UserName: aws.String(user), Password: aws.String(password)}
}

// TestFSxAPI: FSx's CreateFileSystem checks and errors through the AWS
// CLI, and the file system's life through the SDK: describe, update,
// tags, delete. Nothing is written when a request is refused.
func TestFSxAPI(t *testing.T) {
	s := start(t)
	ep := s.Endpoint()
	ctx := context.Background()
	win := func(extra string) string {
		return `{"ThroughputCapacity":32,"SelfManagedActiveDirectoryConfiguration":{"DomainName":"corp.example.com","UserName":"Admin","Password":"pw","DnsIps":["10.0.0.10"]}` + extra + `}`
	}
	cases := []struct {
		name, want string
		args       []string
	}{
		{"capacity below 32 GiB", "BadRequest", []string{"--storage-capacity", "16", "--subnet-ids", "subnet-us-east-1a", "--windows-configuration", win("")}},
		{"capacity above 65,536 GiB", "BadRequest", []string{"--storage-capacity", "70000", "--subnet-ids", "subnet-us-east-1a", "--windows-configuration", win("")}},
		{"a third subnet", "InvalidNetworkSettings", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "subnet-us-east-1b", "subnet-us-east-1c",
			"--windows-configuration", win(`,"DeploymentType":"MULTI_AZ_1","PreferredSubnetId":"subnet-us-east-1a"`)}},
		{"two subnets for a single-AZ file system", "InvalidNetworkSettings", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "subnet-us-east-1b", "--windows-configuration", win(`,"DeploymentType":"SINGLE_AZ_2"`)}},
		{"multi-AZ without a preferred subnet", "BadRequest", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "subnet-us-east-1b", "--windows-configuration", win(`,"DeploymentType":"MULTI_AZ_1"`)}},
		{"an unknown subnet", "InvalidNetworkSettings", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-Not_A_Zone", "--windows-configuration", win("")}},
		{"no Active Directory", "BadRequest", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "--windows-configuration", `{"ThroughputCapacity":32}`}},
		{"both directories", "IncompatibleParameterError", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "--windows-configuration", win(`,"ActiveDirectoryId":"d-1234567890"`)}},
		{"no Windows configuration", "MissingFileSystemConfiguration", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a"}},
		{"a throughput FSx does not offer", "BadRequest", []string{"--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "--windows-configuration",
			`{"ThroughputCapacity":33,"ActiveDirectoryId":"d-1234567890"}`}},
	}
	for _, c := range cases {
		args := append([]string{"fsx", "create-file-system", "--file-system-type", "WINDOWS"}, c.args...)
		if _, e := runAWS(t, ep, args...); !strings.Contains(e, "("+c.want+")") {
			t.Errorf("%s: want %s, got %q", c.name, c.want, e)
		}
	}
	fc := fsxClient(ep)
	if d, err := fc.DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{}); err != nil || len(d.FileSystems) != 0 {
		t.Fatalf("refused requests left file systems: %v %+v", err, d)
	}

	out, e := runAWS(t, ep, "fsx", "create-file-system", "--file-system-type", "WINDOWS", "--storage-capacity", "32", "--subnet-ids", "subnet-us-east-1a", "subnet-us-east-1b",
		"--windows-configuration", win(`,"DeploymentType":"MULTI_AZ_1","PreferredSubnetId":"subnet-us-east-1b"`), "--tags", "Key=Name,Value=shared")
	if e != "" {
		t.Fatal(e)
	}
	created := out["FileSystem"].(map[string]any)
	id := created["FileSystemId"].(string)
	wc := created["WindowsConfiguration"].(map[string]any)
	if created["Lifecycle"] != "CREATING" || created["FileSystemType"] != "WINDOWS" || wc["DeploymentType"] != "MULTI_AZ_1" || wc["PreferredSubnetId"] != "subnet-us-east-1b" ||
		!strings.HasPrefix(id, "fs-") || len(id) != 20 || created["ResourceARN"] != "arn:aws:fsx:us-east-1:000000000000:file-system/"+id {
		t.Fatalf("created: %v", created)
	}
	if sm := wc["SelfManagedActiveDirectoryConfiguration"].(map[string]any); sm["DomainName"] != "corp.example.com" || sm["UserName"] != "Admin" || sm["Password"] != nil {
		t.Fatalf("self-managed AD attributes: %v", sm)
	}
	raw, _ := json.Marshal(out)
	if bytes.Contains(raw, []byte(`"pw"`)) {
		t.Fatalf("the directory password is shown: %s", raw)
	}

	// The SDK: describe, update, tags.
	d, err := fc.DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{FileSystemIds: []string{id}})
	if err != nil || len(d.FileSystems) != 1 || aws.ToInt32(d.FileSystems[0].StorageCapacity) != 32 || d.FileSystems[0].StorageType != fsxtypes.StorageTypeSsd {
		t.Fatalf("describe: %v %+v", err, d)
	}
	_, err = fc.DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{FileSystemIds: []string{"fs-0123456789abcdef0"}})
	wantCode(t, "describe a missing file system", err, "FileSystemNotFound")
	_, err = fc.UpdateFileSystem(ctx, &fsx.UpdateFileSystemInput{FileSystemId: aws.String(id), StorageCapacity: aws.Int32(33)})
	wantCode(t, "grow by less than 10 percent", err, "BadRequest")
	up, err := fc.UpdateFileSystem(ctx, &fsx.UpdateFileSystemInput{FileSystemId: aws.String(id), StorageCapacity: aws.Int32(64),
		WindowsConfiguration: &fsxtypes.UpdateFileSystemWindowsConfiguration{ThroughputCapacity: aws.Int32(64)}})
	if err != nil || aws.ToInt32(up.FileSystem.StorageCapacity) != 64 || aws.ToInt32(up.FileSystem.WindowsConfiguration.ThroughputCapacity) != 64 {
		t.Fatalf("update: %v %+v", err, up)
	}
	arn := aws.ToString(up.FileSystem.ResourceARN)
	if _, err := fc.TagResource(ctx, &fsx.TagResourceInput{ResourceARN: aws.String(arn), Tags: []fsxtypes.Tag{{Key: aws.String("team"), Value: aws.String("win")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.UntagResource(ctx, &fsx.UntagResourceInput{ResourceARN: aws.String(arn), TagKeys: []string{"Name"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := fc.ListTagsForResource(ctx, &fsx.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Fatalf("tags: %v %+v", err, tags)
	}
	_, err = fc.ListTagsForResource(ctx, &fsx.ListTagsForResourceInput{ResourceARN: aws.String("arn:aws:fsx:us-east-1:000000000000:file-system/fs-0123456789abcdef0")})
	wantCode(t, "tags of a missing file system", err, "ResourceNotFound")

	// EFS does not show it.
	efsd, err := efsClient(ep).DescribeFileSystems(ctx, &efssdk.DescribeFileSystemsInput{})
	if err != nil || len(efsd.FileSystems) != 0 {
		t.Fatalf("EFS lists the FSx file system: %v %+v", err, efsd)
	}
	// Nor does it change it.
	_, err = efsClient(ep).PutFileSystemPolicy(ctx, &efssdk.PutFileSystemPolicyInput{FileSystemId: aws.String(id),
		Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"elasticfilesystem:ClientMount"}]}`)})
	wantCode(t, "an EFS policy on an FSx file system", err, "FileSystemNotFound")

	del, err := fc.DeleteFileSystem(ctx, &fsx.DeleteFileSystemInput{FileSystemId: aws.String(id)})
	if err != nil || del.Lifecycle != fsxtypes.FileSystemLifecycleDeleting {
		t.Fatalf("delete: %v %+v", err, del)
	}
	eventually(t, "the file system gone", func() bool {
		_, err := fc.DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{FileSystemIds: []string{id}})
		return err != nil && strings.Contains(err.Error(), "FileSystemNotFound")
	})
	left, _ := s.Client().Get(ctx, state.FSMetaPrefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if left.Count != 0 {
		t.Fatalf("the deleted file system's metadata is left: %d keys", left.Count)
	}
}

// smbclient runs Debian's smbclient against a share; it returns the
// output and whether it succeeded.
func smbclient(t *testing.T, addr, user, password, command string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("smbclient"); err != nil {
		t.Fatal("smbclient is required (Debian package smbclient)")
	}
	cmd := exec.Command("smbclient", "//"+addr+"/share", "-U", user+"%"+password, "-W", "CORP", "-m", "SMB3", "-c", command)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// endpointAddr is a zone's SMB endpoint address of a file system once it
// serves (from its record).
func endpointAddr(t testing.TB, c *cluster, id, zone string) string {
	t.Helper()
	var addr string
	deadline := time.Now().Add(60 * time.Second)
	for addr == "" {
		resp, err := c.srv.Client().Get(c.ctx, state.FSxEndpointKey(id, zone))
		if err == nil && len(resp.Kvs) > 0 {
			var e struct {
				Address string `json:"address"`
				Ready   bool   `json:"ready"`
			}
			if json.Unmarshal(resp.Kvs[0].Value, &e) == nil && e.Ready {
				addr = e.Address
			}
		}
		if addr == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no SMB endpoint of %s serves in %s", id, zone)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return addr
}

// TestFSxSMBShares: a MULTI_AZ_1 file system served by Samba in two zones.
// A file put over SMB in one zone is read by a task with an FSx volume in
// the other; what the task writes is listed and fetched over SMB with the
// same content; a wrong password and an unknown user are refused, and so
// is a task with wrong credentials; with one zone's agent and its Samba
// gone, the other zone's endpoint still serves.
func TestFSxSMBShares(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("us-east-1a", "")
	b := c.addAgent("us-east-1b", "")
	ctx := c.ctx
	fc := fsxClient(c.srv.Endpoint())
	created, err := fc.CreateFileSystem(ctx, &fsx.CreateFileSystemInput{FileSystemType: fsxtypes.FileSystemTypeWindows, StorageCapacity: aws.Int32(32),
		SubnetIds: []string{"subnet-us-east-1a", "subnet-us-east-1b"},
		WindowsConfiguration: &fsxtypes.CreateFileSystemWindowsConfiguration{ThroughputCapacity: aws.Int32(32), DeploymentType: fsxtypes.WindowsDeploymentTypeMultiAz1,
			PreferredSubnetId: aws.String("subnet-us-east-1a"), SelfManagedActiveDirectoryConfiguration: selfManagedAD("Admin", "Pa55-smb-word")}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.FileSystem.FileSystemId)
	addrA, addrB := endpointAddr(t, c, id, "us-east-1a"), endpointAddr(t, c, id, "us-east-1b")
	t.Logf("endpoints: %s %s", addrA, addrB)
	eventually(t, "the file system AVAILABLE", func() bool {
		d, err := fc.DescribeFileSystems(ctx, &fsx.DescribeFileSystemsInput{FileSystemIds: []string{id}})
		return err == nil && d.FileSystems[0].Lifecycle == fsxtypes.FileSystemLifecycleAvailable &&
			aws.ToString(d.FileSystems[0].WindowsConfiguration.PreferredFileServerIp) == addrA && aws.ToString(d.FileSystems[0].DNSName) == addrA
	})

	dir := t.TempDir()
	hello := make([]byte, 3<<20)
	rand.Read(hello)
	os.WriteFile(filepath.Join(dir, "hello.bin"), hello, 0o644)
	if out, ok := smbclient(t, addrA, "Admin", "Pa55-smb-word", "mkdir app; put "+filepath.Join(dir, "hello.bin")+` app\hello.bin`); !ok {
		t.Fatalf("put over SMB in us-east-1a: %s", out)
	}
	for _, bad := range [][2]string{{"Admin", "wrong"}, {"nobody-here", "Pa55-smb-word"}} {
		if out, ok := smbclient(t, addrA, bad[0], bad[1], "ls"); ok || !strings.Contains(out, "NT_STATUS_LOGON_FAILURE") {
			t.Fatalf("user %s with password %s: want NT_STATUS_LOGON_FAILURE, got %v %s", bad[0], bad[1], ok, out)
		}
	}

	// A task in the other zone, with the FSx volume rooted at share\app.
	sm := smClient(c.srv.Endpoint())
	good, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("fsx-creds"), SecretString: aws.String(`{"username":"Admin","password":"Pa55-smb-word"}`)})
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("fsx-wrong"), SecretString: aws.String(`{"username":"Admin","password":"nope"}`)})
	if err != nil {
		t.Fatal(err)
	}
	register := func(family, secretARN string) string {
		return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String(family),
			Volumes: []types.Volume{{Name: aws.String("win"), FsxWindowsFileServerVolumeConfiguration: &types.FSxWindowsFileServerVolumeConfiguration{
				FileSystemId: aws.String(id), RootDirectory: aws.String(`share\app`),
				AuthorizationConfig: &types.FSxWindowsFileServerAuthorizationConfig{CredentialsParameter: aws.String(secretARN), Domain: aws.String("corp.example.com")}}}},
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"),
				MountPoints: []types.MountPoint{{SourceVolume: aws.String("win"), ContainerPath: aws.String("/data")}},
				EntryPoint:  []string{"sh", "-c"},
				Command:     []string{`test "$(wc -c < /data/hello.bin)" -eq 3145728 && cat /data/hello.bin /data/hello.bin > /data/from-task.bin && ls / > /data/listing.txt`}}}})
	}
	runIn := func(td, zone string) types.Task {
		out, err := c.ecs.RunTask(ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td),
			PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == " + zone)}}})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("run: %v %+v", err, out)
		}
		return c.wait(out.Tasks[0].TaskArn, "STOPPED")
	}
	done := runIn(register("fsx-reader", aws.ToString(good.ARN)), "us-east-1b")
	if code := exitCode(done, "app"); code != 0 {
		t.Fatalf("the task in us-east-1b did not read the file put over SMB: exit %d, %s %s", code, aws.ToString(done.StoppedReason), describeContainers(done))
	}
	out, ok := smbclient(t, addrB, "admin", "Pa55-smb-word", `ls app\*`)
	if !ok || !strings.Contains(out, "from-task.bin") || !strings.Contains(out, "listing.txt") {
		t.Fatalf("ls over SMB in us-east-1b: %v %s", ok, out)
	}
	got := filepath.Join(dir, "from-task.bin")
	if out, ok := smbclient(t, addrB, "Admin", "Pa55-smb-word", `get app\from-task.bin `+got); !ok {
		t.Fatalf("get over SMB: %s", out)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, append(append([]byte{}, hello...), hello...)) {
		t.Fatalf("the file the task wrote came back over SMB with %d bytes, not the task's", len(b))
	}

	// Wrong credentials: the task stops before its container starts.
	refused := runIn(register("fsx-wrong", aws.ToString(wrong.ARN)), "us-east-1b")
	if r := aws.ToString(refused.StoppedReason); !strings.Contains(r, "logon failure") {
		t.Fatalf("a task with the wrong password: %q %s", r, describeContainers(refused))
	}

	// An AWS Managed AD file system: Berth cannot read the directory, so
	// the operator gives the share its users (berth fsx user add).
	managed, err := fc.CreateFileSystem(ctx, &fsx.CreateFileSystemInput{FileSystemType: fsxtypes.FileSystemTypeWindows, StorageCapacity: aws.Int32(32),
		SubnetIds: []string{"subnet-us-east-1b"}, WindowsConfiguration: &fsxtypes.CreateFileSystemWindowsConfiguration{ThroughputCapacity: aws.Int32(8),
			DeploymentType: fsxtypes.WindowsDeploymentTypeSingleAz2, ActiveDirectoryId: aws.String("d-0123456789")}})
	if err != nil {
		t.Fatal(err)
	}
	mid := aws.ToString(managed.FileSystem.FileSystemId)
	bin := buildBerth(t)
	add := exec.Command(bin, "fsx", "user", "add", mid, "ops", "--password-stdin", "--endpoint", c.srv.Endpoint())
	add.Stdin = strings.NewReader("ops-Pa55\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("berth fsx user add: %v %s", err, out)
	}
	maddr := endpointAddr(t, c, mid, "us-east-1b")
	if maddr == addrB {
		t.Fatalf("two file systems share the address %s", maddr)
	}
	// The agent applies a change of users at its next poll, restarting
	// the share's smbd (README): wait for the user to be let in.
	eventually(t, "the operator's user let in", func() bool {
		_, ok := smbclient(t, maddr, "ops", "ops-Pa55", "ls")
		return ok
	})
	if out, ok := smbclient(t, maddr, "ops", "ops-Pa55", "mkdir ops-was-here; ls"); !ok || !strings.Contains(out, "ops-was-here") {
		t.Fatalf("the operator's user on the managed-AD share: %s", out)
	}
	if out, ok := smbclient(t, maddr, "Admin", "Pa55-smb-word", "ls"); ok {
		t.Fatalf("another file system's user reached this share: %s", out)
	}
	// A new password: the old one stops working, the new one works.
	add = exec.Command(bin, "fsx", "user", "add", mid, "ops", "--password-stdin", "--endpoint", c.srv.Endpoint())
	add.Stdin = strings.NewReader("ops-N3w\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("berth fsx user add (new password): %v %s", err, out)
	}
	eventually(t, "the new password in force", func() bool {
		_, newOK := smbclient(t, maddr, "ops", "ops-N3w", "ls")
		_, oldOK := smbclient(t, maddr, "ops", "ops-Pa55", "ls")
		return newOK && !oldOK
	})
	// Placement follows the file system's zones: with no constraint, a
	// task with a volume of the us-east-1b file system runs there.
	placed := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("fsx-managed"),
		Volumes: []types.Volume{{Name: aws.String("win"), FsxWindowsFileServerVolumeConfiguration: &types.FSxWindowsFileServerVolumeConfiguration{
			FileSystemId: aws.String(mid), RootDirectory: aws.String("share"),
			AuthorizationConfig: &types.FSxWindowsFileServerAuthorizationConfig{CredentialsParameter: aws.String("/fsx/ops"), Domain: aws.String("anything.example")}}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), EntryPoint: []string{"sh", "-c"}, Command: []string{"test -d /data/ops-was-here"},
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("win"), ContainerPath: aws.String("/data")}}}}})
	if _, err := ssmClient(c.srv.Endpoint()).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/fsx/ops"), Type: ssmtypes.ParameterTypeSecureString,
		Value: aws.String(`{"username":"ops","password":"ops-N3w"}`)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		task := c.wait(c.run(placed).TaskArn, "STOPPED")
		if code := exitCode(task, "app"); code != 0 || aws.ToString(task.AvailabilityZone) != "us-east-1b" {
			t.Fatalf("a task of the us-east-1b file system: zone %q, exit %d, %s %s", aws.ToString(task.AvailabilityZone), code, aws.ToString(task.StoppedReason), describeContainers(task))
		}
	}
	ls, err := exec.Command(bin, "fsx", "ls", "--endpoint", c.srv.Endpoint()).CombinedOutput()
	if err != nil || !strings.Contains(string(ls), mid) || !strings.Contains(string(ls), maddr) || !strings.Contains(string(ls), "ops") {
		t.Fatalf("berth fsx ls: %v %s", err, ls)
	}

	// Samba killed: the agent starts it again, and the data is there.
	stopSMB(a.dir, "")
	eventually(t, "smbd in us-east-1a again", func() bool {
		_, ok := smbclient(t, addrA, "Admin", "Pa55-smb-word", "ls")
		return ok
	})
	// The agent restarted: Samba and the mount outlive it, and the new
	// agent keeps serving.
	c.stopAgent(b)
	if out, ok := smbclient(t, addrB, "Admin", "Pa55-smb-word", `ls app\hello.bin`); !ok {
		t.Fatalf("the endpoint of a stopped agent (its Samba still runs): %s", out)
	}
	c.addAgent("us-east-1b", b.dir)
	time.Sleep(3 * smbPollForTests)
	if addr := endpointAddr(t, c, id, "us-east-1b"); addr != addrB {
		t.Fatalf("the restarted agent serves at %s, not %s", addr, addrB)
	}
	got3 := filepath.Join(dir, "after-restarts.bin")
	if out, ok := smbclient(t, addrB, "Admin", "Pa55-smb-word", `get app\from-task.bin `+got3); !ok {
		t.Fatalf("get after the restarts: %s", out)
	}
	if b, _ := os.ReadFile(got3); len(b) != 2*len(hello) {
		t.Fatalf("after the restarts: %d bytes", len(b))
	}

	// One zone's agent gone, its Samba left running (an agent stopped for
	// good on a host that stays up): the other zone's endpoint serves on;
	// another agent of the lost zone takes its endpoint over once the
	// lease expired, at an address of its own, and the one left behind
	// can no longer change the file system.
	c.stopAgent(a)
	got2 := filepath.Join(dir, "again.bin")
	if out, ok := smbclient(t, addrB, "Admin", "Pa55-smb-word", `get app\hello.bin `+got2); !ok {
		diag, _ := exec.Command("sh", "-c", "ip route; ip -br addr; docker ps -a --format '{{.Names}} {{.Status}}'; docker network ls").CombinedOutput()
		t.Fatalf("the other zone's endpoint (%s; the lost zone's was %s) after losing us-east-1a: %s\n%s", addrB, addrA, out, diag)
	}
	if b, _ := os.ReadFile(got2); !bytes.Equal(b, hello) {
		t.Fatal("the other zone's endpoint returned other bytes")
	}
	c.addAgent("us-east-1a", "")
	var addrC string
	deadline := time.Now().Add(60 * time.Second)
	for addrC == "" || addrC == addrA {
		if time.Now().After(deadline) {
			t.Fatal("no agent took the us-east-1a endpoint over")
		}
		time.Sleep(500 * time.Millisecond)
		addrC = endpointAddr(t, c, id, "us-east-1a")
	}
	os.WriteFile(filepath.Join(dir, "late.txt"), []byte("late"), 0o644)
	if out, ok := smbclient(t, addrA, "Admin", "Pa55-smb-word", "put "+filepath.Join(dir, "late.txt")+" orphan.txt"); ok {
		t.Fatalf("the Samba of the agent taken over from still writes: %s", out)
	}
	if out, ok := smbclient(t, addrC, "Admin", "Pa55-smb-word", "put "+filepath.Join(dir, "late.txt")+` app\late.txt; ls app\*`); !ok || !strings.Contains(out, "hello.bin") {
		t.Fatalf("the new us-east-1a endpoint at %s: %s", addrC, out)
	}
}
