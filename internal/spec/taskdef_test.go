package spec

import (
	"strings"
	"testing"
)

// TestValidateEachSection breaks one rule of each section of a task
// definition's validation (task, volumes, container names, each
// container's basics, ports, mounts, health check, limits, environment
// and logs, dependencies, totals) and expects ECS's exception.
func TestValidateEachSection(t *testing.T) {
	type c = map[string]any
	set := func(k string, v any) func(m c) { return func(m c) { m[k] = v } }
	setWeb := func(k string, v any) func(m c) { return func(m c) { web(m)[k] = v } }
	eleven := []any{}
	for i := 0; i < 11; i++ {
		eleven = append(eleven, c{"name": "c" + strings.Repeat("x", i), "image": "busybox", "memory": 6})
	}
	fargate := func(cpu, mem string) func(m c) {
		return func(m c) {
			m["requiresCompatibilities"] = []any{"FARGATE"}
			m["networkMode"] = "awsvpc"
			m["volumes"] = []any{}
			web(m)["mountPoints"] = []any{}
			if cpu != "" {
				m["cpu"] = cpu
			}
			if mem != "" {
				m["memory"] = mem
			}
		}
	}
	cases := []struct {
		section, msg string
		f            func(m c)
	}{
		// The task's own settings.
		{"task", "Too many containers", set("containerDefinitions", eleven)},
		{"task", "Invalid requiresCompatibilities value 'VM'", set("requiresCompatibilities", []any{"VM"})},
		{"task", "Invalid pidMode 'shared'", set("pidMode", "shared")},
		{"task", "Invalid ipcMode 'shared'", set("ipcMode", "shared")},
		{"task", "Invalid 'cpu' setting for task. Specify an integer", set("cpu", "lots")},
		{"task", "The value must be between 128 and 196608 CPU units", set("cpu", "64")},
		{"task", "Invalid 'memory' setting for task", set("memory", "5")},
		{"task", "Fargate only supports network mode 'awsvpc'", func(m c) { fargate("256", "512")(m); m["networkMode"] = "bridge" }},
		{"task", "Fargate requires that 'cpu' be defined at the task level", fargate("", "512")},
		{"task", "Fargate requires that 'memory' be defined at the task level", fargate("256", "")},
		{"task", "No Fargate configuration exists for given values: 256 CPU, 4096 memory", fargate("256", "4096")},
		{"task", "Tasks using the EC2 launch type do not support EphemeralStorage.", set("ephemeralStorage", c{"sizeInGiB": 30})},
		{"task", "must be between 21 and 200 GiB", func(m c) { fargate("256", "512")(m); m["ephemeralStorage"] = c{"sizeInGiB": 20} }},
		{"task", "Too many placement constraints", set("placementConstraints", func() []any {
			var out []any
			for i := 0; i < 11; i++ {
				out = append(out, c{"type": "memberOf", "expression": "attribute:x == y"})
			}
			return out
		}())},
		// Volumes.
		{"volumes", "Volume name is required", func(m c) { m["volumes"] = append(volumes(m), c{"host": c{}}) }},
		{"volumes", "host.sourcePath should not be blank", func(m c) { m["volumes"] = append(volumes(m), c{"name": "b", "host": c{"sourcePath": ""}}) }},
		{"volumes", "Invalid driver 'a b' for volume 'd'", func(m c) {
			m["volumes"] = append(volumes(m), c{"name": "d", "dockerVolumeConfiguration": c{"driver": "a b"}})
		}},
		{"volumes", "Fargate compatible task definitions do not support sourcePath", func(m c) {
			fargate("256", "512")(m)
			m["volumes"] = []any{c{"name": "h", "host": c{"sourcePath": "/srv"}}}
		}},
		// Container names.
		{"names", "Container.name should not be null or empty", func(m c) { delete(web(m), "name") }},
		{"names", "Invalid container name 'my web'", setWeb("name", "my web")},
		// A container's basics.
		{"basics", "Invalid image for container 'web'", setWeb("image", "nginx latest")},
		{"basics", "Invalid image for container 'web'", setWeb("image", strings.Repeat("i", 256))},
		{"basics", "Invalid 'cpu' setting for container 'web'. The value must be at least 0", setWeb("cpu", -1)},
		{"basics", "Invalid 'memory' setting for container 'web'. The minimum is 6 MiB", setWeb("memory", 5)},
		{"basics", "Invalid 'memoryReservation' setting for container 'web'", setWeb("memoryReservation", 5)},
		{"basics", "The memory hard limit must be greater than or equal to memoryReservation", setWeb("memoryReservation", 256)},
		// Port mappings.
		{"ports", "containerPort is required", setWeb("portMappings", []any{c{"hostPort": 80}})},
		{"ports", "Invalid hostPort 70000 for container 'web'", setWeb("portMappings", []any{c{"containerPort": 80, "hostPort": 70000}})},
		{"ports", "Invalid protocol 'sctp' for container 'web'", setWeb("portMappings", []any{c{"containerPort": 80, "protocol": "sctp"}})},
		// Mounts.
		{"mounts", "Invalid mount point for container 'web'. containerPath is required", setWeb("mountPoints", []any{c{"sourceVolume": "data"}})},
		{"mounts", "Container 'web' cannot mount volumes from itself", setWeb("volumesFrom", []any{c{"sourceContainer": "web"}})},
		// Health checks.
		{"health", "Invalid healthCheck for container 'web'. command is required", setWeb("healthCheck", c{"command": []any{}})},
		// Limits.
		{"limits", "Invalid startTimeout -1 for container 'web'", setWeb("startTimeout", -1)},
		{"limits", "Invalid ulimit name 'files' for container 'web'", setWeb("ulimits", []any{c{"name": "files", "softLimit": 1, "hardLimit": 1}})},
		{"limits", "Invalid tmpfs size for container 'web'", setWeb("linuxParameters", c{"tmpfs": []any{c{"containerPath": "/run", "size": 0}}})},
		{"limits", "Invalid sharedMemorySize for container 'web'", setWeb("linuxParameters", c{"sharedMemorySize": -1})},
		// Environment and logs.
		{"env", "Invalid environment variable for container 'web'. name is required", setWeb("environment", []any{c{"value": "1"}})},
		{"env", "Names cannot contain '=' or NUL characters", setWeb("environment", []any{c{"name": "A=B", "value": "1"}})},
		{"logs", "Invalid logConfiguration for container 'web'. logDriver is required", setWeb("logConfiguration", c{})},
		{"logs", "Log driver syslog-ng is not supported", setWeb("logConfiguration", c{"logDriver": "syslog-ng"})},
		// Dependencies.
		{"deps", "Container 'web' cannot depend on itself", setWeb("dependsOn", []any{c{"containerName": "web", "condition": "START"}})},
		{"deps", "Invalid dependsOn condition 'READY' for container 'web'", setWeb("dependsOn", []any{c{"containerName": "side", "condition": "READY"}})},
		// Totals.
		{"totals", "The sum of container cpu values (2048) exceeds the task cpu (1024)", func(m c) { m["cpu"] = "1024"; web(m)["cpu"] = 2048 }},
	}
	for _, tc := range cases {
		t.Run(tc.section+"/"+tc.msg, func(t *testing.T) {
			err := ValidateTaskDefinition(mutate(t, tc.f))
			if err == nil {
				t.Fatalf("accepted; want ClientException containing %q", tc.msg)
			}
			if err.Code != "ClientException" || !strings.Contains(err.Message, tc.msg) {
				t.Fatalf("got %s %q\nwant ClientException containing %q", err.Code, err.Message, tc.msg)
			}
		})
	}
}

// A health check command without CMD or CMD-SHELL runs as ECS runs it.
func TestHealthTest(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"CMD", "true"}, []string{"CMD", "true"}},
		{[]string{"CMD-SHELL", "curl -f localhost"}, []string{"CMD-SHELL", "curl -f localhost"}},
		{[]string{"/healthcheck"}, []string{"CMD", "/healthcheck"}},
		{[]string{"/bin/check", "--port", "80"}, []string{"CMD", "/bin/check", "--port", "80"}},
		{[]string{"curl -f http://localhost/ || exit 1"}, []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}},
	} {
		if got := HealthTest(tc.in); strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
			t.Errorf("HealthTest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
