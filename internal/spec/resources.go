package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Demand is what one task of a definition reserves on its instance.
type Demand struct {
	CPU    int      // CPU units
	Memory int      // MiB
	Ports  []string // "80/tcp" host ports
}

// TaskDemand computes the reservation of one task: task-level cpu/memory when
// set, else the sum over containers (memory, or memoryReservation when memory
// is unset); host ports from port mappings.
func TaskDemand(td *TaskDefinition) Demand {
	var d Demand
	for _, c := range td.ContainerDefinitions {
		d.CPU += int(Val(c.Cpu))
		if c.Memory != nil {
			d.Memory += int(*c.Memory)
		} else {
			d.Memory += int(Val(c.MemoryReservation))
		}
		for _, pm := range c.PortMappings {
			if Val(td.NetworkMode) == "awsvpc" {
				break // the task's own address, not the instance's
			}
			if hp := Val(pm.HostPort); hp != 0 {
				proto := Val(pm.Protocol)
				if proto == "" {
					proto = "tcp"
				}
				d.Ports = append(d.Ports, fmt.Sprintf("%d/%s", hp, proto))
			}
		}
	}
	if td.Cpu != nil {
		if n, err := ParseCPU(*td.Cpu); err == nil {
			d.CPU = n
		}
	}
	if td.Memory != nil {
		if n, err := ParseMemory(*td.Memory); err == nil {
			d.Memory = n
		}
	}
	sort.Strings(d.Ports)
	return d
}

// DataKey names instance-local data that pins tasks to the instance holding
// it. Keys are stable across task definitions: two definitions that use the
// same shared Docker volume, or the same sticky host path, share the data.
type DataKey struct {
	Key    string // "docker-volume/NAME" or "host-path/PATH"
	Volume string // the task-definition volume name, for messages
}

// DataKeys lists the instance-local data a task definition's tasks must
// follow: shared-scope Docker volumes and sticky host volumes.
func DataKeys(td *TaskDefinition, tags []Tag) []DataKey {
	sticky := StickyVolumes(tags)
	var out []DataKey
	for _, v := range td.Volumes {
		name := Val(v.Name)
		if d := v.DockerVolumeConfiguration; d != nil && Val(d.Scope) == "shared" {
			out = append(out, DataKey{Key: "docker-volume/" + name, Volume: name})
		}
		if h := v.Host; h != nil && Val(h.SourcePath) != "" && (sticky[name] || sticky["*"]) {
			out = append(out, DataKey{Key: "host-path/" + strings.TrimSuffix(*h.SourcePath, "/"), Volume: name})
		}
	}
	return out
}

// PrivilegedCapability is advertised by instances that run privileged
// containers.
const PrivilegedCapability = "com.amazonaws.ecs.capability.privileged-container"

// RequiredAttributes derives the instance capabilities a task definition
// needs, in the manner of ECS's requiresAttributes.
func RequiredAttributes(td *TaskDefinition) []Attribute {
	set := map[string]bool{}
	for _, v := range td.Volumes {
		if v.DockerVolumeConfiguration != nil {
			set["com.amazonaws.ecs.capability.docker-remote-api.1.25"] = true
		}
		if e := v.EfsVolumeConfiguration; e != nil {
			set["ecs.capability.efs"] = true
			if a := e.AuthorizationConfig; a != nil && (Val(a.AccessPointId) != "" || Val(a.Iam) == "ENABLED") {
				set["ecs.capability.efsAuth"] = true
			}
		}
		if v.FsxWindowsFileServerVolumeConfiguration != nil {
			set["ecs.capability.fsxWindowsFileServer"] = true
		}
		if Val(v.ConfiguredAtLaunch) {
			set["ecs.capability.ebs-task-attach"] = true
		}
	}
	for _, c := range td.ContainerDefinitions {
		if c.HealthCheck != nil {
			set["ecs.capability.container-health-check"] = true
		}
		if len(c.DependsOn) > 0 {
			set["ecs.capability.container-ordering"] = true
		}
		if Val(c.Privileged) {
			set[PrivilegedCapability] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Attribute, len(names))
	for i, n := range names {
		out[i] = Attribute{Name: Str(n)}
	}
	return out
}
