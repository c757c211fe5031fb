package e2e

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func (e *env) registerFargate(family string, mutate ...func(*ecs.RegisterTaskDefinitionInput)) (string, error) {
	in := &ecs.RegisterTaskDefinitionInput{Family: aws.String(family), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox"),
			PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80)}}}}}
	for _, m := range mutate {
		m(in)
	}
	out, err := e.ecs.RegisterTaskDefinition(e.ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn), nil
}

// Fargate's rules, checked as ECS checks them, before anything is written.
func TestFargateDefinitionRules(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, want string
		mutate     func(*ecs.RegisterTaskDefinitionInput)
	}{
		{"bridge", "Fargate only supports network mode 'awsvpc'.", func(in *ecs.RegisterTaskDefinitionInput) { in.NetworkMode = types.NetworkModeBridge }},
		{"no cpu", "Fargate requires that 'cpu' be defined at the task level.", func(in *ecs.RegisterTaskDefinitionInput) { in.Cpu = nil }},
		{"pair", "No Fargate configuration exists for given values: 256 CPU, 4096 memory.", func(in *ecs.RegisterTaskDefinitionInput) { in.Memory = aws.String("4096") }},
		{"privileged", "Tasks using the Fargate launch type do not support privileged mode", func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Privileged = aws.Bool(true)
		}},
		{"host path", "do not support sourcePath", func(in *ecs.RegisterTaskDefinitionInput) {
			in.Volumes = []types.Volume{{Name: aws.String("v"), Host: &types.HostVolumeProperties{SourcePath: aws.String("/tmp")}}}
		}},
		{"docker volume", "do not support dockerVolumeConfiguration", func(in *ecs.RegisterTaskDefinitionInput) {
			in.Volumes = []types.Volume{{Name: aws.String("v"), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{Scope: types.ScopeTask}}}
		}},
		{"links", "Links are not supported when networkMode=awsvpc.", func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Links = []string{"other"}
		}},
		{"hostname", "The hostname parameter is not supported when networkMode=awsvpc", func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].Hostname = aws.String("web")
		}},
		{"host port", "The host port must either be left blank or set to the same value as the container port", func(in *ecs.RegisterTaskDefinitionInput) {
			in.ContainerDefinitions[0].PortMappings[0].HostPort = aws.Int32(8080)
		}},
		{"ephemeral", "The ephemeral storage size must be between 21 and 200 GiB.", func(in *ecs.RegisterTaskDefinitionInput) {
			in.EphemeralStorage = &types.EphemeralStorage{SizeInGiB: 20}
		}},
		{"ipc", "Tasks using the Fargate launch type do not support ipcMode.", func(in *ecs.RegisterTaskDefinitionInput) { in.IpcMode = types.IpcModeHost }},
	} {
		_, err := e.registerFargate("bad", tc.mutate)
		if code, msg := apiCode(err); code != "ClientException" || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: got %s %q, want ClientException %q", tc.name, code, msg, tc.want)
		}
	}
	if l, err := e.ecs.ListTaskDefinitions(e.ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("bad")}); err != nil || len(l.TaskDefinitionArns) != 0 {
		t.Fatalf("a refused definition was written: %v %v", err, l)
	}
	// A definition that meets Fargate's rules is compatible with it
	// without requiring it; a bridge-mode one is not.
	for _, tc := range []struct {
		mode types.NetworkMode
		want bool
	}{{types.NetworkModeAwsvpc, true}, {types.NetworkModeBridge, false}} {
		out, err := e.ecs.RegisterTaskDefinition(e.ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("compat"), NetworkMode: tc.mode,
			Cpu: aws.String("256"), Memory: aws.String("512"), ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("busybox")}}})
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, c := range out.TaskDefinition.Compatibilities {
			got = got || c == types.CompatibilityFargate
		}
		if got != tc.want {
			t.Errorf("%s definition: compatibilities %v", tc.mode, out.TaskDefinition.Compatibilities)
		}
	}
	// What Fargate allows: EFS volumes, a volume configured at launch,
	// ephemeral storage in range.
	if _, err := e.registerFargate("good", func(in *ecs.RegisterTaskDefinitionInput) {
		in.EphemeralStorage = &types.EphemeralStorage{SizeInGiB: 50}
		in.Volumes = []types.Volume{{Name: aws.String("data"), ConfiguredAtLaunch: aws.Bool(true)}}
	}); err != nil {
		t.Fatalf("valid Fargate definition: %v", err)
	}
}

// RunTask's network and capacity rules, and where Fargate tasks may go.
func TestFargateLaunchRules(t *testing.T) {
	e := newEnv(t)
	e.createCluster("default")
	td, err := e.registerFargate("fg")
	if err != nil {
		t.Fatal(err)
	}
	ec2Only := e.registerInstance("default", "zone-a", 4096, 4096, types.Attribute{Name: aws.String("berth.capacity"), Value: aws.String("EC2")})
	run := func(in *ecs.RunTaskInput) (*ecs.RunTaskOutput, error) {
		in.TaskDefinition = aws.String(td)
		return e.ecs.RunTask(e.ctx, in)
	}
	net := awsvpcIn("subnet-zone-a")
	for _, tc := range []struct {
		name, want string
		in         *ecs.RunTaskInput
	}{
		{"no network", "Network Configuration must be provided when networkMode 'awsvpc' is specified.", &ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate}},
		{"bad subnet", "Error retrieving subnet information for [subnet-A_1]", &ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-A_1")}},
		{"bad group", "Error retrieving security group information for [web]", &ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate,
			NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-zone-a"}, SecurityGroups: []string{"web"}}}}},
		{"both", "Specifying both a launch type and capacity provider strategy is not supported.", &ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate, NetworkConfiguration: net,
			CapacityProviderStrategy: []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE")}}}},
		{"unknown provider", "not associated with the cluster", &ecs.RunTaskInput{NetworkConfiguration: net,
			CapacityProviderStrategy: []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("my-asg")}}}},
		{"placement", "Task placement constraints and strategies are not supported", &ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate, NetworkConfiguration: net,
			PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeDistinctInstance}}}},
		{"platform", "The specified platform version does not exist.", &ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate, NetworkConfiguration: net, PlatformVersion: aws.String("9.9.9")}},
		{"public ip on EC2", "Assign public IP is not supported for this launch type.", &ecs.RunTaskInput{LaunchType: types.LaunchTypeEc2,
			NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-zone-a"}, AssignPublicIp: types.AssignPublicIpEnabled}}}},
	} {
		_, err := run(tc.in)
		if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: got %s %q, want InvalidParameterException %q", tc.name, code, msg, tc.want)
		}
	}
	_, err = e.ecs.CreateService(e.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("d"), TaskDefinition: aws.String(td), LaunchType: types.LaunchTypeFargate,
		SchedulingStrategy: types.SchedulingStrategyDaemon, NetworkConfiguration: net})
	if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, "DAEMON") {
		t.Errorf("a Fargate daemon service: %s %q", code, msg)
	}
	bridge := e.registerSimple("bridge", 64)
	_, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(bridge), NetworkConfiguration: net})
	if code, msg := apiCode(err); code != "InvalidParameterException" || msg != "Network Configuration is not valid for the given networkMode of this task definition." {
		t.Errorf("network configuration for bridge mode: %s %q", code, msg)
	}
	if l, _ := e.ecs.ListTasks(e.ctx, &ecs.ListTasksInput{}); len(l.TaskArns) != 0 {
		t.Fatalf("refused launches wrote tasks: %v", l.TaskArns)
	}

	// An instance that offers only EC2 capacity takes no Fargate task.
	out, err := run(&ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate, NetworkConfiguration: net})
	if err != nil || len(out.Tasks) != 0 || len(out.Failures) != 1 || !strings.Contains(aws.ToString(out.Failures[0].Detail), "offers no Fargate capacity") {
		t.Fatalf("Fargate task on an EC2-only instance: %v %+v", err, out)
	}
	fgOnly := e.registerInstance("default", "zone-a", 4096, 4096, types.Attribute{Name: aws.String("berth.capacity"), Value: aws.String("FARGATE")})
	out, err = run(&ecs.RunTaskInput{LaunchType: types.LaunchTypeFargate, NetworkConfiguration: net, Count: aws.Int32(3)})
	if err != nil || len(out.Tasks) != 3 {
		t.Fatalf("Fargate tasks, same port, one instance: %v %+v", err, out)
	}
	// ... and one reserved for Fargate takes no EC2 task.
	out, err = e.ecs.RunTask(e.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(bridge), Count: aws.Int32(4)})
	if err != nil || len(out.Tasks) != 4 {
		t.Fatalf("EC2 tasks: %v %+v", err, out)
	}
	for _, tk := range out.Tasks {
		if aws.ToString(tk.ContainerInstanceArn) != ec2Only {
			t.Fatalf("EC2 task placed on %s, the Fargate-only instance is %s", aws.ToString(tk.ContainerInstanceArn), fgOnly)
		}
	}

	// The cluster's default strategy decides tasks launched without a
	// launch type: FARGATE's base first, then by weight.
	_, err = e.ecs.PutClusterCapacityProviders(e.ctx, &ecs.PutClusterCapacityProvidersInput{Cluster: aws.String("default"),
		CapacityProviders: []string{"FARGATE", "my-asg"}, DefaultCapacityProviderStrategy: []types.CapacityProviderStrategyItem{}})
	if code, _ := apiCode(err); code != "InvalidParameterException" {
		t.Fatalf("unknown capacity provider: %v", err)
	}
	put, err := e.ecs.PutClusterCapacityProviders(e.ctx, &ecs.PutClusterCapacityProvidersInput{Cluster: aws.String("default"),
		CapacityProviders: []string{"FARGATE", "FARGATE_SPOT"},
		DefaultCapacityProviderStrategy: []types.CapacityProviderStrategyItem{
			{CapacityProvider: aws.String("FARGATE"), Base: 1, Weight: 1}, {CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 3}}})
	if err != nil || len(put.Cluster.CapacityProviders) != 2 || len(put.Cluster.DefaultCapacityProviderStrategy) != 2 {
		t.Fatalf("put capacity providers: %v %+v", err, put)
	}
	out, err = run(&ecs.RunTaskInput{NetworkConfiguration: net, Count: aws.Int32(5)})
	if err != nil || len(out.Tasks) != 5 {
		t.Fatalf("run with the default strategy: %v %+v", err, out)
	}
	count := map[string]int{}
	for _, tk := range out.Tasks {
		count[aws.ToString(tk.CapacityProviderName)]++
		if tk.LaunchType != types.LaunchTypeFargate || tk.ContainerInstanceArn != nil {
			t.Fatalf("task %+v", tk)
		}
	}
	if count["FARGATE"] != 2 || count["FARGATE_SPOT"] != 3 {
		t.Fatalf("base 1 then weights 1:3 over 5 tasks gave %v", count)
	}
	d, err := e.ecs.DescribeCapacityProviders(e.ctx, &ecs.DescribeCapacityProvidersInput{CapacityProviders: []string{"FARGATE", "nope"}})
	if err != nil || len(d.CapacityProviders) != 1 || aws.ToString(d.CapacityProviders[0].Name) != "FARGATE" || len(d.Failures) != 1 {
		t.Fatalf("describe capacity providers: %v %+v", err, d)
	}
}
