package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
)

// fargateWeb is a Fargate definition whose essential container serves
// its hostname on port 80 and whose second container fetches it over
// localhost, the task's shared namespace.
func fargateWeb(c *cluster, family string) string {
	return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String(family), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("web"), Command: sh("hostname > /tmp/index.html; exec httpd -f -p 80 -h /tmp"),
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(80)}}},
			{Name: aws.String("side"), Essential: aws.Bool(false), DependsOn: []types.ContainerDependency{{ContainerName: aws.String("web"), Condition: types.ContainerConditionStart}},
				Command: sh("for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://localhost:80/index.html && exit 0; sleep 0.3; done; exit 1")},
		}})
}

func awsvpcIn(subnets ...string) *types.NetworkConfiguration {
	return &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: subnets, SecurityGroups: []string{"sg-web"}}}
}

func eniDetail(t types.Task, name string) string {
	for _, a := range t.Attachments {
		if aws.ToString(a.Type) != "ElasticNetworkInterface" {
			continue
		}
		for _, d := range a.Details {
			if aws.ToString(d.Name) == name {
				return aws.ToString(d.Value)
			}
		}
	}
	return ""
}

func eniStatus(t types.Task) string {
	for _, a := range t.Attachments {
		if aws.ToString(a.Type) == "ElasticNetworkInterface" {
			return aws.ToString(a.Status)
		}
	}
	return ""
}

func httpGet(url string) (string, error) {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// Fargate tasks in awsvpc mode get an address of their own from their
// subnet: two with the same port share an instance, their containers
// share localhost, the host and tasks behind another instance's block
// reach them, and DescribeTasks shows the interface in ECS's shapes.
func TestAwsvpcTasksHaveTheirOwnAddress(t *testing.T) {
	c := newCluster(t)
	a := c.addAgent("local-a", "")
	b := c.addAgent("local-b", "")
	td := fargateWeb(c, "fg-web")

	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), LaunchType: types.LaunchTypeFargate, Count: aws.Int32(2),
		NetworkConfiguration: awsvpcIn("subnet-local-a")})
	if err != nil || len(out.Tasks) != 2 {
		t.Fatalf("run two tasks with port 80 in subnet-local-a: %v %+v", err, out)
	}
	if s := eniStatus(out.Tasks[0]); s != "PRECREATED" || !strings.HasPrefix(eniDetail(out.Tasks[0], "networkInterfaceId"), "eni-") {
		t.Fatalf("RunTask's attachment: %s %+v", s, out.Tasks[0].Attachments)
	}
	other, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), LaunchType: types.LaunchTypeFargate,
		NetworkConfiguration: awsvpcIn("subnet-local-b")})
	if err != nil || len(other.Tasks) != 1 {
		t.Fatalf("run in subnet-local-b: %v %+v", err, other)
	}
	tasks := append(out.Tasks, other.Tasks...)
	addrs := map[string]string{} // address -> hostname the task serves
	for i, tk := range tasks {
		tk = c.wait(tk.TaskArn, "RUNNING")
		tasks[i] = tk
		ip := eniDetail(tk, "privateIPv4Address")
		addr, err := netip.ParseAddr(ip)
		if err != nil || !netip.MustParsePrefix("10.208.0.0/12").Contains(addr) {
			t.Fatalf("task %d address %q, attachments %+v", i, ip, tk.Attachments)
		}
		if tk.ContainerInstanceArn != nil || tk.LaunchType != types.LaunchTypeFargate || aws.ToString(tk.PlatformVersion) != "1.4.0" ||
			aws.ToString(tk.CapacityProviderName) != "FARGATE" {
			t.Fatalf("Fargate task fields: instance %v launch %s platform %v provider %v", aws.ToString(tk.ContainerInstanceArn), tk.LaunchType,
				aws.ToString(tk.PlatformVersion), aws.ToString(tk.CapacityProviderName))
		}
		subnet := "subnet-local-a"
		if i == 2 {
			subnet = "subnet-local-b"
		}
		if eniStatus(tk) != "ATTACHED" || eniDetail(tk, "subnetId") != subnet || len(eniDetail(tk, "macAddress")) != 17 ||
			eniDetail(tk, "privateDnsName") != "ip-"+strings.ReplaceAll(ip, ".", "-")+".ec2.internal" {
			t.Fatalf("task %d attachment %+v", i, tk.Attachments)
		}
		for _, ct := range tk.Containers {
			if len(ct.NetworkInterfaces) != 1 || aws.ToString(ct.NetworkInterfaces[0].PrivateIpv4Address) != ip ||
				aws.ToString(ct.NetworkInterfaces[0].AttachmentId) != aws.ToString(tk.Attachments[0].Id) {
				t.Fatalf("container %s network interfaces %+v", aws.ToString(ct.Name), ct.NetworkInterfaces)
			}
		}
		if _, dup := addrs[ip]; dup {
			t.Fatalf("two tasks have address %s", ip)
		}
		var served string
		for try := 0; try < 30; try++ {
			if served, err = httpGet("http://" + ip + "/index.html"); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || served == "" {
			t.Fatalf("task %d at %s from the host: %v", i, ip, err)
		}
		addrs[ip] = served
	}
	if len(addrs) != 3 {
		t.Fatalf("addresses %v", addrs)
	}
	// The subnets' ranges differ; each instance serves from its own block.
	ipA, ipB := eniDetail(tasks[0], "privateIPv4Address"), eniDetail(tasks[2], "privateIPv4Address")
	if netip.MustParsePrefix(ipA+"/16").Masked() == netip.MustParsePrefix(ipB+"/16").Masked() {
		t.Fatalf("subnets local-a and local-b share a range: %s %s", ipA, ipB)
	}
	// The second container reached the first on localhost.
	for _, tk := range tasks {
		deadline := time.Now().Add(20 * time.Second)
		for {
			d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(tk.TaskArn)}})
			if exitCode(d.Tasks[0], "side") == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("side container did not reach localhost:80: %s", describeContainers(d.Tasks[0]))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// A task behind agent a reaches the task behind agent b, and the
	// reverse, at their task addresses.
	client := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("fg-client"), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("get"), Command: sh(`test "$(wget -qO- http://$TARGET/index.html)" = "$WANT"`)}}})
	for _, pair := range [][2]string{{"subnet-local-a", ipB}, {"subnet-local-b", ipA}} {
		run, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(client), LaunchType: types.LaunchTypeFargate,
			NetworkConfiguration: awsvpcIn(pair[0]), Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String("get"),
				Environment: []types.KeyValuePair{{Name: aws.String("TARGET"), Value: aws.String(pair[1])}, {Name: aws.String("WANT"), Value: aws.String(addrs[pair[1]])}}}}}})
		if err != nil || len(run.Tasks) != 1 {
			t.Fatalf("run client: %v %+v", err, run)
		}
		done := c.wait(run.Tasks[0].TaskArn, "STOPPED")
		if exitCode(done, "get") != 0 {
			t.Fatalf("a task in %s could not reach %s: %s", pair[0], pair[1], describeContainers(done))
		}
	}
	// The instances gave their blocks; berth network ls shows them.
	outNet, err := exec.Command(buildBerth(t), "network", "ls", "--endpoint", c.srv.Endpoint()).CombinedOutput()
	if err != nil || !strings.Contains(string(outNet), "subnet-local-a") || !strings.Contains(string(outNet), "subnet-local-b") ||
		!strings.Contains(string(outNet), a.arn[strings.LastIndex(a.arn, "/")+1:]) || !strings.Contains(string(outNet), b.arn[strings.LastIndex(b.arn, "/")+1:]) {
		t.Fatalf("berth network ls: %v\n%s", err, outNet)
	}
	// Stopping a task deletes its interface and its namespace.
	stopped := c.stop(tasks[0].TaskArn)
	if eniStatus(stopped) != "DELETED" {
		t.Fatalf("stopped task's attachment %+v", stopped.Attachments)
	}
	arn := aws.ToString(tasks[0].TaskArn)
	ps, _ := exec.Command("docker", "ps", "-q", "--filter", "label="+agent.LabelPausePool, "--filter", "name=internalecspause-"+arn[strings.LastIndex(arn, "/")+1:]).Output()
	if len(strings.TrimSpace(string(ps))) > 0 {
		t.Fatalf("the stopped task's pause container still runs: %s", ps)
	}
	if _, err := httpGet("http://" + ipA + "/index.html"); err == nil {
		t.Fatalf("%s still answers after its task stopped", ipA)
	}
}

// A service of awsvpc tasks keeps its network configuration: its tasks
// get addresses in its subnets, several per instance with the same port.
func TestAwsvpcService(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	td := fargateWeb(c, "fg-svc")
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(3)})
	if code, msg := apiCode(err); code != "InvalidParameterException" || !strings.Contains(msg, "Network Configuration must be provided") {
		t.Fatalf("service without network configuration: %s %s", code, msg)
	}
	svc, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(3),
		LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-local-a")})
	if err != nil || svc.Service.NetworkConfiguration == nil || aws.ToString(svc.Service.PlatformVersion) != "LATEST" {
		t.Fatalf("create service: %v %+v", err, svc)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		l, err := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("web"), DesiredStatus: types.DesiredStatusRunning})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.TaskArns) == 3 {
			d, err := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: l.TaskArns})
			if err != nil {
				t.Fatal(err)
			}
			ips := map[string]bool{}
			for _, tk := range d.Tasks {
				if aws.ToString(tk.LastStatus) == "RUNNING" && eniStatus(tk) == "ATTACHED" {
					ips[eniDetail(tk, "privateIPv4Address")] = true
				}
			}
			if len(ips) == 3 {
				for ip := range ips {
					if _, err := httpGet("http://" + ip + "/index.html"); err != nil {
						t.Fatalf("service task at %s: %v", ip, err)
					}
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service tasks: %v", l.TaskArns)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Task-level memory and cpu bound the whole task: a container that
// pushes the task past its memory is OOM-killed and reported as ECS
// reports it, and the task's cgroup carries its cpu quota.
func TestTaskLevelLimits(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	hog := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("hog"), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []types.ContainerDefinition{
			// No limit of its own (a reservation only): the task's 512 MiB
			// is what stops it.
			{Name: aws.String("hog"), MemoryReservation: aws.Int32(32), Command: sh(`sleep 5; awk 'BEGIN{s="xxxxxxxxxxxxxxxx"; while(1) s=s s}'`)},
		}})
	run, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(hog), LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-local-a")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("run: %v %+v", err, run)
	}
	arn := aws.ToString(run.Tasks[0].TaskArn)
	id := arn[strings.LastIndex(arn, "/")+1:]
	c.wait(run.Tasks[0].TaskArn, "RUNNING")
	mem, err := os.ReadFile("/sys/fs/cgroup/memory/berth/" + id + "/memory.limit_in_bytes")
	if err != nil || strings.TrimSpace(string(mem)) != fmt.Sprint(512<<20) {
		t.Fatalf("task memory cgroup: %v %q", err, mem)
	}
	quota, err := os.ReadFile("/sys/fs/cgroup/cpu/berth/" + id + "/cpu.cfs_quota_us")
	if err != nil || strings.TrimSpace(string(quota)) != "25000" {
		t.Fatalf("task cpu quota (256 units = a quarter CPU): %v %q", err, quota)
	}
	done := c.wait(run.Tasks[0].TaskArn, "STOPPED")
	var hogC types.Container
	for _, ct := range done.Containers {
		if aws.ToString(ct.Name) == "hog" {
			hogC = ct
		}
	}
	if aws.ToInt32(hogC.ExitCode) != 137 || aws.ToString(hogC.Reason) != "OutOfMemoryError: Container killed due to memory usage" ||
		aws.ToString(done.StoppedReason) != "Essential container in task exited" {
		t.Fatalf("task past its memory: %s / %s", aws.ToString(done.StoppedReason), describeContainers(done))
	}
	deadline := time.Now().Add(10 * time.Second)
	for fileExists("/sys/fs/cgroup/memory/berth/" + id) {
		if time.Now().After(deadline) {
			t.Fatal("the stopped task's cgroup remains")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A Fargate task's ephemeral storage bounds its task volumes (a write
// past it fails with ENOSPC) and its writable layers (a task past it is
// stopped, and says why). The agent counts a "GiB" as a MiB here, so
// the test writes tens of MiB, not of GiB.
func TestEphemeralStorageIsEnforced(t *testing.T) {
	c := newCluster(t)
	ra := c.addAgent("local-a", "", func(cfg *agent.Config) {
		cfg.EphemeralUnit = 1 << 20
		cfg.EphemeralCheckInterval = time.Second
	})
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("eph"), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		EphemeralStorage: &types.EphemeralStorage{SizeInGiB: 21},
		Volumes:          []types.Volume{{Name: aws.String("scratch")}},
		ContainerDefinitions: []types.ContainerDefinition{
			{Name: aws.String("fill"), Essential: aws.Bool(false), MountPoints: []types.MountPoint{{SourceVolume: aws.String("scratch"), ContainerPath: aws.String("/scratch")}},
				Command: sh("dd if=/dev/zero of=/scratch/big bs=1M count=40 2>/dev/null && exit 0; rm -f /scratch/big; exit 3")},
			{Name: aws.String("layer"), DependsOn: []types.ContainerDependency{{ContainerName: aws.String("fill"), Condition: types.ContainerConditionComplete}},
				Command: sh("dd if=/dev/zero of=/tmp/big bs=1M count=30 2>/dev/null; sleep 600")},
		}})
	run, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(td), LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-local-a")})
	if err != nil || len(run.Tasks) != 1 {
		t.Fatalf("run: %v %+v", err, run)
	}
	if es := run.Tasks[0].EphemeralStorage; es == nil || es.SizeInGiB != 21 {
		t.Fatalf("task's ephemeral storage %+v", es)
	}
	done := c.wait(run.Tasks[0].TaskArn, "STOPPED")
	if exitCode(done, "fill") != 3 {
		t.Fatalf("a 40-unit write to a 21-unit task volume did not fail: %s", describeContainers(done))
	}
	if !strings.HasPrefix(aws.ToString(done.StoppedReason), "Ephemeral storage exceeded") {
		t.Fatalf("a task whose writable layer grew past its storage: %q %s", aws.ToString(done.StoppedReason), describeContainers(done))
	}
	arn := aws.ToString(done.TaskArn)
	img := ra.dir + "/ephemeral/volumes/" + arn[strings.LastIndex(arn, "/")+1:] + ".img"
	deadline := time.Now().Add(20 * time.Second)
	for fileExists(img) {
		if time.Now().After(deadline) {
			t.Fatalf("the stopped task's ephemeral storage %s remains after cleanup", img)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Fargate tasks without a size get Fargate's 20.
	plain := fargateWeb(c, "eph-default")
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(plain), LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-local-a")})
	if err != nil || out.Tasks[0].EphemeralStorage == nil || out.Tasks[0].EphemeralStorage.SizeInGiB != 20 {
		t.Fatalf("default ephemeral storage: %v %+v", err, out)
	}
}

// A Fargate service over two zones' subnets with an EFS volume spreads
// its tasks across the zones, each with its own address, all sharing
// the file system; a new task definition rolls it.
func TestFargateServiceAcrossZonesWithEFS(t *testing.T) {
	c := newCluster(t)
	c.addAgent("zone-a", "")
	c.addAgent("zone-b", "")
	fs := c.efsFS("fargate-share", "zone-a", "zone-b")
	register := func(version string) string {
		return c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("fg-efs"), RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
			NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
			Volumes: []types.Volume{{Name: aws.String("data"), EfsVolumeConfiguration: &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs)}}},
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("web"),
				MountPoints:  []types.MountPoint{{SourceVolume: aws.String("data"), ContainerPath: aws.String("/mnt/efs")}},
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(8080)}},
				Command:      sh(fmt.Sprintf(`date > /mnt/efs/%s-$(hostname); mkdir -p /www; echo %s > /www/v; exec httpd -f -p 8080 -h /www`, version, version))}}})
	}
	v1 := register("v1")
	_, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String(v1), DesiredCount: aws.Int32(2),
		LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpcIn("subnet-zone-a", "subnet-zone-b"),
		DeploymentConfiguration: &types.DeploymentConfiguration{MinimumHealthyPercent: aws.Int32(50), MaximumPercent: aws.Int32(200)}})
	if err != nil {
		t.Fatal(err)
	}
	// serving waits until the service's running tasks all serve want, one
	// per zone, from their own addresses.
	serving := func(want string) {
		t.Helper()
		var last string
		if !waitFor(90*time.Second, func() bool {
			l, err := c.ecs.ListTasks(c.ctx, &ecs.ListTasksInput{ServiceName: aws.String("web"), DesiredStatus: types.DesiredStatusRunning})
			if err != nil || len(l.TaskArns) != 2 {
				last = fmt.Sprintf("tasks %v %v", l, err)
				return false
			}
			d, err := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: l.TaskArns})
			if err != nil {
				return false
			}
			zones, subnets := map[string]bool{}, map[string]bool{}
			for _, tk := range d.Tasks {
				ip := eniDetail(tk, "privateIPv4Address")
				got, err := httpGet("http://" + ip + ":8080/v")
				if aws.ToString(tk.LastStatus) != "RUNNING" || err != nil || got != want {
					last = fmt.Sprintf("%s at %s: %q %v", aws.ToString(tk.LastStatus), ip, got, err)
					return false
				}
				zones[aws.ToString(tk.AvailabilityZone)] = true
				subnets[eniDetail(tk, "subnetId")] = true
			}
			last = fmt.Sprintf("zones %v subnets %v", zones, subnets)
			return zones["zone-a"] && zones["zone-b"] && subnets["subnet-zone-a"] && subnets["subnet-zone-b"]
		}) {
			t.Fatalf("service not serving %s in both zones: %s", want, last)
		}
	}
	serving("v1")
	v2 := register("v2")
	if _, err := c.ecs.UpdateService(c.ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	serving("v2")
	// Every task of both versions wrote to the one file system (a file
	// each: appends from several clients at once may overwrite each
	// other, as on NFS).
	m := c.adminMount(fs)
	ents, err := os.ReadDir(m.dir)
	count := map[string]int{}
	for _, e := range ents {
		count[e.Name()[:2]]++
	}
	if err != nil || count["v1"] < 2 || count["v2"] < 2 {
		t.Fatalf("files on EFS: %v %v", err, ents)
	}
}
