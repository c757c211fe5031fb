package e2e

import (
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
)

// fullDefinition uses every volume kind and the container fields real apps need.
func fullDefinition(family string) *ecs.RegisterTaskDefinitionInput {
	return &ecs.RegisterTaskDefinitionInput{
		Family:                  aws.String(family),
		NetworkMode:             types.NetworkModeBridge,
		Cpu:                     aws.String("1024"),
		Memory:                  aws.String("2048"),
		RequiresCompatibilities: []types.Compatibility{types.CompatibilityEc2},
		PlacementConstraints: []types.TaskDefinitionPlacementConstraint{{
			Type: types.TaskDefinitionPlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.os-type == linux"),
		}},
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}, {Key: aws.String("berth:sticky-volumes"), Value: aws.String("uploads")}},
		Volumes: []types.Volume{
			{Name: aws.String("uploads"), Host: &types.HostVolumeProperties{SourcePath: aws.String("/srv/uploads")}},
			{Name: aws.String("scratch"), Host: &types.HostVolumeProperties{}},
			{Name: aws.String("pgdata"), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{
				Scope: types.ScopeShared, Autoprovision: aws.Bool(true), Driver: aws.String("local"),
				DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs"}, Labels: map[string]string{"app": "db"},
			}},
			{Name: aws.String("cache"), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{Scope: types.ScopeTask}},
			{Name: aws.String("shared"), EfsVolumeConfiguration: &types.EFSVolumeConfiguration{
				FileSystemId: aws.String("fs-12345678"), RootDirectory: aws.String("/"),
				TransitEncryption: types.EFSTransitEncryptionEnabled, TransitEncryptionPort: aws.Int32(2049),
				AuthorizationConfig: &types.EFSAuthorizationConfig{AccessPointId: aws.String("fsap-0123456789abcdef0"), Iam: types.EFSAuthorizationConfigIAMEnabled},
			}},
			{Name: aws.String("winshare"), FsxWindowsFileServerVolumeConfiguration: &types.FSxWindowsFileServerVolumeConfiguration{
				FileSystemId: aws.String("fs-0123456789abcdef0"), RootDirectory: aws.String(`\share`),
				AuthorizationConfig: &types.FSxWindowsFileServerAuthorizationConfig{CredentialsParameter: aws.String("arn:aws:ssm:us-east-1:000000000000:parameter/creds"), Domain: aws.String("corp.example.com")},
			}},
			{Name: aws.String("ebs"), ConfiguredAtLaunch: aws.Bool(true)},
		},
		ContainerDefinitions: []types.ContainerDefinition{
			{
				Name: aws.String("db"), Image: aws.String("postgres:16"), Cpu: 512, Memory: aws.Int32(1024), MemoryReservation: aws.Int32(512),
				Essential: aws.Bool(true), Command: []string{"postgres", "-c", "fsync=on"}, EntryPoint: []string{"docker-entrypoint.sh"},
				Environment:  []types.KeyValuePair{{Name: aws.String("PGDATA"), Value: aws.String("/var/lib/postgresql/data")}},
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(5432), HostPort: aws.Int32(5432), Protocol: types.TransportProtocolTcp}},
				User:         aws.String("999:999"), WorkingDirectory: aws.String("/var/lib/postgresql"), ReadonlyRootFilesystem: aws.Bool(false),
				MountPoints: []types.MountPoint{
					{SourceVolume: aws.String("pgdata"), ContainerPath: aws.String("/var/lib/postgresql/data"), ReadOnly: aws.Bool(false)},
					{SourceVolume: aws.String("ebs"), ContainerPath: aws.String("/ebs")},
					{SourceVolume: aws.String("shared"), ContainerPath: aws.String("/shared"), ReadOnly: aws.Bool(true)},
				},
				StopTimeout:      aws.Int32(60),
				HealthCheck:      &types.HealthCheck{Command: []string{"CMD-SHELL", "pg_isready"}, Interval: aws.Int32(10), Timeout: aws.Int32(3), Retries: aws.Int32(5), StartPeriod: aws.Int32(30)},
				DockerLabels:     map[string]string{"tier": "db"},
				Ulimits:          []types.Ulimit{{Name: types.UlimitNameNofile, SoftLimit: 65536, HardLimit: 65536}},
				LinuxParameters:  &types.LinuxParameters{Tmpfs: []types.Tmpfs{{ContainerPath: aws.String("/run/postgresql"), Size: 64, MountOptions: []string{"rw", "noexec"}}}},
				LogConfiguration: &types.LogConfiguration{LogDriver: types.LogDriverJsonFile, Options: map[string]string{"max-size": "10m"}},
			},
			{
				Name: aws.String("web"), Image: aws.String("nginx"), Cpu: 256, MemoryReservation: aws.Int32(256), Essential: aws.Bool(true),
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80), HostPort: aws.Int32(8080), Protocol: types.TransportProtocolTcp}},
				MountPoints: []types.MountPoint{
					{SourceVolume: aws.String("uploads"), ContainerPath: aws.String("/uploads")},
					{SourceVolume: aws.String("scratch"), ContainerPath: aws.String("/tmp/scratch")},
					{SourceVolume: aws.String("cache"), ContainerPath: aws.String("/cache")},
					{SourceVolume: aws.String("winshare"), ContainerPath: aws.String("/win")},
				},
				VolumesFrom: []types.VolumeFrom{{SourceContainer: aws.String("db"), ReadOnly: aws.Bool(true)}},
				DependsOn:   []types.ContainerDependency{{ContainerName: aws.String("db"), Condition: types.ContainerConditionHealthy}},
			},
		},
	}
}

func TestTaskDefinitionRoundTripsEveryVolumeKind(t *testing.T) {
	e := newEnv(t)
	in := fullDefinition("app")
	reg, err := e.ecs.RegisterTaskDefinition(e.ctx, in)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if got := aws.ToString(reg.TaskDefinition.TaskDefinitionArn); got != "arn:aws:ecs:us-east-1:000000000000:task-definition/app:1" {
		t.Fatalf("arn = %s", got)
	}
	out, err := e.ecs.DescribeTaskDefinition(e.ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("app:1"), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	td := out.TaskDefinition
	if !reflect.DeepEqual(td.Volumes, in.Volumes) {
		t.Errorf("volumes differ:\n got %+v\nwant %+v", td.Volumes, in.Volumes)
	}
	if !reflect.DeepEqual(out.Tags, in.Tags) {
		t.Errorf("tags = %+v", out.Tags)
	}
	// ECS fills essential=true and protocol=tcp when omitted; everything else is as sent.
	want := in.ContainerDefinitions
	if !reflect.DeepEqual(td.ContainerDefinitions, want) {
		t.Errorf("container definitions differ:\n got %+v\nwant %+v", td.ContainerDefinitions, want)
	}
	if aws.ToString(td.Cpu) != "1024" || aws.ToString(td.Memory) != "2048" || td.NetworkMode != types.NetworkModeBridge ||
		td.Status != types.TaskDefinitionStatusActive || td.Revision != 1 || td.RegisteredAt == nil ||
		!reflect.DeepEqual(td.PlacementConstraints, in.PlacementConstraints) {
		t.Errorf("task-level fields wrong: %+v", td)
	}
	var reqs []string
	for _, a := range td.RequiresAttributes {
		reqs = append(reqs, aws.ToString(a.Name))
	}
	for _, w := range []string{"ecs.capability.efs", "ecs.capability.efsAuth", "ecs.capability.ebs-task-attach", "ecs.capability.container-health-check"} {
		if !contains(reqs, w) {
			t.Errorf("requiresAttributes %v lacks %s", reqs, w)
		}
	}
	// The latest ACTIVE revision is found by family alone.
	if _, err := e.ecs.RegisterTaskDefinition(e.ctx, in); err != nil {
		t.Fatal(err)
	}
	latest, err := e.ecs.DescribeTaskDefinition(e.ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("app")})
	if err != nil || latest.TaskDefinition.Revision != 2 {
		t.Fatalf("latest revision: %v %v", err, latest)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func apiCode(err error) (string, string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

func TestRejectedRegistrationWritesNothing(t *testing.T) {
	e := newEnv(t)
	in := fullDefinition("bad")
	in.ContainerDefinitions[0].MountPoints[0].SourceVolume = aws.String("nope")
	_, err := e.ecs.RegisterTaskDefinition(e.ctx, in)
	if code, msg := apiCode(err); code != "ClientException" || msg != "Unknown volume 'nope'." {
		t.Fatalf("got %s %q", code, msg)
	}
	fams, err := e.ecs.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{Status: types.TaskDefinitionFamilyStatusAll})
	if err != nil || len(fams.Families) != 0 {
		t.Fatalf("families after rejected call: %v %v", fams.Families, err)
	}
	// The next good registration is revision 1: no revision was consumed.
	good := fullDefinition("bad")
	out, err := e.ecs.RegisterTaskDefinition(e.ctx, good)
	if err != nil || out.TaskDefinition.Revision != 1 {
		t.Fatalf("revision after rejection: %v %v", err, out)
	}
}

func TestTaskDefinitionListingPaginationAndLifecycle(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 7; i++ {
		e.registerSimple("alpha", 64)
	}
	for i := 0; i < 3; i++ {
		e.registerSimple("beta", 64)
	}
	var arns []string
	p := ecs.NewListTaskDefinitionsPaginator(e.ecs, &ecs.ListTaskDefinitionsInput{MaxResults: aws.Int32(3)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		arns = append(arns, page.TaskDefinitionArns...)
	}
	if len(arns) != 10 || pages != 4 {
		t.Fatalf("got %d arns in %d pages: %v", len(arns), pages, arns)
	}
	if arns[0] != "arn:aws:ecs:us-east-1:000000000000:task-definition/alpha:1" || arns[9] != "arn:aws:ecs:us-east-1:000000000000:task-definition/beta:3" {
		t.Fatalf("order: %v", arns)
	}
	desc, err := e.ecs.ListTaskDefinitions(e.ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("alpha"), Sort: types.SortOrderDesc, MaxResults: aws.Int32(2)})
	if err != nil || len(desc.TaskDefinitionArns) != 2 || desc.TaskDefinitionArns[0] != "arn:aws:ecs:us-east-1:000000000000:task-definition/alpha:7" || desc.NextToken == nil {
		t.Fatalf("desc: %v %+v", err, desc)
	}
	// Deregister every beta revision: the family becomes INACTIVE.
	for i := 1; i <= 3; i++ {
		out, err := e.ecs.DeregisterTaskDefinition(e.ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("beta:" + string(rune('0'+i)))})
		if err != nil || out.TaskDefinition.Status != types.TaskDefinitionStatusInactive || out.TaskDefinition.DeregisteredAt == nil {
			t.Fatalf("deregister: %v %+v", err, out)
		}
	}
	fams, _ := e.ecs.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{})
	if !reflect.DeepEqual(fams.Families, []string{"alpha"}) {
		t.Fatalf("active families = %v", fams.Families)
	}
	inactive, _ := e.ecs.ListTaskDefinitionFamilies(e.ctx, &ecs.ListTaskDefinitionFamiliesInput{Status: types.TaskDefinitionFamilyStatusInactive})
	if !reflect.DeepEqual(inactive.Families, []string{"beta"}) {
		t.Fatalf("inactive families = %v", inactive.Families)
	}
	_, err = e.ecs.DeregisterTaskDefinition(e.ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("alpha")})
	if code, _ := apiCode(err); code != "ClientException" {
		t.Fatalf("deregister without revision: %v", err)
	}
	del, err := e.ecs.DeleteTaskDefinitions(e.ctx, &ecs.DeleteTaskDefinitionsInput{TaskDefinitions: []string{"beta:1", "alpha:1"}})
	if err != nil || len(del.TaskDefinitions) != 1 || del.TaskDefinitions[0].Status != types.TaskDefinitionStatusDeleteInProgress || len(del.Failures) != 1 {
		t.Fatalf("delete: %v %+v", err, del)
	}
	if r := aws.ToString(del.Failures[0].Reason); r != "The specified task definition is still in ACTIVE status. Please deregister the target and try again." {
		t.Fatalf("failure reason %q", r)
	}
	_, err = e.ecs.DescribeTaskDefinition(e.ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("nosuch:1")})
	if code, msg := apiCode(err); code != "ClientException" || msg != "Unable to describe task definition." {
		t.Fatalf("describe missing: %s %q", code, msg)
	}
}
