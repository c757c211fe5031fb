package spec

import (
	"fmt"
	"path"
	"strings"

	"github.com/berth-project/berth/internal/cql"
)

// ValidateTaskDefinition checks a RegisterTaskDefinition request as ECS does
// and fills ECS's defaults in place. It returns the first problem found,
// checking in ECS's order: the task's own settings, its volumes, each
// container, then what spans containers (dependencies, totals).
func ValidateTaskDefinition(r *RegisterTaskDefinitionRequest) *Error {
	v := &tdCheck{r: r, hostPorts: map[string]string{}}
	if err := v.task(); err != nil {
		return err
	}
	if err := v.volumes(); err != nil {
		return err
	}
	if err := v.containerNames(); err != nil {
		return err
	}
	for i := range r.ContainerDefinitions {
		c := &r.ContainerDefinitions[i]
		for _, check := range []func(*ContainerDefinition) *Error{v.containerBasics, v.networking, v.portMappings, v.mounts, v.healthCheck, v.limits, v.environmentAndLogs} {
			if err := check(c); err != nil {
				return err
			}
		}
	}
	if !v.essential {
		return ClientErr("Task definition does not have any essential container.")
	}
	if err := v.dependencies(); err != nil {
		return err
	}
	return v.totals()
}

// tdCheck carries what one section of a task definition's validation
// learns for the later ones.
type tdCheck struct {
	r                *RegisterTaskDefinitionRequest
	fargate          bool
	mode             string // network mode
	taskCPU, taskMem int
	vols             map[string]*Volume
	byName           map[string]*ContainerDefinition
	essential        bool
	hostPorts        map[string]string // "PORT/PROTO" -> container
	sumCPU, sumMem   int
}

// task checks the task-level settings: family, compatibilities, network,
// pid and ipc modes, cpu and memory (Fargate's pairs), ephemeral storage,
// placement constraints and tags.
func (v *tdCheck) task() *Error {
	r := v.r
	family := Val(r.Family)
	if family == "" {
		return ClientErr("Family is required.")
	}
	if !ValidName(family) {
		return ClientErr("Family name can have up to 255 characters, including uppercase and lowercase letters, numbers, underscores and hyphens: '%s'.", family)
	}
	if len(r.ContainerDefinitions) == 0 {
		return ClientErr("Container list cannot be empty.")
	}
	if len(r.ContainerDefinitions) > 10 {
		return ClientErr("Too many containers: a task definition can have at most 10 containers.")
	}
	for _, c := range r.RequiresCompatibilities {
		if !containsStr([]string{EC2, Fargate, External, "MANAGED_INSTANCES"}, c) {
			return ClientErr("Invalid requiresCompatibilities value '%s'. Valid values are EC2, FARGATE, EXTERNAL and MANAGED_INSTANCES.", c)
		}
	}
	fargate := containsStr(r.RequiresCompatibilities, Fargate)
	mode := Val(r.NetworkMode)
	v.fargate, v.mode = fargate, mode
	if mode != "" && !containsStr([]string{"bridge", "host", "awsvpc", "none"}, mode) {
		return ClientErr("Invalid networkMode '%s'. Valid values are bridge, host, awsvpc and none.", mode)
	}
	if fargate && mode != "awsvpc" {
		return ClientErr("Fargate only supports network mode 'awsvpc'.")
	}
	if fargate && Val(r.IpcMode) != "" {
		return ClientErr("Tasks using the Fargate launch type do not support ipcMode.")
	}
	if fargate && Val(r.PidMode) == "host" {
		return ClientErr("Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'.")
	}
	if pm := Val(r.PidMode); pm != "" && pm != "host" && pm != "task" {
		return ClientErr("Invalid pidMode '%s'.", pm)
	}
	if ipc := Val(r.IpcMode); ipc != "" && ipc != "host" && ipc != "task" && ipc != "none" {
		return ClientErr("Invalid ipcMode '%s'.", ipc)
	}

	taskCPU, taskMem := 0, 0
	if r.Cpu != nil {
		n, err := ParseCPU(*r.Cpu)
		if err != nil {
			return ClientErr("Invalid 'cpu' setting for task. Specify an integer number of CPU units or vCPUs, for example '1024' or '1 vCPU'.")
		}
		if n < 128 || n > 196608 {
			return ClientErr("Invalid 'cpu' setting for task. The value must be between 128 and 196608 CPU units.")
		}
		taskCPU = n
	}
	if r.Memory != nil {
		n, err := ParseMemory(*r.Memory)
		if err != nil || n < 6 {
			return ClientErr("Invalid 'memory' setting for task. Specify an integer number of MiB (at least 6) or GB, for example '512' or '1 GB'.")
		}
		taskMem = n
	}
	v.taskCPU, v.taskMem = taskCPU, taskMem
	if fargate {
		if r.Cpu == nil {
			return ClientErr("Fargate requires that 'cpu' be defined at the task level.")
		}
		if r.Memory == nil {
			return ClientErr("Fargate requires that 'memory' be defined at the task level.")
		}
		ok := false
		for _, m := range fargateMemory(taskCPU) {
			ok = ok || m == taskMem
		}
		if !ok {
			return ClientErr("No Fargate configuration exists for given values: %d CPU, %d memory. See the Amazon ECS documentation for the valid combinations.", taskCPU, taskMem)
		}
	}
	if es := r.EphemeralStorage; es != nil {
		if !fargate {
			return ClientErr("Tasks using the EC2 launch type do not support EphemeralStorage.")
		}
		if n := Val(es.SizeInGiB); n < 21 || n > 200 {
			return ClientErr("The ephemeral storage size must be between 21 and 200 GiB.")
		}
	}
	if len(r.PlacementConstraints) > 10 {
		return ClientErr("Too many placement constraints: at most 10 are allowed.")
	}
	for _, pc := range r.PlacementConstraints {
		if Val(pc.Type) != "memberOf" {
			return ClientErr("Invalid placement constraint type '%s' for a task definition. Only memberOf is supported.", Val(pc.Type))
		}
		if _, err := cql.Parse(Val(pc.Expression)); err != nil {
			return ClientErr("Invalid placement constraint expression '%s': %v.", Val(pc.Expression), err)
		}
	}
	if err := ValidateTags(r.Tags); err != nil {
		return err
	}

	return ValidateTags(r.Tags)
}

// volumes checks the task's volumes: names, one kind each, at most one
// configured at launch, and each kind's settings.
func (tc *tdCheck) volumes() *Error {
	r, fargate := tc.r, tc.fargate
	sticky := StickyVolumes(r.Tags)
	vols := map[string]*Volume{}
	tc.vols = vols
	atLaunch := 0
	for i := range r.Volumes {
		v := &r.Volumes[i]
		name := Val(v.Name)
		if name == "" {
			return ClientErr("Volume name is required.")
		}
		if !ValidName(name) {
			return ClientErr("Invalid volume name '%s'. Up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.", name)
		}
		if _, dup := vols[name]; dup {
			return ClientErr("Duplicate volume name '%s'. Volume names must be unique within a task definition.", name)
		}
		vols[name] = v
		kinds := 0
		for _, set := range []bool{v.Host != nil, v.DockerVolumeConfiguration != nil, v.EfsVolumeConfiguration != nil,
			v.FsxWindowsFileServerVolumeConfiguration != nil, v.S3filesVolumeConfiguration != nil} {
			if set {
				kinds++
			}
		}
		if kinds > 1 {
			return ClientErr("Volume '%s' specifies more than one volume type. Specify only one of host, dockerVolumeConfiguration, efsVolumeConfiguration or fsxWindowsFileServerVolumeConfiguration.", name)
		}
		if Val(v.ConfiguredAtLaunch) {
			atLaunch++
			if atLaunch > 1 {
				return ClientErr("Only one volume in a task definition can be configured at launch.")
			}
			if kinds > 0 {
				return ClientErr("Volume '%s' is configured at launch and cannot also specify a volume configuration.", name)
			}
		}
		if h := v.Host; h != nil && h.SourcePath != nil {
			sp := *h.SourcePath
			if fargate {
				return ClientErr("Fargate compatible task definitions do not support sourcePath")
			}
			if sp == "" {
				return ClientErr("host.sourcePath should not be blank.")
			}
			if !path.IsAbs(sp) {
				return ClientErr("Invalid host.sourcePath '%s' for volume '%s'. The path must be absolute.", sp, name)
			}
		}
		if sticky[name] && (v.Host == nil || Val(v.Host.SourcePath) == "") {
			return ClientErr("Volume '%s' is named in the %s tag but is not a host volume with a sourcePath.", name, StickyVolumesTag)
		}
		if d := v.DockerVolumeConfiguration; d != nil {
			if fargate {
				return ClientErr("Fargate compatible task definitions do not support dockerVolumeConfiguration")
			}
			scope := Val(d.Scope)
			if scope == "" {
				d.Scope = Str("task")
				scope = "task"
			}
			if scope != "task" && scope != "shared" {
				return ClientErr("Invalid scope '%s' for volume '%s'. Valid values are task and shared.", scope, name)
			}
			if d.Autoprovision != nil && *d.Autoprovision && scope != "shared" {
				return ClientErr("Invalid setting for volume '%s'. autoprovision is only valid when the volume scope is shared.", name)
			}
			if drv := Val(d.Driver); d.Driver != nil && (drv == "" || strings.ContainsAny(drv, " \t\n")) {
				return ClientErr("Invalid driver '%s' for volume '%s'.", drv, name)
			}
		}
		if e := v.EfsVolumeConfiguration; e != nil {
			if err := validateEFS(name, e); err != nil {
				return err
			}
		}
		if f := v.FsxWindowsFileServerVolumeConfiguration; f != nil {
			if fargate {
				return ClientErr("Fargate compatible task definitions do not support fsxWindowsFileServerVolumeConfiguration")
			}
			if Val(f.FileSystemId) == "" {
				return ClientErr("fsxWindowsFileServerVolumeConfiguration.fileSystemId is required for volume '%s'.", name)
			}
			if Val(f.RootDirectory) == "" {
				return ClientErr("fsxWindowsFileServerVolumeConfiguration.rootDirectory is required for volume '%s'.", name)
			}
			if a := f.AuthorizationConfig; a == nil || Val(a.CredentialsParameter) == "" || Val(a.Domain) == "" {
				return ClientErr("fsxWindowsFileServerVolumeConfiguration.authorizationConfig with credentialsParameter and domain is required for volume '%s'.", name)
			}
		}
	}

	return nil
}

// containerNames checks that every container has a valid, unique name.
func (v *tdCheck) containerNames() *Error {
	r := v.r
	byName := map[string]*ContainerDefinition{}
	v.byName = byName
	for i := range r.ContainerDefinitions {
		c := &r.ContainerDefinitions[i]
		name := Val(c.Name)
		if name == "" {
			return ClientErr("Container.name should not be null or empty.")
		}
		if !ValidName(name) {
			return ClientErr("Invalid container name '%s'. Up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.", name)
		}
		if _, dup := byName[name]; dup {
			return ClientErr("Duplicate container name '%s'. Container names must be unique within a task definition.", name)
		}
		byName[name] = c
	}
	return nil
}

// containerBasics checks a container's image, cpu, essential flag and
// memory, and adds them up.
func (v *tdCheck) containerBasics(c *ContainerDefinition) *Error {
	r, name := v.r, *c.Name
	if strings.TrimSpace(Val(c.Image)) == "" {
		return ClientErr("Container.image should not be null or empty.")
	}
	if img := Val(c.Image); len(img) > 255 || strings.IndexFunc(img, unprintableOrSpace) >= 0 {
		return ClientErr("Invalid image for container '%s'. Up to 255 characters are allowed, with no white space or control characters.", name)
	}
	if c.Cpu == nil {
		c.Cpu = I32(0)
	}
	if *c.Cpu < 0 {
		return ClientErr("Invalid 'cpu' setting for container '%s'. The value must be at least 0.", name)
	}
	v.sumCPU += int(*c.Cpu)
	if c.Essential == nil {
		c.Essential = Bool(true)
	}
	v.essential = v.essential || *c.Essential
	if c.Memory != nil && *c.Memory < 6 {
		return ClientErr("Invalid 'memory' setting for container '%s'. The minimum is 6 MiB.", name)
	}
	if c.MemoryReservation != nil && *c.MemoryReservation < 6 {
		return ClientErr("Invalid 'memoryReservation' setting for container '%s'. The minimum is 6 MiB.", name)
	}
	if c.Memory != nil && c.MemoryReservation != nil && *c.MemoryReservation > *c.Memory {
		return ClientErr("Invalid 'memory' setting for container '%s'. The memory hard limit must be greater than or equal to memoryReservation.", name)
	}
	if c.Memory == nil && c.MemoryReservation == nil && r.Memory == nil {
		return ClientErr("Invalid setting for container '%s'. At least one of 'memory' or 'memoryReservation' must be specified.", name)
	}
	if c.Memory != nil {
		v.sumMem += int(*c.Memory)
	} else {
		v.sumMem += int(Val(c.MemoryReservation))
	}
	return nil
}

// networking checks what a container may ask of the network and the host
// under the task's network mode and launch type, as ECS does: awsvpc
// tasks share one network namespace (no links, hostname, DNS settings or
// extra hosts per container), and Fargate grants nothing of the host.
func (v *tdCheck) networking(c *ContainerDefinition) *Error {
	name := *c.Name
	if v.mode == "awsvpc" || v.mode == "host" {
		switch {
		case len(c.Links) > 0:
			return ClientErr("Links are not supported when networkMode=%s.", v.mode)
		case v.mode == "awsvpc" && c.Hostname != nil:
			return ClientErr("The hostname parameter is not supported when networkMode=awsvpc (container '%s').", name)
		case v.mode == "awsvpc" && (len(c.DnsServers) > 0 || len(c.DnsSearchDomains) > 0):
			return ClientErr("dnsServers and dnsSearchDomains are not supported when networkMode=awsvpc (container '%s').", name)
		case v.mode == "awsvpc" && len(c.ExtraHosts) > 0:
			return ClientErr("extraHosts are not supported when networkMode=awsvpc (container '%s').", name)
		}
	}
	if !v.fargate {
		return nil
	}
	switch {
	case Val(c.Privileged):
		return ClientErr("Tasks using the Fargate launch type do not support privileged mode (container '%s').", name)
	case len(c.DockerSecurityOptions) > 0:
		return ClientErr("Tasks using the Fargate launch type do not support dockerSecurityOptions (container '%s').", name)
	case c.LinuxParameters != nil && len(c.LinuxParameters.Devices) > 0:
		return ClientErr("Tasks using the Fargate launch type do not support devices (container '%s').", name)
	case c.LinuxParameters != nil && c.LinuxParameters.SharedMemorySize != nil:
		return ClientErr("Tasks using the Fargate launch type do not support sharedMemorySize (container '%s').", name)
	case c.LinuxParameters != nil && c.LinuxParameters.Capabilities != nil && !onlyPtrace(c.LinuxParameters.Capabilities.Add):
		return ClientErr("Fargate compatible task definitions support only SYS_PTRACE in capabilities.add (container '%s').", name)
	}
	return nil
}

func onlyPtrace(add []string) bool {
	for _, c := range add {
		if c != "SYS_PTRACE" {
			return false
		}
	}
	return true
}

// portMappings checks a container's port mappings under the network mode
// and that no host port is used twice.
func (v *tdCheck) portMappings(c *ContainerDefinition) *Error {
	mode, name := v.mode, *c.Name
	for j := range c.PortMappings {
		pm := &c.PortMappings[j]
		cp := Val(pm.ContainerPort)
		if pm.ContainerPort == nil && pm.ContainerPortRange == nil {
			return ClientErr("Invalid port mapping for container '%s'. containerPort is required.", name)
		}
		if pm.ContainerPort != nil && (cp < 1 || cp > 65535) {
			return ClientErr("Invalid containerPort %d for container '%s'. Ports must be between 1 and 65535.", cp, name)
		}
		if pm.HostPort != nil && (*pm.HostPort < 0 || *pm.HostPort > 65535) {
			return ClientErr("Invalid hostPort %d for container '%s'. Ports must be between 0 and 65535.", *pm.HostPort, name)
		}
		if pm.Protocol == nil {
			pm.Protocol = Str("tcp")
		}
		if *pm.Protocol != "tcp" && *pm.Protocol != "udp" {
			return ClientErr("Invalid protocol '%s' for container '%s'. Valid values are tcp and udp.", *pm.Protocol, name)
		}
		if mode == "host" || mode == "awsvpc" {
			if pm.HostPort != nil && *pm.HostPort != 0 && *pm.HostPort != cp {
				return ClientErr("The host port must either be left blank or set to the same value as the container port when using %s network mode.", mode)
			}
			if pm.ContainerPort != nil {
				pm.HostPort = I32(cp)
			}
		}
		if hp := Val(pm.HostPort); hp != 0 {
			key := fmt.Sprintf("%d/%s", hp, *pm.Protocol)
			if other, dup := v.hostPorts[key]; dup {
				return ClientErr("Host port %d/%s is used by more than one port mapping (containers '%s' and '%s').", hp, *pm.Protocol, other, name)
			}
			v.hostPorts[key] = name
		}
	}
	return nil
}

// mounts checks a container's mount points and volumesFrom.
func (v *tdCheck) mounts(c *ContainerDefinition) *Error {
	vols, byName, name := v.vols, v.byName, *c.Name
	for _, mp := range c.MountPoints {
		sv := Val(mp.SourceVolume)
		if _, ok := vols[sv]; !ok {
			return ClientErr("Unknown volume '%s'.", sv)
		}
		cp := Val(mp.ContainerPath)
		if cp == "" {
			return ClientErr("Invalid mount point for container '%s'. containerPath is required.", name)
		}
		if !path.IsAbs(cp) {
			return ClientErr("Invalid containerPath '%s' for container '%s'. The path must be absolute.", cp, name)
		}
	}
	for _, vf := range c.VolumesFrom {
		src := Val(vf.SourceContainer)
		if _, ok := byName[src]; !ok {
			return ClientErr("Unknown container '%s' in volumesFrom of container '%s'.", src, name)
		}
		if src == name {
			return ClientErr("Container '%s' cannot mount volumes from itself.", name)
		}
	}
	return nil
}

// healthCheck checks a container's health check and fills its defaults.
func (v *tdCheck) healthCheck(c *ContainerDefinition) *Error {
	name := *c.Name
	if hc := c.HealthCheck; hc != nil {
		if len(hc.Command) == 0 {
			return ClientErr("Invalid healthCheck for container '%s'. command is required.", name)
		}
		for _, f := range []struct {
			p        **int32
			name     string
			lo, hi   int32
			default_ int32
		}{{&hc.Interval, "interval", 5, 300, 30}, {&hc.Timeout, "timeout", 2, 60, 5}, {&hc.Retries, "retries", 1, 10, 3}, {&hc.StartPeriod, "startPeriod", 0, 300, 0}} {
			if *f.p == nil {
				if f.name != "startPeriod" {
					*f.p = I32(f.default_)
				}
				continue
			}
			if v := **f.p; v < f.lo || v > f.hi {
				return ClientErr("Invalid healthCheck %s %d for container '%s'. The value must be between %d and %d.", f.name, v, name, f.lo, f.hi)
			}
		}
	}
	return nil
}

// limits checks a container's timeouts, ulimits and Linux parameters.
func (v *tdCheck) limits(c *ContainerDefinition) *Error {
	fargate, name := v.fargate, *c.Name
	if c.StopTimeout != nil && (*c.StopTimeout < 0 || *c.StopTimeout > 120) {
		return ClientErr("Invalid stopTimeout %d for container '%s'. The value must be between 0 and 120 seconds.", *c.StopTimeout, name)
	}
	if c.StartTimeout != nil && *c.StartTimeout < 0 {
		return ClientErr("Invalid startTimeout %d for container '%s'.", *c.StartTimeout, name)
	}
	for _, u := range c.Ulimits {
		if !containsStr(ulimitNames, Val(u.Name)) {
			return ClientErr("Invalid ulimit name '%s' for container '%s'.", Val(u.Name), name)
		}
		if u.SoftLimit == nil || u.HardLimit == nil {
			return ClientErr("Invalid ulimit '%s' for container '%s'. softLimit and hardLimit are required.", Val(u.Name), name)
		}
		if *u.SoftLimit > *u.HardLimit {
			return ClientErr("Invalid ulimit '%s' for container '%s'. softLimit cannot exceed hardLimit.", Val(u.Name), name)
		}
	}
	if lp := c.LinuxParameters; lp != nil {
		for _, t := range lp.Tmpfs {
			if !path.IsAbs(Val(t.ContainerPath)) {
				return ClientErr("Invalid tmpfs containerPath '%s' for container '%s'. The path must be absolute.", Val(t.ContainerPath), name)
			}
			if Val(t.Size) <= 0 {
				return ClientErr("Invalid tmpfs size for container '%s'. size must be greater than 0.", name)
			}
		}
		if lp.SharedMemorySize != nil && *lp.SharedMemorySize < 0 {
			return ClientErr("Invalid sharedMemorySize for container '%s'. The value must be at least 0.", name)
		}
		if len(lp.Tmpfs) > 0 && fargate {
			return ClientErr("Fargate compatible task definitions do not support tmpfs.")
		}
	}
	return nil
}

// environmentAndLogs checks a container's environment and log driver.
func (v *tdCheck) environmentAndLogs(c *ContainerDefinition) *Error {
	name := *c.Name
	for _, kv := range c.Environment {
		if Val(kv.Name) == "" {
			return ClientErr("Invalid environment variable for container '%s'. name is required.", name)
		}
		if strings.ContainsAny(Val(kv.Name), "=\x00") || strings.ContainsRune(Val(kv.Value), 0) {
			return ClientErr("Invalid environment variable for container '%s'. Names cannot contain '=' or NUL characters, and values cannot contain NUL.", name)
		}
	}
	seen := map[string]bool{}
	for _, sec := range c.Secrets {
		n := Val(sec.Name)
		if n == "" || Val(sec.ValueFrom) == "" {
			return ClientErr("Invalid secret for container '%s'. name and valueFrom are required.", name)
		}
		if strings.ContainsAny(n, "=\x00") {
			return ClientErr("Invalid secret name '%s' for container '%s'. Names cannot contain '=' or NUL characters.", n, name)
		}
		if seen[n] {
			return ClientErr("Duplicate secret name '%s' for container '%s'.", n, name)
		}
		seen[n] = true
	}
	if rc := c.RepositoryCredentials; rc != nil && Val(rc.CredentialsParameter) == "" {
		return ClientErr("Invalid repositoryCredentials for container '%s'. credentialsParameter is required.", name)
	}
	if lc := c.LogConfiguration; lc != nil {
		for _, so := range lc.SecretOptions {
			if Val(so.Name) == "" || Val(so.ValueFrom) == "" {
				return ClientErr("Invalid logConfiguration.secretOptions for container '%s'. name and valueFrom are required.", name)
			}
		}
	}
	if lc := c.LogConfiguration; lc != nil && Val(lc.LogDriver) == "" {
		return ClientErr("Invalid logConfiguration for container '%s'. logDriver is required.", name)
	} else if lc != nil && !logDrivers[Val(lc.LogDriver)] {
		return ClientErr("Log driver %s is not supported. Valid values: awsfirelens, awslogs, fluentd, gelf, journald, json-file, splunk, syslog.", Val(lc.LogDriver))
	}
	return nil
}

// dependencies checks dependsOn: known containers, valid conditions for
// their targets, and no cycle.
func (v *tdCheck) dependencies() *Error {
	r, byName := v.r, v.byName
	for i := range r.ContainerDefinitions {
		c := &r.ContainerDefinitions[i]
		for _, d := range c.DependsOn {
			dep := Val(d.ContainerName)
			target, ok := byName[dep]
			if !ok {
				return ClientErr("Unknown container '%s' in dependsOn of container '%s'.", dep, *c.Name)
			}
			if dep == *c.Name {
				return ClientErr("Container '%s' cannot depend on itself.", dep)
			}
			switch cond := Val(d.Condition); cond {
			case "START":
			case "COMPLETE", "SUCCESS":
				if Val(target.Essential) {
					return ClientErr("Dependency condition %s cannot be used with essential container '%s'.", cond, dep)
				}
			case "HEALTHY":
				if target.HealthCheck == nil {
					return ClientErr("Dependency condition HEALTHY requires a healthCheck on container '%s'.", dep)
				}
			default:
				return ClientErr("Invalid dependsOn condition '%s' for container '%s'. Valid values are START, COMPLETE, SUCCESS and HEALTHY.", cond, *c.Name)
			}
		}
	}
	if cyc := dependencyCycle(r.ContainerDefinitions); cyc != "" {
		return ClientErr("Container dependencies form a cycle: %s.", cyc)
	}
	return nil
}

// totals checks the containers' cpu and memory against the task's.
func (v *tdCheck) totals() *Error {
	taskCPU, taskMem, sumCPU, sumMem := v.taskCPU, v.taskMem, v.sumCPU, v.sumMem
	if taskMem == 0 && sumMem == 0 {
		return ClientErr("Invalid setting: the task needs memory at the task level or in its containers.")
	}
	if taskCPU > 0 && sumCPU > taskCPU {
		return ClientErr("The sum of container cpu values (%d) exceeds the task cpu (%d).", sumCPU, taskCPU)
	}
	if taskMem > 0 && sumMem > taskMem {
		return ClientErr("The sum of container memory values (%d MiB) exceeds the task memory (%d MiB).", sumMem, taskMem)
	}
	return nil
}

// HealthTest is a health check command as Docker runs it. ECS takes a
// command that does not start with CMD, CMD-SHELL or NONE too: one
// element with a space in it is a shell string (CMD-SHELL), anything
// else a command and its arguments (CMD).
func HealthTest(cmd []string) []string {
	if len(cmd) == 0 {
		return cmd
	}
	switch cmd[0] {
	case "CMD", "CMD-SHELL", "NONE":
		return cmd
	}
	if len(cmd) == 1 && strings.ContainsAny(cmd[0], " \t|;&$") {
		return []string{"CMD-SHELL", cmd[0]}
	}
	return append([]string{"CMD"}, cmd...)
}
