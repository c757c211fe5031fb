// Package agent is a Berth container instance: it registers with the
// server, keeps its lease, long-polls the tasks placed on it, runs them on
// the Docker Engine with their volumes, and reports their state back. It
// talks only to the server, never to etcd. All it needs to survive a
// restart is its instance ARN on disk and the labels on its containers.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/endpoint"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/volume/block"
)

// Version is the agent version reported to the server.
const Version = "1.0.0"

// Labels Berth puts on containers and volumes (the com.amazonaws.ecs ones as the ECS agent does).
const (
	LabelTaskARN       = "com.amazonaws.ecs.task-arn"
	LabelContainerName = "com.amazonaws.ecs.container-name"
	LabelCluster       = "com.amazonaws.ecs.cluster"
	LabelFamily        = "com.amazonaws.ecs.task-definition-family"
	LabelRevision      = "com.amazonaws.ecs.task-definition-version"
	LabelInstance      = "com.berth.container-instance"
	LabelTaskVolume    = "com.berth.task-volume"
)

// Config configures an agent.
type Config struct {
	Server      string // server URL
	Cluster     string
	Zone        string
	DataDir     string
	DockerHost  string // empty: the environment's (DOCKER_HOST or the default socket)
	CPU, Memory int    // CPU units and MiB; 0 means the machine's
	Credentials *Client
	// Token is a join token: the agent pins the cluster CA it names and
	// trades it for credentials of its own, kept in DataDir.
	Token string
	// AllowedHostPaths limits host.sourcePath to these directories, with
	// no symlink followed below them; empty allows every host path.
	AllowedHostPaths []string
	// DisablePrivileged refuses privileged containers (ECS_DISABLE_PRIVILEGED):
	// the instance does not advertise the capability, and the agent fails
	// a task that asks for one anyway.
	DisablePrivileged bool
	// CleanupWait is how long a stopped task's containers and task volumes stay.
	CleanupWait       time.Duration
	HeartbeatInterval time.Duration
	Log               *slog.Logger
	// MountBinary is the berth binary that serves EFS mounts (default:
	// this executable).
	MountBinary string
	// EphemeralUnit is the bytes per GiB of a task's ephemeral storage
	// (default 1 GiB; tests make it smaller) and EphemeralCheckInterval
	// how often writable layers are measured against it (default 10 s).
	EphemeralUnit          int64
	EphemeralCheckInterval time.Duration
	// HostAddress is the address other hosts reach this one's tasks
	// through (default: the address it reaches its server from).
	HostAddress string
	// ZoneDefaulted says Zone is the default, not the operator's choice:
	// an instance registered before keeps the zone it had.
	ZoneDefaulted bool
	// Capacity says which tasks the instance takes: "EC2", "FARGATE" or
	// both, separated by commas or spaces (the default).
	Capacity string
	// DisableSMB keeps the instance from serving SMB shares of FSx file
	// systems in its zone (it serves them when the host has Samba).
	DisableSMB bool
}

// Agent is a running container instance.
type Agent struct {
	cfg    Config
	api    *Client
	docker *client.Client
	arn    string
	id     string
	log    *slog.Logger

	mu      sync.Mutex
	runners map[string]*runner // task ARN -> runner
	ready   chan struct{}
	// found holds, per task, the containers found at startup: only tasks
	// known before this process started can have containers to adopt.
	found     map[string]map[string]string // task ARN -> container name -> id
	lastSweep time.Time
	work      volumeWork
	images    imageLocks

	// The instance's task network (awsvpc), set up on first use.
	netMu    sync.Mutex
	netName  string
	netBlock *agentapi.NetworkBlock
	pauses   pausePool
	// routesOnce starts the routes to other instances' blocks; runCtx is
	// Run's context.
	routesOnce sync.Once
	runCtx     context.Context
	// foundPause holds, per task id, the pause container found at startup.
	foundPause map[string]string

	cgOnce sync.Once
	cgMode string // see cgroupMode

	// lastHeartbeat is when the server last confirmed the lease (unix nanos);
	// leaseTTL is the lease it reported.
	lastHeartbeat atomic.Int64
	leaseTTL      atomic.Int64
	fenced        atomic.Bool
}

type savedState struct {
	ContainerInstanceArn string `json:"containerInstanceArn"`
	Cluster              string `json:"cluster"`
	Zone                 string `json:"zone,omitempty"`
}

// DefaultZone is the zone of an agent not told one, an AWS-style name so
// that subnet-us-east-1a passes the AWS CLI's checks. Agents registered
// before it was the default keep theirs (OldDefaultZone).
const (
	DefaultZone    = "us-east-1a"
	OldDefaultZone = "local-a"
)

// New prepares an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Cluster == "" {
		cfg.Cluster = "default"
	}
	if cfg.Zone == "" {
		cfg.Zone, cfg.ZoneDefaulted = DefaultZone, true
	}
	if cfg.CleanupWait == 0 {
		cfg.CleanupWait = 3 * time.Hour
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.EphemeralUnit == 0 {
		cfg.EphemeralUnit = 1 << 30
	}
	if cfg.EphemeralCheckInterval == 0 {
		cfg.EphemeralCheckInterval = 10 * time.Second
	}
	if cfg.Capacity == "" {
		cfg.Capacity = "EC2,FARGATE"
	}
	var kinds []string
	for _, k := range strings.FieldsFunc(cfg.Capacity, func(r rune) bool { return r == ',' || r == ' ' }) {
		k = strings.ToUpper(k)
		if k != "EC2" && k != "FARGATE" {
			return nil, fmt.Errorf("--capacity %q: give EC2, FARGATE or EC2,FARGATE", cfg.Capacity)
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	cfg.Capacity = strings.Join(kinds, " ") // as the attribute's value shows it
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	}
	dc, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	api := cfg.Credentials
	if api == nil {
		api = &Client{}
	}
	servers, err := endpoint.Parse(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	api.Endpoint = servers.String()
	if api.HTTP == nil {
		// Snapshots and restores keep block.Workers requests in flight.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 2 * block.Workers
		api.HTTP = &http.Client{Transport: t}
	}
	return &Agent{cfg: cfg, api: api, docker: dc, log: cfg.Log, runners: map[string]*runner{}, ready: make(chan struct{})}, nil
}

// Ready is closed once the agent is registered and has adopted its containers.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// ContainerInstanceArn is the agent's instance ARN once registered.
func (a *Agent) ContainerInstanceArn() string { return a.arn }

// Run registers and serves until ctx ends. Containers keep running when it
// returns; the next Run adopts them.
func (a *Agent) Run(ctx context.Context) error {
	a.runCtx = ctx
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return err
	}
	ping, err := a.docker.Ping(ctx)
	if err != nil {
		return fmt.Errorf("docker engine: %w", err)
	}
	a.docker.NegotiateAPIVersionPing(ping)
	if err := a.join(ctx); err != nil {
		return err
	}
	a.thawVolumes()
	if err := a.register(ctx); err != nil {
		return err
	}
	a.log.Info("agent registered", "containerInstance", a.arn, "zone", a.cfg.Zone)
	if err := a.reportOwnVolumes(ctx); err != nil {
		a.log.Warn("report volumes", "err", err)
	}
	go a.heartbeats(ctx)
	if !a.cfg.DisableSMB {
		go a.runSMB(ctx)
	}
	if err := a.scanContainers(ctx); err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var rev int64
	first := true
	for ctx.Err() == nil {
		var out agentapi.TasksResponse
		err := a.api.Post(ctx, "/berth/v1/agent/tasks", &agentapi.TasksRequest{Cluster: a.cfg.Cluster, ContainerInstance: a.arn, AfterRevision: rev, WaitSeconds: 20}, &out)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			a.log.Warn("poll tasks", "err", err)
			time.Sleep(time.Second)
			continue
		}
		rev = out.Revision
		a.reconcile(ctx, out.Tasks)
		a.volumeOps(ctx, &out)
		if first {
			first = false
			close(a.ready)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runners {
		r.detach()
	}
	return nil
}

func (a *Agent) statePath() string { return filepath.Join(a.cfg.DataDir, "agent.json") }

func (a *Agent) register(ctx context.Context) error {
	cpu, mem := a.cfg.CPU, a.cfg.Memory
	if cpu == 0 {
		cpu = runtime.NumCPU() * 1024
	}
	if mem == 0 {
		mem = machineMemoryMiB()
	}
	var saved savedState
	if b, err := os.ReadFile(a.statePath()); err == nil {
		if err := json.Unmarshal(b, &saved); err != nil {
			return fmt.Errorf("agent state %s is unreadable (remove it to register as a new instance): %w", a.statePath(), err)
		}
	}
	if a.cfg.ZoneDefaulted && saved.ContainerInstanceArn != "" && saved.Cluster == a.cfg.Cluster {
		a.cfg.Zone = saved.Zone
		if a.cfg.Zone == "" {
			a.cfg.Zone = OldDefaultZone
		}
	}
	info, _ := a.docker.ServerVersion(ctx)
	host, _ := os.Hostname()
	doc, _ := json.Marshal(map[string]string{"availabilityZone": a.cfg.Zone, "instanceType": "berth.local", "region": "us-east-1"})
	req := &spec.RegisterContainerInstanceRequest{
		Cluster:                  spec.Str(a.cfg.Cluster),
		InstanceIdentityDocument: spec.Str(string(doc)),
		TotalResources: []spec.Resource{
			{Name: spec.Str("CPU"), Type: spec.Str("INTEGER"), IntegerValue: spec.I32(int32(cpu))},
			{Name: spec.Str("MEMORY"), Type: spec.Str("INTEGER"), IntegerValue: spec.I32(int32(mem))},
		},
		VersionInfo: &spec.VersionInfo{AgentVersion: spec.Str(Version), AgentHash: spec.Str("berth"), DockerVersion: spec.Str("DockerVersion: " + info.Version)},
		Attributes:  append(capabilities(a.cfg.DisablePrivileged), spec.Attribute{Name: spec.Str(scheduler.CapacityAttribute), Value: spec.Str(a.cfg.Capacity)}),
		Tags:        []spec.Tag{{Key: spec.Str("berth:host"), Value: spec.Str(host)}},
	}
	if saved.ContainerInstanceArn != "" && saved.Cluster == a.cfg.Cluster {
		req.ContainerInstanceArn = spec.Str(saved.ContainerInstanceArn)
	}
	var out spec.RegisterContainerInstanceResponse
	err := a.api.Call(ctx, "RegisterContainerInstance", req, &out)
	var se *spec.Error
	if err != nil && req.ContainerInstanceArn != nil && errors.As(err, &se) && se.Code == "InvalidParameterException" {
		// Deregistered while we were away: start over as a new instance.
		req.ContainerInstanceArn = nil
		err = a.api.Call(ctx, "RegisterContainerInstance", req, &out)
	}
	if err != nil {
		return fmt.Errorf("register container instance: %w", err)
	}
	a.arn = spec.Val(out.ContainerInstance.ContainerInstanceArn)
	a.id = a.arn[strings.LastIndex(a.arn, "/")+1:]
	b, _ := json.Marshal(savedState{ContainerInstanceArn: a.arn, Cluster: a.cfg.Cluster, Zone: a.cfg.Zone})
	tmp := a.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath())
}

// capabilities are the attributes the agent advertises, named as ECS agents name them.
func capabilities(noPrivileged bool) []spec.Attribute {
	var out []spec.Attribute
	if !noPrivileged {
		out = append(out, spec.Attribute{Name: spec.Str(spec.PrivilegedCapability)})
	}
	for _, n := range []string{
		"com.amazonaws.ecs.capability.docker-remote-api.1.17", "com.amazonaws.ecs.capability.docker-remote-api.1.18",
		"com.amazonaws.ecs.capability.docker-remote-api.1.19", "com.amazonaws.ecs.capability.docker-remote-api.1.21",
		"com.amazonaws.ecs.capability.docker-remote-api.1.22", "com.amazonaws.ecs.capability.docker-remote-api.1.23",
		"com.amazonaws.ecs.capability.docker-remote-api.1.24", "com.amazonaws.ecs.capability.docker-remote-api.1.25",
		"com.amazonaws.ecs.capability.logging-driver.json-file", "com.amazonaws.ecs.capability.logging-driver.none",
		"ecs.capability.docker-plugin.local",
		"ecs.capability.container-health-check", "ecs.capability.container-ordering", "ecs.capability.task-cpu-mem-limit",
		"ecs.capability.ebs-task-attach", "ecs.capability.efs", "ecs.capability.efsAuth", "ecs.capability.task-eni",
		"ecs.capability.fsxWindowsFileServer", "ecs.capability.secrets.asm.environment-variables", "ecs.capability.secrets.ssm.environment-variables",
		"com.amazonaws.ecs.capability.ecr-auth", "ecs.capability.private-registry-authentication.secretsmanager",
	} {
		out = append(out, spec.Attribute{Name: spec.Str(n)})
	}
	return out
}

func machineMemoryMiB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1024
	}
	var kb int
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%d", &kb)
		}
	}
	return kb / 1024
}

// heartbeatTimeout bounds one heartbeat; a failed one is tried again on
// the next server after heartbeatRetry, doubled while they keep failing,
// up to the heartbeat interval.
const heartbeatTimeout, heartbeatRetry = 2 * time.Second, 250 * time.Millisecond

func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	a.lastHeartbeat.Store(time.Now().UnixNano())
	go a.fenceWatch(ctx)
	fails := 0
	for {
		var resp struct {
			LeaseTTL int64 `json:"leaseTtlSeconds"`
		}
		sent := time.Now()
		// A heartbeat that a server cannot answer soon (its etcd has no
		// quorum, say) is tried on the next server, at once.
		hctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
		// The renewals that failed since the last that went through are
		// reported with the next that does (the server counts them).
		err := a.api.Post(hctx, "/berth/v1/agent/heartbeat", map[string]any{"cluster": a.cfg.Cluster, "containerInstance": a.arn, "missedRenewals": fails}, &resp)
		cancel()
		if err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat", "err", err)
			a.api.NextServer()
			fails++
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(heartbeatRetry<<min(fails-1, 4), a.cfg.HeartbeatInterval)):
				continue
			}
		} else if err == nil {
			fails = 0
			a.lastHeartbeat.Store(sent.UnixNano())
			if resp.LeaseTTL > 0 {
				a.leaseTTL.Store(resp.LeaseTTL)
			}
			if a.fenced.Swap(false) {
				a.log.Info("lease renewed; block volumes may be attached again")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fenceWatch stops the tasks that hold block volumes, and unmounts them,
// once the lease may be about to expire without this agent having renewed
// it: after 60 % of the lease since the last confirmed heartbeat. The
// server gives a volume to another attachment only after the lease has
// expired, so the old writer has stopped by then.
func (a *Agent) fenceWatch(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ttl := time.Duration(a.leaseTTL.Load()) * time.Second
		if ttl == 0 || a.fenced.Load() {
			continue
		}
		if time.Since(time.Unix(0, a.lastHeartbeat.Load())) < ttl*6/10 {
			continue
		}
		a.fenced.Store(true)
		a.log.Warn("lease not renewed: fencing block volumes", "lease", ttl)
		a.mu.Lock()
		var rs []*runner
		for _, r := range a.runners {
			if len(r.blockVols) > 0 && !r.finished() {
				rs = append(rs, r)
			}
		}
		a.mu.Unlock()
		for _, r := range rs {
			r.fence(ctx)
		}
	}
}

// reportOwnVolumes tells the server which shared volumes this instance holds.
func (a *Agent) reportOwnVolumes(ctx context.Context) error {
	vols, err := a.docker.VolumeList(ctx, volumeListOptions(filters.NewArgs(filters.Arg("label", LabelInstance+"="+a.id))))
	if err != nil {
		return err
	}
	var keys []string
	for _, v := range vols.Volumes {
		if v.Labels[LabelTaskVolume] == "" {
			keys = append(keys, "docker-volume/"+v.Name)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return a.api.Post(ctx, "/berth/v1/agent/residency", &agentapi.ResidencyRequest{Cluster: a.cfg.Cluster, ContainerInstance: a.arn, Keys: keys}, nil)
}

// scanContainers records the containers this instance left behind.
func (a *Agent) scanContainers(ctx context.Context) error {
	list, err := a.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+a.id))})
	if err != nil {
		return err
	}
	a.found = map[string]map[string]string{}
	a.foundPause = map[string]string{}
	for _, c := range list {
		if c.Labels[LabelPausePool] != "" {
			if id := pauseTaskID(firstName(c.Names)); id != "" {
				a.foundPause[id] = c.ID
			} else {
				// A warm one of an earlier run: its address may have gone
				// with the network it was on.
				a.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
			continue
		}
		arn := c.Labels[LabelTaskARN]
		if a.found[arn] == nil {
			a.found[arn] = map[string]string{}
		}
		a.found[arn][c.Labels[LabelContainerName]] = c.ID
	}
	return nil
}

// reconcile starts runners for new tasks, passes desired status to existing
// ones, and stops containers of tasks the server no longer runs here.
func (a *Agent) reconcile(ctx context.Context, tasks []agentapi.Task) {
	a.mu.Lock()
	defer a.mu.Unlock()
	live := map[string]bool{}
	for _, t := range tasks {
		arn := spec.Val(t.Task.TaskArn)
		live[arn] = true
		r, ok := a.runners[arn]
		if !ok {
			if t.Task.CreatedAt != nil {
				a.log.Debug("task received", "task", arn, "sinceCreated", time.Since(t.Task.CreatedAt.Time))
			}
			r = newRunner(a, t)
			a.runners[arn] = r
			go r.run(ctx)
		}
		r.setDesired(spec.Val(t.Task.DesiredStatus))
	}
	for arn, r := range a.runners {
		if !live[arn] && r.finished() {
			delete(a.runners, arn)
		}
	}
	// Containers of tasks that are STOPPED on the server (replaced while
	// this agent was away) are stopped; cleanup removes them later. The
	// sweep runs at startup and then every half minute.
	if time.Since(a.lastSweep) < 30*time.Second {
		return
	}
	a.lastSweep = time.Now()
	liveVolumes, liveTasks := map[string]bool{}, map[string]bool{}
	for _, t := range tasks {
		arn := spec.Val(t.Task.TaskArn)
		liveTasks[arn[strings.LastIndex(arn, "/")+1:]] = true
		for _, bv := range t.BlockVolumes {
			liveVolumes[bv.VolumeID] = true
		}
	}
	a.unmountStale(liveVolumes)
	a.unmountStaleEFS(liveTasks)
	a.unbindStaleHostPaths(liveTasks)
	list, err := a.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+a.id))})
	if err != nil {
		a.log.Warn("list containers", "err", err)
		return
	}
	byID := map[string]string{}
	for arn := range a.runners {
		byID[arn[strings.LastIndex(arn, "/")+1:]] = arn
	}
	for _, c := range list {
		arn := c.Labels[LabelTaskARN]
		if c.Labels[LabelPausePool] != "" {
			id := pauseTaskID(firstName(c.Names))
			if id == "" || liveTasks[id] || byID[id] != "" {
				continue // warm, or a live task's
			}
			arn = "task/" + id // cleanupTask finds its pause by the id
		}
		if live[arn] || a.runners[arn] != nil {
			continue
		}
		if c.State == "running" {
			a.log.Info("stopping container of a task stopped elsewhere", "task", arn, "container", c.Names)
			timeout := 10
			go a.docker.ContainerStop(context.WithoutCancel(ctx), c.ID, container.StopOptions{Timeout: &timeout})
		}
		a.scheduleCleanup(ctx, arn, c.Created)
	}
}

// scheduleCleanup removes a stopped task's containers and task volumes once
// CleanupWait has passed since it stopped (approximated by creation time for
// orphans found at startup).
func (a *Agent) scheduleCleanup(ctx context.Context, taskARN string, created int64) {
	go func() {
		wait := a.cfg.CleanupWait
		if created > 0 {
			wait -= time.Since(time.Unix(created, 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		a.cleanupTask(context.WithoutCancel(ctx), taskARN)
	}()
}

func (a *Agent) cleanupTask(ctx context.Context, taskARN string) {
	taskID := taskARN[strings.LastIndex(taskARN, "/")+1:]
	list, err := a.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelInstance+"="+a.id), filters.Arg("label", LabelTaskARN+"="+taskARN))})
	if err != nil {
		return
	}
	pauses, err := a.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelInstance+"="+a.id), filters.Arg("label", LabelPausePool), filters.Arg("name", pauseNamePart+taskID))})
	if err != nil {
		return
	}
	for _, c := range pauses {
		if pauseTaskID(firstName(c.Names)) == taskID {
			list = append(list, c)
		}
	}
	busy := false
	for _, c := range list {
		if c.State == "running" {
			busy = true
			continue // not ours to remove yet
		}
		if err := a.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			a.log.Warn("cleanup: remove container", "container", c.ID, "err", err)
		}
	}
	vols, err := a.docker.VolumeList(ctx, volumeListOptions(filters.NewArgs(filters.Arg("label", LabelTaskVolume+"="+taskARN))))
	if err == nil {
		for _, v := range vols.Volumes {
			if err := a.docker.VolumeRemove(ctx, v.Name, false); err != nil && !cerrdefs.IsNotFound(err) {
				a.log.Warn("cleanup: remove task volume", "volume", v.Name, "err", err)
			}
		}
	}
	if !busy {
		a.removeScratch(taskID)
	}
	a.mu.Lock()
	if r := a.runners[taskARN]; r != nil && r.finished() {
		delete(a.runners, taskARN)
	}
	a.mu.Unlock()
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}
