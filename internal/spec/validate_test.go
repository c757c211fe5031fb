package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

// base is a valid definition each case breaks in one way.
const base = `{
  "family": "app",
  "containerDefinitions": [
    {"name": "web", "image": "nginx", "memory": 128, "essential": true,
     "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]},
    {"name": "side", "image": "busybox", "memory": 64, "essential": false}
  ],
  "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}]
}`

func mutate(t *testing.T, f func(m map[string]any)) *RegisterTaskDefinitionRequest {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, _ := json.Marshal(m)
	r := &RegisterTaskDefinitionRequest{}
	if err := json.Unmarshal(b, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func containers(m map[string]any) []any   { return m["containerDefinitions"].([]any) }
func web(m map[string]any) map[string]any { return containers(m)[0].(map[string]any) }
func volumes(m map[string]any) []any      { return m["volumes"].([]any) }
func vol(v string) map[string]any {
	var m map[string]any
	json.Unmarshal([]byte(v), &m)
	return m
}

func TestValidateTaskDefinition(t *testing.T) {
	cases := []struct {
		name, code, msg string
		f               func(m map[string]any)
	}{
		{"valid", "", "", func(m map[string]any) {}},
		{"unknown sourceVolume", "ClientException", "Unknown volume 'x'.", func(m map[string]any) {
			web(m)["mountPoints"] = []any{map[string]any{"sourceVolume": "x", "containerPath": "/x"}}
		}},
		{"duplicate volume", "ClientException", "Duplicate volume name 'data'. Volume names must be unique within a task definition.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"data","host":{}}`))
		}},
		{"volume name charset", "ClientException", "Invalid volume name 'my data'", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"my data"}`))
		}},
		{"volume name length", "ClientException", "Invalid volume name '" + strings.Repeat("v", 256) + "'", func(m map[string]any) {
			m["volumes"] = append(volumes(m), map[string]any{"name": strings.Repeat("v", 256)})
		}},
		{"autoprovision with task scope", "ClientException", "Invalid setting for volume 'd'. autoprovision is only valid when the volume scope is shared.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"d","dockerVolumeConfiguration":{"scope":"task","autoprovision":true}}`))
		}},
		{"autoprovision with default scope", "ClientException", "autoprovision is only valid when the volume scope is shared", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"d","dockerVolumeConfiguration":{"autoprovision":true}}`))
		}},
		{"bad docker scope", "ClientException", "Invalid scope 'global' for volume 'd'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"d","dockerVolumeConfiguration":{"scope":"global"}}`))
		}},
		{"access point with root directory", "ClientException", "The root directory must be omitted or set to '/' when an access point is specified for volume 'e'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"e","efsVolumeConfiguration":{"fileSystemId":"fs-1","rootDirectory":"/app","transitEncryption":"ENABLED","authorizationConfig":{"accessPointId":"fsap-1"}}}`))
		}},
		{"access point without transit encryption", "ClientException", "Transit encryption must be enabled when an access point is specified for volume 'e'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"e","efsVolumeConfiguration":{"fileSystemId":"fs-1","authorizationConfig":{"accessPointId":"fsap-1"}}}`))
		}},
		{"iam without transit encryption", "ClientException", "Transit encryption must be enabled when IAM authorization is used for volume 'e'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"e","efsVolumeConfiguration":{"fileSystemId":"fs-1","transitEncryption":"DISABLED","authorizationConfig":{"iam":"ENABLED"}}}`))
		}},
		{"efs without file system", "ClientException", "efsVolumeConfiguration.fileSystemId is required for volume 'e'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"e","efsVolumeConfiguration":{}}`))
		}},
		{"transit port without encryption", "ClientException", "transitEncryptionPort requires transitEncryption to be ENABLED for volume 'e'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"e","efsVolumeConfiguration":{"fileSystemId":"fs-1","transitEncryptionPort":2049}}`))
		}},
		{"two configured at launch", "ClientException", "Only one volume in a task definition can be configured at launch.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"a","configuredAtLaunch":true}`), vol(`{"name":"b","configuredAtLaunch":true}`))
		}},
		{"configured at launch with a config", "ClientException", "Volume 'a' is configured at launch and cannot also specify a volume configuration.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"a","configuredAtLaunch":true,"host":{}}`))
		}},
		{"two volume types", "ClientException", "Volume 'a' specifies more than one volume type.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"a","host":{},"dockerVolumeConfiguration":{}}`))
		}},
		{"fsx without authorization", "ClientException", "authorizationConfig with credentialsParameter and domain is required for volume 'w'.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"w","fsxWindowsFileServerVolumeConfiguration":{"fileSystemId":"fs-1","rootDirectory":"\\share"}}`))
		}},
		{"fargate with sourcePath", "ClientException", "Fargate compatible task definitions do not support sourcePath", func(m map[string]any) {
			m["requiresCompatibilities"], m["networkMode"], m["cpu"], m["memory"] = []any{"FARGATE"}, "awsvpc", "256", "512"
		}},
		{"fargate with docker volume", "ClientException", "Fargate compatible task definitions do not support dockerVolumeConfiguration", func(m map[string]any) {
			m["requiresCompatibilities"], m["networkMode"], m["cpu"], m["memory"] = []any{"FARGATE"}, "awsvpc", "256", "512"
			m["volumes"] = []any{vol(`{"name":"data","dockerVolumeConfiguration":{"scope":"task"}}`)}
		}},
		{"fargate needs awsvpc", "ClientException", "Fargate only supports network mode 'awsvpc'.", func(m map[string]any) {
			m["requiresCompatibilities"], m["cpu"], m["memory"] = []any{"FARGATE"}, "256", "512"
		}},
		{"fargate bad size", "ClientException", "No Fargate configuration exists for given values: 256 CPU, 4096 memory.", func(m map[string]any) {
			m["requiresCompatibilities"], m["networkMode"], m["cpu"], m["memory"] = []any{"FARGATE"}, "awsvpc", "256", "4096"
			m["volumes"] = []any{vol(`{"name":"data","efsVolumeConfiguration":{"fileSystemId":"fs-1"}}`)}
		}},
		{"relative container path", "ClientException", "Invalid containerPath 'data' for container 'web'. The path must be absolute.", func(m map[string]any) {
			web(m)["mountPoints"] = []any{map[string]any{"sourceVolume": "data", "containerPath": "data"}}
		}},
		{"relative source path", "ClientException", "Invalid host.sourcePath 'srv' for volume 'data'. The path must be absolute.", func(m map[string]any) {
			m["volumes"] = []any{vol(`{"name":"data","host":{"sourcePath":"srv"}}`)}
		}},
		{"sticky tag on non-host volume", "ClientException", "Volume 'c' is named in the berth:sticky-volumes tag but is not a host volume with a sourcePath.", func(m map[string]any) {
			m["volumes"] = append(volumes(m), vol(`{"name":"c","dockerVolumeConfiguration":{"scope":"task"}}`))
			m["tags"] = []any{map[string]any{"key": "berth:sticky-volumes", "value": "data,c"}}
		}},
		{"no family", "ClientException", "Family is required.", func(m map[string]any) { delete(m, "family") }},
		{"bad family", "ClientException", "Family name can have up to 255 characters", func(m map[string]any) { m["family"] = "a/b" }},
		{"no containers", "ClientException", "Container list cannot be empty.", func(m map[string]any) { m["containerDefinitions"] = []any{} }},
		{"no image", "ClientException", "Container.image should not be null or empty.", func(m map[string]any) { delete(web(m), "image") }},
		{"duplicate container", "ClientException", "Duplicate container name 'side'.", func(m map[string]any) {
			web(m)["name"] = "side"
		}},
		{"no memory", "ClientException", "Invalid setting for container 'web'. At least one of 'memory' or 'memoryReservation' must be specified.", func(m map[string]any) {
			delete(web(m), "memory")
		}},
		{"reservation above limit", "ClientException", "The memory hard limit must be greater than or equal to memoryReservation.", func(m map[string]any) {
			web(m)["memoryReservation"] = 256
		}},
		{"no essential container", "ClientException", "Task definition does not have any essential container.", func(m map[string]any) {
			web(m)["essential"] = false
		}},
		{"port out of range", "ClientException", "Invalid containerPort 70000 for container 'web'.", func(m map[string]any) {
			web(m)["portMappings"] = []any{map[string]any{"containerPort": 70000}}
		}},
		{"host mode port mismatch", "ClientException", "The host port must either be left blank or set to the same value as the container port when using host network mode.", func(m map[string]any) {
			m["networkMode"] = "host"
			web(m)["portMappings"] = []any{map[string]any{"containerPort": 80, "hostPort": 8080}}
		}},
		{"duplicate host port", "ClientException", "Host port 8080/tcp is used by more than one port mapping", func(m map[string]any) {
			web(m)["portMappings"] = []any{map[string]any{"containerPort": 80, "hostPort": 8080}, map[string]any{"containerPort": 81, "hostPort": 8080}}
		}},
		{"bad network mode", "ClientException", "Invalid networkMode 'overlay'.", func(m map[string]any) { m["networkMode"] = "overlay" }},
		{"volumesFrom unknown container", "ClientException", "Unknown container 'ghost' in volumesFrom of container 'web'.", func(m map[string]any) {
			web(m)["volumesFrom"] = []any{map[string]any{"sourceContainer": "ghost"}}
		}},
		{"dependsOn unknown", "ClientException", "Unknown container 'ghost' in dependsOn of container 'web'.", func(m map[string]any) {
			web(m)["dependsOn"] = []any{map[string]any{"containerName": "ghost", "condition": "START"}}
		}},
		{"dependsOn HEALTHY without health check", "ClientException", "Dependency condition HEALTHY requires a healthCheck on container 'side'.", func(m map[string]any) {
			web(m)["dependsOn"] = []any{map[string]any{"containerName": "side", "condition": "HEALTHY"}}
		}},
		{"dependsOn SUCCESS on essential", "ClientException", "Dependency condition SUCCESS cannot be used with essential container 'web'.", func(m map[string]any) {
			containers(m)[1].(map[string]any)["dependsOn"] = []any{map[string]any{"containerName": "web", "condition": "SUCCESS"}}
		}},
		{"dependency cycle", "ClientException", "Container dependencies form a cycle", func(m map[string]any) {
			web(m)["dependsOn"] = []any{map[string]any{"containerName": "side", "condition": "START"}}
			containers(m)[1].(map[string]any)["dependsOn"] = []any{map[string]any{"containerName": "web", "condition": "START"}}
		}},
		{"health check interval", "ClientException", "Invalid healthCheck interval 1 for container 'web'. The value must be between 5 and 300.", func(m map[string]any) {
			web(m)["healthCheck"] = map[string]any{"command": []any{"CMD", "true"}, "interval": 1}
		}},
		{"stop timeout", "ClientException", "Invalid stopTimeout 500 for container 'web'.", func(m map[string]any) { web(m)["stopTimeout"] = 500 }},
		{"ulimit soft above hard", "ClientException", "Invalid ulimit 'nofile' for container 'web'. softLimit cannot exceed hardLimit.", func(m map[string]any) {
			web(m)["ulimits"] = []any{map[string]any{"name": "nofile", "softLimit": 10, "hardLimit": 5}}
		}},
		{"tmpfs relative path", "ClientException", "Invalid tmpfs containerPath 'run' for container 'web'.", func(m map[string]any) {
			web(m)["linuxParameters"] = map[string]any{"tmpfs": []any{map[string]any{"containerPath": "run", "size": 10}}}
		}},
		{"placement constraint syntax", "ClientException", "Invalid placement constraint expression 'attribute:x =='", func(m map[string]any) {
			m["placementConstraints"] = []any{map[string]any{"type": "memberOf", "expression": "attribute:x =="}}
		}},
		{"distinctInstance in task definition", "ClientException", "Invalid placement constraint type 'distinctInstance' for a task definition.", func(m map[string]any) {
			m["placementConstraints"] = []any{map[string]any{"type": "distinctInstance"}}
		}},
		{"reserved tag", "InvalidParameterException", "Tag keys may not begin with the reserved prefix 'aws:'.", func(m map[string]any) {
			m["tags"] = []any{map[string]any{"key": "aws:x", "value": "1"}}
		}},
		{"container memory above task", "ClientException", "The sum of container memory values (192 MiB) exceeds the task memory (128 MiB).", func(m map[string]any) {
			m["memory"] = "128"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateTaskDefinition(mutate(t, c.f))
			if c.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want %s %q", c.code, c.msg)
			}
			if err.Code != c.code || !strings.Contains(err.Message, c.msg) {
				t.Fatalf("got %s %q\nwant %s containing %q", err.Code, err.Message, c.code, c.msg)
			}
		})
	}
}

func TestValidateFillsECSDefaults(t *testing.T) {
	r := mutate(t, func(m map[string]any) {
		delete(web(m), "essential")
		web(m)["portMappings"] = []any{map[string]any{"containerPort": 80}}
		web(m)["healthCheck"] = map[string]any{"command": []any{"CMD", "true"}}
		m["volumes"] = append(volumes(m), vol(`{"name":"d","dockerVolumeConfiguration":{}}`))
	})
	if err := ValidateTaskDefinition(r); err != nil {
		t.Fatal(err)
	}
	c := r.ContainerDefinitions[0]
	if !Val(c.Essential) || Val(c.Cpu) != 0 || Val(c.PortMappings[0].Protocol) != "tcp" {
		t.Fatalf("defaults not filled: %+v", c)
	}
	if hc := c.HealthCheck; Val(hc.Interval) != 30 || Val(hc.Timeout) != 5 || Val(hc.Retries) != 3 {
		t.Fatalf("health check defaults: %+v", hc)
	}
	if Val(r.Volumes[1].DockerVolumeConfiguration.Scope) != "task" {
		t.Fatal("docker volume scope default is task")
	}
}

func TestTaskDemandAndDataKeys(t *testing.T) {
	td := &TaskDefinition{
		ContainerDefinitions: []ContainerDefinition{
			{Cpu: I32(256), Memory: I32(512), PortMappings: []PortMapping{{ContainerPort: I32(80), HostPort: I32(8080), Protocol: Str("tcp")}}},
			{Cpu: I32(128), MemoryReservation: I32(64), PortMappings: []PortMapping{{ContainerPort: I32(53), HostPort: I32(53), Protocol: Str("udp")}}},
		},
		Volumes: []Volume{
			{Name: Str("db"), DockerVolumeConfiguration: &DockerVolumeConfiguration{Scope: Str("shared")}},
			{Name: Str("tmp"), DockerVolumeConfiguration: &DockerVolumeConfiguration{Scope: Str("task")}},
			{Name: Str("up"), Host: &HostVolumeProperties{SourcePath: Str("/srv/up/")}},
			{Name: Str("logs"), Host: &HostVolumeProperties{SourcePath: Str("/var/log/app")}},
		},
	}
	d := TaskDemand(td)
	if d.CPU != 384 || d.Memory != 576 || strings.Join(d.Ports, ",") != "53/udp,8080/tcp" {
		t.Fatalf("demand %+v", d)
	}
	td.Memory = Str("1 GB")
	if TaskDemand(td).Memory != 1024 {
		t.Fatal("task-level memory wins")
	}
	keys := DataKeys(td, []Tag{{Key: Str(StickyVolumesTag), Value: Str("up")}})
	if len(keys) != 2 || keys[0].Key != "docker-volume/db" || keys[1].Key != "host-path//srv/up" {
		t.Fatalf("keys %+v", keys)
	}
	if all := DataKeys(td, []Tag{{Key: Str(StickyVolumesTag), Value: Str("*")}}); len(all) != 3 {
		t.Fatalf("* marks every host path: %+v", all)
	}
}
