package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/efs/types"
	"github.com/aws/smithy-go"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/cli"
	"github.com/berth-project/berth/internal/server"
)

func efsClient(endpoint string) *efs.Client {
	return efs.New(efs.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1", HTTPClient: cli.NewHTTPClient(),
		Credentials: credentials.NewStaticCredentialsProvider("berth", "berth", ""), RetryMaxAttempts: 1})
}

func efsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestEFSAPI drives every EFS operation Berth serves with the AWS SDK for
// Go v2, error cases included, and checks the same through the AWS CLI.
func TestEFSAPI(t *testing.T) {
	s := start(t)
	c := efsClient(s.Endpoint())
	ctx := context.Background()

	fs, err := c.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("tok-1"), Encrypted: aws.Bool(true),
		Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(fs.FileSystemId)
	if fs.LifeCycleState != types.LifeCycleStateCreating || aws.ToString(fs.Name) != "web" || fs.PerformanceMode != types.PerformanceModeGeneralPurpose ||
		fs.ThroughputMode != types.ThroughputModeBursting || !aws.ToBool(fs.Encrypted) || aws.ToString(fs.KmsKeyId) == "" ||
		!strings.HasPrefix(aws.ToString(fs.FileSystemArn), "arn:aws:elasticfilesystem:us-east-1:000000000000:file-system/fs-") {
		t.Fatalf("created: %+v", fs)
	}
	_, err = c.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("tok-1")})
	var exists *types.FileSystemAlreadyExists
	if !errors.As(err, &exists) || aws.ToString(exists.FileSystemId) != id {
		t.Fatalf("duplicate creation token: %v", err)
	}
	for _, bad := range []*efs.CreateFileSystemInput{
		{CreationToken: aws.String("p"), ThroughputMode: types.ThroughputModeProvisioned},
		{CreationToken: aws.String("m"), PerformanceMode: types.PerformanceModeMaxIo, ThroughputMode: types.ThroughputModeElastic},
	} {
		if _, err := c.CreateFileSystem(ctx, bad); efsCode(err) != "BadRequest" {
			t.Fatalf("invalid create %+v: %v", bad, err)
		}
	}
	oz, err := c.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("tok-2"), AvailabilityZoneName: aws.String("us-east-1a"),
		ThroughputMode: types.ThroughputModeProvisioned, ProvisionedThroughputInMibps: aws.Float64(64)})
	if err != nil || aws.ToString(oz.AvailabilityZoneName) != "us-east-1a" || aws.ToFloat64(oz.ProvisionedThroughputInMibps) != 64 {
		t.Fatalf("One Zone: %v %+v", err, oz)
	}
	// Describe: by id, by token, and in pages.
	d, err := c.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String(id)})
	if err != nil || len(d.FileSystems) != 1 || d.FileSystems[0].LifeCycleState != types.LifeCycleStateAvailable {
		t.Fatalf("describe by id: %v %+v", err, d)
	}
	d, _ = c.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{CreationToken: aws.String("tok-2")})
	if len(d.FileSystems) != 1 || aws.ToString(d.FileSystems[0].FileSystemId) != aws.ToString(oz.FileSystemId) {
		t.Fatalf("describe by token: %+v", d)
	}
	seen := 0
	p := efs.NewDescribeFileSystemsPaginator(c, &efs.DescribeFileSystemsInput{MaxItems: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil || len(page.FileSystems) != 1 {
			t.Fatalf("page: %v %+v", err, page)
		}
		seen++
	}
	if seen != 2 {
		t.Fatalf("paged through %d file systems", seen)
	}
	if _, err := c.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String("fs-0123456789abcdef0")}); efsCode(err) != "FileSystemNotFound" {
		t.Fatalf("unknown id: %v", err)
	}
	u, err := c.UpdateFileSystem(ctx, &efs.UpdateFileSystemInput{FileSystemId: aws.String(id), ThroughputMode: types.ThroughputModeElastic})
	if err != nil || u.ThroughputMode != types.ThroughputModeElastic {
		t.Fatalf("update: %v %+v", err, u)
	}

	// Mount targets: one per zone, named by subnet-ZONE.
	mt, err := c.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: aws.String(id), SubnetId: aws.String("subnet-us-east-1a")})
	if err != nil || aws.ToString(mt.AvailabilityZoneName) != "us-east-1a" || mt.LifeCycleState != types.LifeCycleStateAvailable {
		t.Fatalf("mount target: %v %+v", err, mt)
	}
	if _, err := c.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: aws.String(id), SubnetId: aws.String("subnet-us-east-1a")}); efsCode(err) != "MountTargetConflict" {
		t.Fatalf("second mount target in a zone: %v", err)
	}
	if _, err := c.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: oz.FileSystemId, SubnetId: aws.String("subnet-us-east-1b")}); efsCode(err) != "AvailabilityZonesMismatch" {
		t.Fatalf("One Zone file system in another zone: %v", err)
	}
	if _, err := c.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: aws.String(id), SubnetId: aws.String("sn-123456789012345")}); efsCode(err) != "SubnetNotFound" {
		t.Fatalf("bad subnet: %v", err)
	}
	if _, err := c.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: aws.String(id), SubnetId: aws.String("subnet-us-east-1b")}); err != nil {
		t.Fatal(err)
	}
	mts, err := c.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{FileSystemId: aws.String(id)})
	if err != nil || len(mts.MountTargets) != 2 {
		t.Fatalf("describe mount targets: %v %+v", err, mts)
	}
	if _, err := c.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{MountTargetId: aws.String("fsmt-0123456789abcdef0")}); efsCode(err) != "MountTargetNotFound" {
		t.Fatalf("unknown mount target: %v", err)
	}
	if d, _ := c.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String(id)}); d.FileSystems[0].NumberOfMountTargets != 2 {
		t.Fatalf("NumberOfMountTargets: %+v", d.FileSystems[0])
	}
	if _, err := c.DeleteFileSystem(ctx, &efs.DeleteFileSystemInput{FileSystemId: aws.String(id)}); efsCode(err) != "FileSystemInUse" {
		t.Fatalf("delete with mount targets: %v", err)
	}

	// Access points: the SDK fills ClientToken; a retry with the same token
	// and request gets the same access point.
	apIn := &efs.CreateAccessPointInput{FileSystemId: aws.String(id), ClientToken: aws.String("ap-token"),
		PosixUser:     &types.PosixUser{Uid: aws.Int64(1000), Gid: aws.Int64(1000), SecondaryGids: []int64{2000}},
		RootDirectory: &types.RootDirectory{Path: aws.String("/app"), CreationInfo: &types.CreationInfo{OwnerUid: aws.Int64(1000), OwnerGid: aws.Int64(1000), Permissions: aws.String("0750")}}}
	ap, err := c.CreateAccessPoint(ctx, apIn)
	if err != nil || !strings.HasPrefix(aws.ToString(ap.AccessPointId), "fsap-") || aws.ToInt64(ap.PosixUser.Uid) != 1000 || aws.ToString(ap.RootDirectory.Path) != "/app" {
		t.Fatalf("access point: %v %+v", err, ap)
	}
	again, err := c.CreateAccessPoint(ctx, apIn)
	if err != nil || aws.ToString(again.AccessPointId) != aws.ToString(ap.AccessPointId) {
		t.Fatalf("retried create: %v %+v", err, again)
	}
	apIn.PosixUser.Uid = aws.Int64(1)
	if _, err := c.CreateAccessPoint(ctx, apIn); efsCode(err) != "AccessPointAlreadyExists" {
		t.Fatalf("token reused for another access point: %v", err)
	}
	if _, err := c.CreateAccessPoint(ctx, &efs.CreateAccessPointInput{FileSystemId: aws.String(id), RootDirectory: &types.RootDirectory{Path: aws.String("/a/../b")}}); efsCode(err) != "BadRequest" {
		t.Fatalf("root path with ..: %v", err)
	}
	aps, err := c.DescribeAccessPoints(ctx, &efs.DescribeAccessPointsInput{FileSystemId: aws.String(id)})
	if err != nil || len(aps.AccessPoints) != 1 {
		t.Fatalf("describe access points: %v %+v", err, aps)
	}
	if _, err := c.DescribeAccessPoints(ctx, &efs.DescribeAccessPointsInput{AccessPointId: aws.String("fsap-0123456789abcdef0")}); efsCode(err) != "AccessPointNotFound" {
		t.Fatalf("unknown access point: %v", err)
	}
	mts, _ = c.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{AccessPointId: ap.AccessPointId})
	if len(mts.MountTargets) != 2 {
		t.Fatalf("mount targets by access point: %+v", mts)
	}

	// Policies.
	if _, err := c.DescribeFileSystemPolicy(ctx, &efs.DescribeFileSystemPolicyInput{FileSystemId: aws.String(id)}); efsCode(err) != "PolicyNotFound" {
		t.Fatalf("no policy yet: %v", err)
	}
	if _, err := c.PutFileSystemPolicy(ctx, &efs.PutFileSystemPolicyInput{FileSystemId: aws.String(id), Policy: aws.String("{not json")}); efsCode(err) != "InvalidPolicyException" {
		t.Fatalf("invalid policy: %v", err)
	}
	pol := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["elasticfilesystem:ClientMount"]}]}`
	if _, err := c.PutFileSystemPolicy(ctx, &efs.PutFileSystemPolicyInput{FileSystemId: aws.String(id), Policy: aws.String(pol)}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.DescribeFileSystemPolicy(ctx, &efs.DescribeFileSystemPolicyInput{FileSystemId: aws.String(id)}); err != nil || aws.ToString(got.Policy) != pol {
		t.Fatalf("describe policy: %v %+v", err, got)
	}
	if _, err := c.DeleteFileSystemPolicy(ctx, &efs.DeleteFileSystemPolicyInput{FileSystemId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}

	// Tags on file systems and access points.
	if _, err := c.TagResource(ctx, &efs.TagResourceInput{ResourceId: aws.String(id), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}, {Key: aws.String("Name"), Value: aws.String("api")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &efs.UntagResourceInput{ResourceId: aws.String(id), TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &efs.ListTagsForResourceInput{ResourceId: aws.String(id)})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "api" {
		t.Fatalf("tags: %v %+v", err, tags)
	}
	if d, _ := c.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String(id)}); aws.ToString(d.FileSystems[0].Name) != "api" {
		t.Fatalf("Name follows the Name tag: %+v", d.FileSystems[0])
	}
	if _, err := c.TagResource(ctx, &efs.TagResourceInput{ResourceId: ap.AccessPointId, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	if tags, _ := c.ListTagsForResource(ctx, &efs.ListTagsForResourceInput{ResourceId: ap.AccessPointId}); len(tags.Tags) != 1 {
		t.Fatalf("access point tags: %+v", tags)
	}

	// The same through the AWS CLI.
	ep := s.Endpoint()
	out, e := runAWS(t, ep, "efs", "describe-file-systems", "--creation-token", "tok-1")
	if e != "" || len(out["FileSystems"].([]any)) != 1 {
		t.Fatalf("CLI describe: %s %v", e, out)
	}
	if _, e := runAWS(t, ep, "efs", "create-file-system", "--creation-token", "tok-1"); !strings.Contains(e, "FileSystemAlreadyExists") {
		t.Fatalf("CLI duplicate token: %s", e)
	}
	if _, e := runAWS(t, ep, "efs", "create-mount-target", "--file-system-id", id, "--subnet-id", "subnet-us-east-1a"); !strings.Contains(e, "MountTargetConflict") {
		t.Fatalf("CLI second mount target: %s", e)
	}
	if _, e := runAWS(t, ep, "efs", "delete-file-system", "--file-system-id", id); !strings.Contains(e, "FileSystemInUse") {
		t.Fatalf("CLI delete in use: %s", e)
	}
	if _, e := runAWS(t, ep, "efs", "describe-access-points", "--access-point-id", "fsap-0123456789abcdef0"); !strings.Contains(e, "AccessPointNotFound") {
		t.Fatalf("CLI unknown access point: %s", e)
	}

	// Every operation once more through the AWS CLI, on a file system of its own.
	cli := func(args ...string) map[string]any {
		t.Helper()
		out, e := runAWS(t, ep, append([]string{"efs"}, args...)...)
		if e != "" {
			t.Fatalf("aws efs %v: %s", args, e)
		}
		return out
	}
	cf := cli("create-file-system", "--creation-token", "cli-token", "--tags", "Key=Name,Value=cli")
	cid := cf["FileSystemId"].(string)
	if cli("describe-file-systems", "--file-system-id", cid)["FileSystems"].([]any)[0].(map[string]any)["Name"] != "cli" {
		t.Fatal("CLI describe-file-systems: wrong name")
	}
	if cli("update-file-system", "--file-system-id", cid, "--throughput-mode", "elastic")["ThroughputMode"] != "elastic" {
		t.Fatal("CLI update-file-system")
	}
	cmt := cli("create-mount-target", "--file-system-id", cid, "--subnet-id", "subnet-us-east-1c")["MountTargetId"].(string)
	if len(cli("describe-mount-targets", "--file-system-id", cid)["MountTargets"].([]any)) != 1 {
		t.Fatal("CLI describe-mount-targets")
	}
	cap := cli("create-access-point", "--file-system-id", cid, "--posix-user", "Uid=7,Gid=7")["AccessPointId"].(string)
	if len(cli("describe-access-points", "--file-system-id", cid)["AccessPoints"].([]any)) != 1 {
		t.Fatal("CLI describe-access-points")
	}
	cli("put-file-system-policy", "--file-system-id", cid, "--policy", pol)
	if cli("describe-file-system-policy", "--file-system-id", cid)["Policy"] != pol {
		t.Fatal("CLI describe-file-system-policy")
	}
	cli("delete-file-system-policy", "--file-system-id", cid)
	cli("tag-resource", "--resource-id", cid, "--tags", "Key=env,Value=test")
	cli("untag-resource", "--resource-id", cid, "--tag-keys", "env")
	if len(cli("list-tags-for-resource", "--resource-id", cid)["Tags"].([]any)) != 1 {
		t.Fatal("CLI list-tags-for-resource")
	}
	cli("delete-access-point", "--access-point-id", cap)
	cli("delete-mount-target", "--mount-target-id", cmt)
	cli("delete-file-system", "--file-system-id", cid)
	if _, e := runAWS(t, ep, "efs", "describe-mount-targets", "--mount-target-id", cmt); !strings.Contains(e, "MountTargetNotFound") {
		t.Fatalf("CLI deleted mount target: %s", e)
	}

	// Deleting: access point, mount targets, then the file system.
	if _, err := c.DeleteAccessPoint(ctx, &efs.DeleteAccessPointInput{AccessPointId: ap.AccessPointId}); err != nil {
		t.Fatal(err)
	}
	mts, _ = c.DescribeMountTargets(ctx, &efs.DescribeMountTargetsInput{FileSystemId: aws.String(id)})
	for _, m := range mts.MountTargets {
		if _, e := runAWS(t, ep, "efs", "delete-mount-target", "--mount-target-id", aws.ToString(m.MountTargetId)); e != "" {
			t.Fatal(e)
		}
	}
	if _, err := c.DeleteFileSystem(ctx, &efs.DeleteFileSystemInput{FileSystemId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeFileSystems(ctx, &efs.DescribeFileSystemsInput{FileSystemId: aws.String(id)}); efsCode(err) != "FileSystemNotFound" {
		t.Fatalf("deleted file system: %v", err)
	}
}

// TestAgentKeysAreScoped: an agent's access key may do what an agent does
// and no more: no API calls of an operator, no mount without a token, and
// EFS mount tokens only for the tasks of the instance it registered.
func TestAgentKeysAreScoped(t *testing.T) {
	s := start(t, func(c *server.Config) {
		c.Credentials = map[string]string{"OPERATOR": "op-secret"}
		c.AgentCredentials = map[string]string{"AGENT1": "a1-secret", "AGENT2": "a2-secret"}
		c.RequireAuth = true
	})
	ctx := context.Background()
	op := client(s.Endpoint(), "OPERATOR", "op-secret")
	a1, a2 := client(s.Endpoint(), "AGENT1", "a1-secret"), client(s.Endpoint(), "AGENT2", "a2-secret")
	if _, err := a1.ListClusters(ctx, &ecs.ListClustersInput{}); efsCode(err) != "AccessDeniedException" {
		t.Fatalf("ListClusters with an agent key: %v", err)
	}
	register := func(c *ecs.Client, zone string) string {
		arn, err := registerAs(ctx, c, zone, nil)
		if err != nil {
			t.Fatalf("register with an agent key: %v", err)
		}
		return arn
	}
	inst1 := register(a1, "us-east-1a")
	register(a2, "us-east-1a")
	ec := efs.New(efs.Options{BaseEndpoint: aws.String(s.Endpoint()), Region: "us-east-1", RetryMaxAttempts: 1, HTTPClient: cli.NewHTTPClient(),
		Credentials: credentials.NewStaticCredentialsProvider("AGENT1", "a1-secret", "")})
	if _, err := ec.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("x")}); efsCode(err) != "AccessDeniedException" {
		t.Fatalf("CreateFileSystem with an agent key: %v", err)
	}
	oe := efs.New(efs.Options{BaseEndpoint: aws.String(s.Endpoint()), Region: "us-east-1", RetryMaxAttempts: 1, HTTPClient: cli.NewHTTPClient(),
		Credentials: credentials.NewStaticCredentialsProvider("OPERATOR", "op-secret", "")})
	fs, err := oe.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("scoped")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oe.CreateMountTarget(ctx, &efs.CreateMountTargetInput{FileSystemId: fs.FileSystemId, SubnetId: aws.String("subnet-us-east-1a")}); err != nil {
		t.Fatal(err)
	}
	td, err := op.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("efs"),
		Volumes:              []ecstypes.Volume{{Name: aws.String("data"), EfsVolumeConfiguration: &ecstypes.EFSVolumeConfiguration{FileSystemId: fs.FileSystemId}}},
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"), Memory: aws.Int32(64)}}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := op.StartTask(ctx, &ecs.StartTaskInput{TaskDefinition: td.TaskDefinition.TaskDefinitionArn, ContainerInstances: []string{inst1}})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("start: %v %+v", err, run)
	}
	req := map[string]string{"cluster": "default", "containerInstance": inst1, "task": aws.ToString(run.Tasks[0].TaskArn), "volume": "data"}
	var grant struct{ Token string }
	signed := func(id, secret string) *agent.Client {
		return &agent.Client{Endpoint: s.Endpoint(), Credentials: &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}}
	}
	if err := signed("AGENT2", "a2-secret").Post(ctx, "/berth/v1/agent/efs-mount", req, &grant); err == nil || !strings.Contains(err.Error(), "Only the agent") {
		t.Fatalf("another instance's agent asked for a mount token: %v", err)
	}
	if err := signed("AGENT1", "a1-secret").Post(ctx, "/berth/v1/agent/efs-mount", req, &grant); err != nil || grant.Token == "" {
		t.Fatalf("the instance's own agent: %v", err)
	}
	var out map[string]any
	err = signed("AGENT1", "a1-secret").Post(ctx, "/berth/v1/fs/op", map[string]string{"op": "session.open", "fs": aws.ToString(fs.FileSystemId)}, &out)
	if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("a mount with an agent key and no token: %v %v", err, out)
	}
}

// TestEFSFileSystemSettings: lifecycle configuration, backup policy and
// account preferences read as Berth has them, with refusals that change
// nothing for what it cannot do.
func TestEFSFileSystemSettings(t *testing.T) {
	s := start(t)
	c := efsClient(s.Endpoint())
	ctx := context.Background()
	fs, err := c.CreateFileSystem(ctx, &efs.CreateFileSystemInput{CreationToken: aws.String("settings"), Backup: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := fs.FileSystemId

	lc, err := c.DescribeLifecycleConfiguration(ctx, &efs.DescribeLifecycleConfigurationInput{FileSystemId: id})
	if err != nil || len(lc.LifecyclePolicies) != 0 {
		t.Fatalf("lifecycle: %v %+v", err, lc)
	}
	if _, err := c.PutLifecycleConfiguration(ctx, &efs.PutLifecycleConfigurationInput{FileSystemId: id, LifecyclePolicies: []types.LifecyclePolicy{}}); err != nil {
		t.Fatalf("lifecycle management off: %v", err)
	}
	_, err = c.PutLifecycleConfiguration(ctx, &efs.PutLifecycleConfigurationInput{FileSystemId: id,
		LifecyclePolicies: []types.LifecyclePolicy{{TransitionToIA: types.TransitionToIARulesAfter30Days}}})
	var bad *types.BadRequest
	if !errors.As(err, &bad) {
		t.Fatalf("a transition to IA: %v", err)
	}
	_, err = c.DescribeLifecycleConfiguration(ctx, &efs.DescribeLifecycleConfigurationInput{FileSystemId: aws.String("fs-0123456789abcdef0")})
	var missing *types.FileSystemNotFound
	if !errors.As(err, &missing) {
		t.Fatalf("lifecycle of a missing file system: %v", err)
	}

	bp, err := c.DescribeBackupPolicy(ctx, &efs.DescribeBackupPolicyInput{FileSystemId: id})
	if err != nil || bp.BackupPolicy.Status != types.StatusEnabled {
		t.Fatalf("backup policy from creation: %v %+v", err, bp)
	}
	put, err := c.PutBackupPolicy(ctx, &efs.PutBackupPolicyInput{FileSystemId: id, BackupPolicy: &types.BackupPolicy{Status: types.StatusDisabled}})
	if err != nil || put.BackupPolicy.Status != types.StatusDisabled {
		t.Fatalf("put backup policy: %v %+v", err, put)
	}
	if _, err := c.PutBackupPolicy(ctx, &efs.PutBackupPolicyInput{FileSystemId: id, BackupPolicy: &types.BackupPolicy{Status: types.StatusEnabling}}); !errors.As(err, &bad) {
		t.Fatalf("ENABLING requested: %v", err)
	}
	if bp, err := c.DescribeBackupPolicy(ctx, &efs.DescribeBackupPolicyInput{FileSystemId: id}); err != nil || bp.BackupPolicy.Status != types.StatusDisabled {
		t.Fatalf("a refused put changed the policy: %v %+v", err, bp)
	}

	pref, err := c.DescribeAccountPreferences(ctx, &efs.DescribeAccountPreferencesInput{})
	if err != nil || pref.ResourceIdPreference.ResourceIdType != types.ResourceIdTypeLongId {
		t.Fatalf("account preferences: %v %+v", err, pref)
	}
	if _, err := c.PutAccountPreferences(ctx, &efs.PutAccountPreferencesInput{ResourceIdType: types.ResourceIdTypeShortId}); !errors.As(err, &bad) {
		t.Fatalf("short ids: %v", err)
	}

	// The AWS CLI, unchanged.
	out, msg := runAWS(t, s.Endpoint(), "efs", "describe-lifecycle-configuration", "--file-system-id", aws.ToString(id))
	if msg != "" || out["LifecyclePolicies"] == nil {
		t.Fatalf("cli describe-lifecycle-configuration: %s %v", msg, out)
	}
}
