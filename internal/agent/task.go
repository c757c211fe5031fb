package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/go-connections/nat"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/spec"
)

// runner drives one task through its life on this instance.
type runner struct {
	a        *Agent
	arn, id  string
	task     spec.Task
	def      spec.TaskDefinition
	desired  chan string
	done     chan struct{}
	detached chan struct{}
	once     sync.Once

	ids     map[string]string // container name -> docker id
	order   []string          // start order
	exits   map[string]int    // container name -> exit code, for exited containers
	reasons map[string]string
	health  map[string]string

	blockVols []agentapi.TaskBlockVolume
	volumes   []agentapi.Volume
	fenced    atomic.Bool
	// limits are the I/O limits of the task's block volumes, set on every
	// container of the task.
	limits container.Resources

	// secrets are the task's container secrets and registry credentials,
	// fetched as the task starts and kept only in memory.
	secrets map[string]agentapi.ContainerSecrets

	// pause is the pause container holding an awsvpc task's network
	// namespace, and network the address it got.
	pause   string
	network *agentapi.TaskNetwork
	// cgroupParent is the task's own cgroup when the task has task-level
	// cpu or memory limits.
	cgroupParent string
	// perContainerLimits puts the task's limits on each container, where
	// the engine's cgroups cannot hold a task cgroup.
	perContainerLimits bool
}

// fence stops the task's containers at once and unmounts its block
// volumes: the agent may have lost its lease.
func (r *runner) fence(ctx context.Context) {
	r.fenced.Store(true)
	ctx = context.WithoutCancel(ctx)
	for _, id := range r.ids {
		timeout := 0
		r.a.docker.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout})
	}
	if r.pause != "" {
		timeout := 0
		r.a.docker.ContainerStop(ctx, r.pause, container.StopOptions{Timeout: &timeout})
	}
	r.detachBlockVolumes()
	r.unmountEFS()
	r.unbindHostPaths()
}

func newRunner(a *Agent, t agentapi.Task) *runner {
	spec.ApplyContainerOverrides(&t.TaskDefinition, t.Task.Overrides)
	arn := spec.Val(t.Task.TaskArn)
	return &runner{a: a, arn: arn, id: arn[strings.LastIndex(arn, "/")+1:], task: t.Task, def: t.TaskDefinition,
		desired: make(chan string, 1), done: make(chan struct{}), detached: make(chan struct{}),
		ids: map[string]string{}, exits: map[string]int{}, reasons: map[string]string{}, health: map[string]string{},
		blockVols: t.BlockVolumes, volumes: t.Volumes}
}

func (r *runner) setDesired(s string) {
	select {
	case <-r.desired:
	default:
	}
	r.desired <- s
}

func (r *runner) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// detach stops following the task without touching its containers.
func (r *runner) detach() { r.once.Do(func() { close(r.detached) }) }

func (r *runner) wantsStop() bool {
	select {
	case s := <-r.desired:
		if s == "STOPPED" {
			return true
		}
	default:
	}
	return spec.Val(r.task.DesiredStatus) == "STOPPED"
}

func (r *runner) containerName(c string) string {
	return fmt.Sprintf("ecs-%s-%d-%s-%s", spec.Val(r.def.Family), spec.Val(r.def.Revision), c, r.id)
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	log := r.a.log.With("task", r.arn)
	r.a.mu.Lock()
	existing := r.a.found[r.arn]
	delete(r.a.found, r.arn)
	r.pause = r.a.foundPause[r.id]
	delete(r.a.foundPause, r.id)
	r.a.mu.Unlock()
	for name, id := range existing {
		r.ids[name] = id
	}
	for _, c := range r.def.ContainerDefinitions {
		r.order = append(r.order, spec.Val(c.Name))
	}
	adopted := len(r.ids) == len(r.def.ContainerDefinitions) && spec.Val(r.task.LastStatus) == "RUNNING" && (r.pause != "" || !r.awsvpc())
	if !adopted {
		for _, id := range r.ids {
			r.a.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		}
		if r.pause != "" {
			r.a.docker.ContainerRemove(ctx, r.pause, container.RemoveOptions{Force: true})
			r.pause = ""
		}
		r.ids = map[string]string{}
		if r.wantsStop() {
			r.finish(ctx, "", "")
			return
		}
		if err := r.start(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			var tf *taskFailure
			if !errors.As(err, &tf) {
				tf = &taskFailure{code: "TaskFailedToStart", reason: err.Error()}
			}
			log.Warn("task failed to start", "reason", tf.reason)
			r.stopAll(ctx)
			r.finishWith(ctx, tf.code, tf.reason)
			return
		}
	} else {
		log.Info("adopted running task")
		if cpu, mem := r.taskLimits(); (cpu > 0 || mem > 0) && r.a.cgroupMode(ctx) != "" {
			r.cgroupParent = "/berth/" + r.id // made when the task started
		}
	}
	r.monitor(ctx)
}

// start provisions volumes, pulls images, creates the containers and starts
// them in dependency order, then reports RUNNING.
func (r *runner) start(ctx context.Context) error {
	if r.a.cfg.DisablePrivileged {
		for _, c := range r.def.ContainerDefinitions {
			if spec.Val(c.Privileged) {
				return &taskFailure{code: "TaskFailedToStart", reason: "CannotCreateContainerError: container '" + spec.Val(c.Name) + "' is privileged, and this instance refuses privileged containers"}
			}
		}
	}
	mounts, err := r.prepareVolumes(ctx)
	if err != nil {
		return err
	}
	if err := r.attachBlockVolumes(ctx, mounts); err != nil {
		return err
	}
	for _, v := range r.def.Volumes {
		if d := v.DockerVolumeConfiguration; d != nil && spec.Val(d.Scope) == "shared" {
			if err := r.a.api.Post(ctx, "/berth/v1/agent/residency", &agentapi.ResidencyRequest{Cluster: r.a.cfg.Cluster, ContainerInstance: r.a.arn, Keys: []string{"docker-volume/" + spec.Val(v.Name)}}, nil); err != nil {
				// The agent reports all its shared volumes again when it registers.
				r.a.log.Warn("report volume residency", "volume", spec.Val(v.Name), "err", err)
			}
		}
	}
	if err := r.setupCgroup(ctx); err != nil {
		return err
	}
	if r.awsvpc() {
		if err := r.startPause(ctx); err != nil {
			return err
		}
	}
	if err := r.fetchSecrets(ctx); err != nil {
		return err
	}
	// PENDING goes out while the containers are created; the server
	// ignores it if RUNNING arrives first.
	go r.report(ctx, "PENDING", nil)
	pullStart := time.Now()
	var missing []string
	auth := map[string]string{} // image -> encoded registry credentials
	for _, c := range r.def.ContainerDefinitions {
		img := spec.Val(c.Image)
		if _, err := r.a.docker.ImageInspect(ctx, img); cerrdefs.IsNotFound(err) {
			if !slices.Contains(missing, img) {
				missing = append(missing, img)
			}
		} else if err != nil {
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotPullContainerError: " + err.Error()}
		}
		if cs := r.secrets[spec.Val(c.Name)]; cs.RegistryUser != "" {
			auth[img], _ = registry.EncodeAuthConfig(registry.AuthConfig{Username: cs.RegistryUser, Password: cs.RegistryPass})
		}
	}
	if len(missing) > 0 {
		// pullStartedAt without pullStoppedAt tells clients a pull is under way.
		r.send(ctx, &agentapi.TaskStateChange{SubmitTaskStateChangeRequest: spec.SubmitTaskStateChangeRequest{
			Cluster: spec.Str(r.a.cfg.Cluster), Task: spec.Str(r.arn), PullStartedAt: spec.TS(time.Now())}})
		for _, img := range missing {
			if err := r.a.pullImage(ctx, img, auth[img], func(p string) {
				r.send(ctx, &agentapi.TaskStateChange{SubmitTaskStateChangeRequest: spec.SubmitTaskStateChangeRequest{
					Cluster: spec.Str(r.a.cfg.Cluster), Task: spec.Str(r.arn)}, PullProgress: &p})
			}); err != nil {
				return err
			}
		}
		r.send(ctx, &agentapi.TaskStateChange{SubmitTaskStateChangeRequest: spec.SubmitTaskStateChangeRequest{
			Cluster: spec.Str(r.a.cfg.Cluster), Task: spec.Str(r.arn), PullStoppedAt: spec.TS(time.Now())}})
	}
	for i := range r.def.ContainerDefinitions {
		c := &r.def.ContainerDefinitions[i]
		cfg, host := r.containerConfig(c, mounts)
		resp, err := r.a.docker.ContainerCreate(ctx, cfg, host, nil, nil, r.containerName(spec.Val(c.Name)))
		if err != nil {
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotCreateContainerError: " + err.Error()}
		}
		r.ids[spec.Val(c.Name)] = resp.ID
	}
	r.a.log.Debug("task containers created", "task", r.arn, "took", time.Since(pullStart))
	started := map[string]bool{}
	startedAt := time.Now()
	deadline := time.Now().Add(10 * time.Minute)
	for len(started) < len(r.def.ContainerDefinitions) {
		progress := false
		for i := range r.def.ContainerDefinitions {
			c := &r.def.ContainerDefinitions[i]
			name := spec.Val(c.Name)
			if started[name] {
				continue
			}
			ok, err := r.dependenciesMet(ctx, c)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := r.a.docker.ContainerStart(ctx, r.ids[name], container.StartOptions{}); err != nil {
				return &taskFailure{code: "TaskFailedToStart", reason: "CannotStartContainerError: " + err.Error()}
			}
			started[name] = true
			progress = true
		}
		if !progress {
			if r.wantsStop() || time.Now().After(deadline) {
				return &taskFailure{code: "TaskFailedToStart", reason: "DependencyNotSatisfied: containers did not reach their dependency conditions"}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	r.a.log.Debug("task containers started", "task", r.arn, "took", time.Since(startedAt))
	r.report(ctx, "RUNNING", r.containerStates(ctx))
	return nil
}

// fetchSecrets gets the values of the task's container secrets and
// registry credentials from the server, which checks that this instance
// runs the task. A secret that cannot be read stops the task, with ECS's
// ResourceInitializationError.
func (r *runner) fetchSecrets(ctx context.Context) error {
	need := false
	for _, c := range r.def.ContainerDefinitions {
		need = need || len(c.Secrets) > 0 || c.RepositoryCredentials != nil || c.LogConfiguration != nil && len(c.LogConfiguration.SecretOptions) > 0
	}
	if !need {
		return nil
	}
	out := &agentapi.TaskSecretsResponse{}
	err := r.a.api.Post(ctx, "/berth/v1/agent/secrets", &agentapi.TaskSecretsRequest{Cluster: r.a.cfg.Cluster, ContainerInstance: r.a.arn, Task: r.arn}, out)
	if err != nil {
		return &taskFailure{code: "TaskFailedToStart", reason: "ResourceInitializationError: unable to pull secrets or registry auth: " + err.Error()}
	}
	r.secrets = out.Containers
	return nil
}

func (r *runner) dependenciesMet(ctx context.Context, c *spec.ContainerDefinition) (bool, error) {
	for _, d := range c.DependsOn {
		dep := spec.Val(d.ContainerName)
		info, err := r.a.docker.ContainerInspect(ctx, r.ids[dep])
		if err != nil {
			return false, err
		}
		st := info.State
		exited := st.Status == "exited" || st.Status == "dead"
		switch spec.Val(d.Condition) {
		case "START":
			if st.Status == "created" {
				return false, nil
			}
		case "COMPLETE":
			if !exited {
				return false, nil
			}
		case "SUCCESS":
			if !exited {
				return false, nil
			}
			if st.ExitCode != 0 {
				return false, &taskFailure{code: "TaskFailedToStart", reason: fmt.Sprintf("DependencyNotSatisfied: container %s exited with code %d, %s needs SUCCESS", dep, st.ExitCode, spec.Val(c.Name))}
			}
		case "HEALTHY":
			if exited {
				return false, &taskFailure{code: "TaskFailedToStart", reason: fmt.Sprintf("DependencyNotSatisfied: container %s exited before it was healthy", dep)}
			}
			if st.Health == nil || st.Health.Status != "healthy" {
				return false, nil
			}
		}
	}
	return true, nil
}

type exitEvent struct {
	name string
	code int
}

// monitor follows the running task until it stops or the agent detaches.
func (r *runner) monitor(ctx context.Context) {
	exits := make(chan exitEvent, len(r.ids))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for name, id := range r.ids {
		info, err := r.a.docker.ContainerInspect(ctx, id)
		if err == nil && info.State.Status != "running" {
			if info.State.Status != "created" {
				exits <- exitEvent{name, info.State.ExitCode}
			}
			continue
		}
		go func(name, id string) {
			ch, errc := r.a.docker.ContainerWait(wctx, id, container.WaitConditionNotRunning)
			select {
			case w := <-ch:
				exits <- exitEvent{name, int(w.StatusCode)}
			case <-errc:
			}
		}(name, id)
	}
	essential := map[string]bool{}
	hasHealth := false
	for _, c := range r.def.ContainerDefinitions {
		essential[spec.Val(c.Name)] = spec.Val(c.Essential)
		hasHealth = hasHealth || c.HealthCheck != nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var storage <-chan time.Time
	if r.ephemeralBytes() > 0 {
		st := time.NewTicker(r.a.cfg.EphemeralCheckInterval)
		defer st.Stop()
		storage = st.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.detached:
			return
		case s := <-r.desired:
			if s == "STOPPED" {
				r.stopAll(ctx)
				r.finish(ctx, "", "")
				return
			}
		case ev := <-exits:
			r.exits[ev.name] = ev.code
			if essential[ev.name] {
				r.stopAll(ctx)
				r.finish(ctx, "EssentialContainerExited", "Essential container in task exited")
				return
			}
			r.report(ctx, "", r.containerStates(ctx))
		case <-storage:
			if over, reason := r.overEphemeral(ctx); over {
				r.a.log.Warn("task past its ephemeral storage: stopping it", "task", r.arn, "reason", reason)
				r.stopAll(ctx)
				r.finish(ctx, "EssentialContainerExited", reason)
				return
			}
		case <-tick.C:
			if hasHealth && r.refreshHealth(ctx) {
				r.report(ctx, "", r.containerStates(ctx))
			}
		}
	}
}

// refreshHealth reads container health; it reports whether anything changed.
func (r *runner) refreshHealth(ctx context.Context) bool {
	changed := false
	for _, c := range r.def.ContainerDefinitions {
		if c.HealthCheck == nil {
			continue
		}
		name := spec.Val(c.Name)
		info, err := r.a.docker.ContainerInspect(ctx, r.ids[name])
		if err != nil || info.State.Health == nil {
			continue
		}
		h := map[string]string{"healthy": "HEALTHY", "unhealthy": "UNHEALTHY"}[info.State.Health.Status]
		if h == "" {
			h = "UNKNOWN"
		}
		if r.health[name] != h {
			r.health[name] = h
			changed = true
		}
	}
	return changed
}

func (r *runner) taskHealth() string {
	status := ""
	for _, c := range r.def.ContainerDefinitions {
		if c.HealthCheck == nil || !spec.Val(c.Essential) {
			continue
		}
		switch h := r.health[spec.Val(c.Name)]; {
		case h == "UNHEALTHY":
			return "UNHEALTHY"
		case h == "HEALTHY" && status == "":
			status = "HEALTHY"
		case h != "HEALTHY":
			status = "UNKNOWN"
		}
	}
	return status
}

// stopAll stops the containers, dependents first: SIGTERM, then SIGKILL
// after the container's stopTimeout (30 s by default).
func (r *runner) stopAll(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if len(r.ids) > 0 {
		go r.report(ctx, "STOPPING", nil)
	}
	for i := len(r.def.ContainerDefinitions) - 1; i >= 0; i-- {
		c := &r.def.ContainerDefinitions[i]
		id, ok := r.ids[spec.Val(c.Name)]
		if !ok {
			continue
		}
		timeout := 30
		if c.StopTimeout != nil {
			timeout = int(*c.StopTimeout)
		}
		r.a.docker.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout})
	}
	if r.pause != "" {
		timeout := 0
		r.a.docker.ContainerStop(ctx, r.pause, container.StopOptions{Timeout: &timeout})
	}
}

func (r *runner) finish(ctx context.Context, code, reason string) {
	if r.fenced.Load() {
		code, reason = "TerminationNotice", "The container instance lost contact with the control plane; the task was stopped to release its block volumes"
	}
	r.finishWith(ctx, code, reason)
}

// finishWith reports STOPPED with the containers' real exit codes and
// schedules cleanup.
func (r *runner) finishWith(ctx context.Context, code, reason string) {
	ctx = context.WithoutCancel(ctx)
	states := r.containerStates(ctx)
	r.removeCgroup()
	r.detachBlockVolumes()
	r.unmountEFS()
	r.unbindHostPaths()
	r.report(ctx, "DEPROVISIONING", nil)
	r.reportStop(ctx, code, reason, states)
	r.a.scheduleCleanup(ctx, r.arn, 0)
}

func (r *runner) containerStates(ctx context.Context) []spec.ContainerStateChange {
	var out []spec.ContainerStateChange
	for _, name := range r.order {
		cs := spec.ContainerStateChange{ContainerName: spec.Str(name)}
		id, ok := r.ids[name]
		if !ok {
			cs.Status = spec.Str("STOPPED")
			out = append(out, cs)
			continue
		}
		cs.RuntimeId = spec.Str(id)
		info, err := r.a.docker.ContainerInspect(ctx, id)
		if err != nil {
			out = append(out, cs)
			continue
		}
		switch info.State.Status {
		case "running", "restarting", "paused":
			cs.Status = spec.Str("RUNNING")
		case "created":
			cs.Status = spec.Str("PENDING")
		default:
			cs.Status = spec.Str("STOPPED")
			cs.ExitCode = spec.I32(int32(info.State.ExitCode))
			if info.State.OOMKilled || info.State.ExitCode == 137 && r.taskOOM() {
				cs.Reason = spec.Str("OutOfMemoryError: Container killed due to memory usage")
			} else if info.State.Error != "" {
				cs.Reason = spec.Str(info.State.Error)
			}
		}
		if info.NetworkSettings != nil {
			for port, binds := range info.NetworkSettings.Ports {
				for _, b := range binds {
					hp, _ := strconv.Atoi(b.HostPort)
					cs.NetworkBindings = append(cs.NetworkBindings, spec.NetworkBinding{BindIP: spec.Str(b.HostIP),
						ContainerPort: spec.I32(int32(port.Int())), HostPort: spec.I32(int32(hp)), Protocol: spec.Str(port.Proto())})
				}
			}
		}
		out = append(out, cs)
	}
	return out
}

func (r *runner) report(ctx context.Context, status string, containers []spec.ContainerStateChange) {
	req := &agentapi.TaskStateChange{SubmitTaskStateChangeRequest: spec.SubmitTaskStateChangeRequest{
		Cluster: spec.Str(r.a.cfg.Cluster), Task: spec.Str(r.arn), Containers: containers}, Network: r.network}
	if status != "" {
		req.Status = spec.Str(status)
	}
	if len(r.health) > 0 {
		req.ContainerHealth = r.health
		if h := r.taskHealth(); h != "" {
			req.Health = spec.Str(h)
		}
	}
	r.send(ctx, req)
}

func (r *runner) reportStop(ctx context.Context, code, reason string, containers []spec.ContainerStateChange) {
	req := &agentapi.TaskStateChange{SubmitTaskStateChangeRequest: spec.SubmitTaskStateChangeRequest{
		Cluster: spec.Str(r.a.cfg.Cluster), Task: spec.Str(r.arn), Status: spec.Str("STOPPED"), Containers: containers,
		ExecutionStoppedAt: spec.TS(time.Now())}}
	if reason != "" {
		req.Reason = spec.Str(reason)
	}
	if code != "" {
		req.StopCode = spec.Str(code)
	}
	r.send(ctx, req)
}

// send delivers a state change, retrying while the server is unreachable.
func (r *runner) send(ctx context.Context, req *agentapi.TaskStateChange) {
	for attempt := 0; ; attempt++ {
		err := r.a.api.Call(ctx, "SubmitTaskStateChange", req, nil)
		var se *spec.Error
		if err == nil || errors.As(err, &se) && se.Code != "ServerException" {
			if err != nil {
				r.a.log.Warn("task state change refused", "task", r.arn, "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-r.detached:
			return
		case <-time.After(time.Duration(min(attempt+1, 10)) * 500 * time.Millisecond):
		}
	}
}

// pullImage pulls an image the engine does not have; progress, when
// given, hears how far it got now and then.
func (a *Agent) pullImage(ctx context.Context, ref, auth string, progress func(string)) error {
	a.log.Info("pulling image", "image", ref, "withCredentials", auth != "")
	rc, err := a.docker.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return &taskFailure{code: "TaskFailedToStart", reason: "CannotPullContainerError: " + err.Error()}
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	var pp pullProgress
	last := time.Now()
	for {
		var msg pullMessage
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotPullContainerError: " + err.Error()}
		}
		if msg.Error != "" {
			return &taskFailure{code: "TaskFailedToStart", reason: "CannotPullContainerError: " + msg.Error}
		}
		pp.add(msg)
		if progress != nil && time.Since(last) >= time.Second {
			last = time.Now()
			if s := pp.String(); s != "" {
				progress("pulling " + ref + ": " + s)
			}
		}
	}
}

// pullMessage is one line of the engine's pull progress.
type pullMessage struct {
	Status         string `json:"status"`
	Error          string `json:"error"`
	ID             string `json:"id"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
}

// pullProgress sums the layers' downloads.
type pullProgress struct {
	layers map[string][2]int64 // id -> done, total
}

func (p *pullProgress) add(m pullMessage) {
	if m.ID == "" {
		return
	}
	if p.layers == nil {
		p.layers = map[string][2]int64{}
	}
	l := p.layers[m.ID]
	switch m.Status {
	case "Downloading":
		if m.ProgressDetail.Total > 0 {
			l = [2]int64{m.ProgressDetail.Current, m.ProgressDetail.Total}
		}
	case "Download complete", "Pull complete", "Already exists":
		if l[1] > 0 {
			l[0] = l[1]
		}
	default:
		return
	}
	p.layers[m.ID] = l
}

// String is "45% (12 of 26 MiB)", or "" before any size is known.
func (p *pullProgress) String() string {
	var done, total int64
	for _, l := range p.layers {
		done, total = done+l[0], total+l[1]
	}
	if total == 0 {
		return ""
	}
	return fmt.Sprintf("%d%% (%d of %d MiB)", 100*done/total, done>>20, total>>20)
}

var dockerLogDrivers = map[string]bool{"json-file": true, "local": true, "none": true, "syslog": true, "journald": true, "gelf": true, "fluentd": true}

// containerConfig translates a container definition to Docker's.
func (r *runner) containerConfig(c *spec.ContainerDefinition, mounts map[string]mount.Mount) (*container.Config, *container.HostConfig) {
	name := spec.Val(c.Name)
	labels := map[string]string{}
	for k, v := range c.DockerLabels {
		labels[k] = v
	}
	labels[LabelTaskARN] = r.arn
	labels[LabelContainerName] = name
	labels[LabelCluster] = r.a.cfg.Cluster
	labels[LabelFamily] = spec.Val(r.def.Family)
	labels[LabelRevision] = strconv.Itoa(int(spec.Val(r.def.Revision)))
	labels[LabelInstance] = r.a.id
	cfg := &container.Config{
		Image: spec.Val(c.Image), Cmd: c.Command, Entrypoint: c.EntryPoint, User: spec.Val(c.User),
		WorkingDir: spec.Val(c.WorkingDirectory), Labels: labels, Hostname: spec.Val(c.Hostname),
		ExposedPorts: nat.PortSet{}, Tty: spec.Val(c.PseudoTerminal), OpenStdin: spec.Val(c.Interactive),
	}
	for _, kv := range c.Environment {
		cfg.Env = append(cfg.Env, spec.Val(kv.Name)+"="+spec.Val(kv.Value))
	}
	for _, sec := range c.Secrets {
		if v, ok := r.secrets[name].Env[spec.Val(sec.Name)]; ok {
			cfg.Env = append(cfg.Env, spec.Val(sec.Name)+"="+v)
		}
	}
	if hc := c.HealthCheck; hc != nil {
		sec := func(p *int32) time.Duration { return time.Duration(spec.Val(p)) * time.Second }
		cfg.Healthcheck = &container.HealthConfig{Test: spec.HealthTest(hc.Command), Interval: sec(hc.Interval), Timeout: sec(hc.Timeout),
			Retries: int(spec.Val(hc.Retries)), StartPeriod: sec(hc.StartPeriod)}
	}
	mode := spec.Val(r.def.NetworkMode)
	if mode == "" {
		mode = "bridge"
	}
	if mode == "awsvpc" {
		mode = "container:" + r.pause // the task's own namespace and address
	}
	host := &container.HostConfig{NetworkMode: container.NetworkMode(mode), PortBindings: nat.PortMap{},
		ReadonlyRootfs: spec.Val(c.ReadonlyRootFilesystem), Privileged: spec.Val(c.Privileged),
		DNS: c.DnsServers, DNSSearch: c.DnsSearchDomains, SecurityOpt: c.DockerSecurityOptions, Tmpfs: map[string]string{}}
	for _, pm := range c.PortMappings {
		if pm.ContainerPort == nil {
			continue
		}
		port := nat.Port(fmt.Sprintf("%d/%s", *pm.ContainerPort, spec.Val(pm.Protocol)))
		if r.pause != "" {
			continue // Docker exposes no ports of a namespace it does not own
		}
		cfg.ExposedPorts[port] = struct{}{}
		if mode == "bridge" {
			hp := ""
			if spec.Val(pm.HostPort) != 0 {
				hp = strconv.Itoa(int(*pm.HostPort))
			}
			host.PortBindings[port] = append(host.PortBindings[port], nat.PortBinding{HostPort: hp})
		}
	}
	for _, he := range c.ExtraHosts {
		host.ExtraHosts = append(host.ExtraHosts, spec.Val(he.Hostname)+":"+spec.Val(he.IpAddress))
	}
	if cpu := spec.Val(c.Cpu); cpu >= 2 {
		host.CPUShares = int64(cpu)
	}
	if c.Memory != nil {
		host.Memory = int64(*c.Memory) << 20
	}
	host.CgroupParent = r.cgroupParent
	if r.perContainerLimits {
		cpu, mem := r.taskLimits()
		if host.Memory == 0 && mem > 0 {
			host.Memory = int64(mem) << 20
		}
		if cpu > 0 {
			host.NanoCPUs = int64(cpu) * 1e9 / 1024
		}
	}
	if c.MemoryReservation != nil {
		host.MemoryReservation = int64(*c.MemoryReservation) << 20
	}
	for _, u := range c.Ulimits {
		host.Ulimits = append(host.Ulimits, &container.Ulimit{Name: spec.Val(u.Name), Soft: int64(spec.Val(u.SoftLimit)), Hard: int64(spec.Val(u.HardLimit))})
	}
	if lp := c.LinuxParameters; lp != nil {
		for _, t := range lp.Tmpfs {
			opts := append([]string{fmt.Sprintf("size=%dm", spec.Val(t.Size))}, t.MountOptions...)
			host.Tmpfs[spec.Val(t.ContainerPath)] = strings.Join(opts, ",")
		}
		if lp.InitProcessEnabled != nil {
			host.Init = lp.InitProcessEnabled
		}
		if lp.SharedMemorySize != nil {
			host.ShmSize = int64(*lp.SharedMemorySize) << 20
		}
	}
	host.BlkioDeviceReadIOps, host.BlkioDeviceWriteIOps = r.limits.BlkioDeviceReadIOps, r.limits.BlkioDeviceWriteIOps
	host.BlkioDeviceReadBps, host.BlkioDeviceWriteBps = r.limits.BlkioDeviceReadBps, r.limits.BlkioDeviceWriteBps
	for _, mp := range c.MountPoints {
		m := mounts[spec.Val(mp.SourceVolume)]
		m.Target = spec.Val(mp.ContainerPath)
		m.ReadOnly = spec.Val(mp.ReadOnly)
		host.Mounts = append(host.Mounts, m)
	}
	for _, vf := range c.VolumesFrom {
		src := r.containerName(spec.Val(vf.SourceContainer))
		if spec.Val(vf.ReadOnly) {
			src += ":ro"
		}
		host.VolumesFrom = append(host.VolumesFrom, src)
	}
	if lc := c.LogConfiguration; lc != nil && dockerLogDrivers[spec.Val(lc.LogDriver)] {
		host.LogConfig = container.LogConfig{Type: spec.Val(lc.LogDriver), Config: maps.Clone(lc.Options)}
		for k, v := range r.secrets[name].LogOptions { // secretOptions, resolved at start
			if host.LogConfig.Config == nil {
				host.LogConfig.Config = map[string]string{}
			}
			host.LogConfig.Config[k] = v
		}
	} else {
		host.LogConfig = container.LogConfig{Type: "json-file"}
	}
	return cfg, host
}
