package ecs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/agentauth"
	"github.com/berth-project/berth/internal/cql"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// launchSpec is everything RunTask and StartTask share once validated.
type launchSpec struct {
	cluster    *state.ClusterRecord
	td         *state.TaskDefRecord
	effective  *spec.TaskDefinition // the definition with overrides applied, for the demand
	group      string
	launchType string
	startedBy  *string
	overrides  *spec.TaskOverride
	tags       []spec.Tag
	request    *scheduler.Request
	block      []placement.BlockVolume
	network    *taskNetwork
	// providers is each task's capacity provider, for a strategy.
	providers []string
}

// prepare validates a launch completely, before anything is written.
func (a *API) prepare(ctx context.Context, in *launch.Input) (*launchSpec, error) {
	if spec.Val(in.TaskDefinition) == "" {
		return nil, spec.InvalidParam("taskDefinition is required.")
	}
	if sb := spec.Val(in.StartedBy); len(sb) > 128 {
		return nil, spec.InvalidParam("startedBy can be at most 128 characters.")
	}
	if g := spec.Val(in.Group); len(g) > 255 {
		return nil, spec.InvalidParam("group can be at most 255 characters.")
	}
	if err := spec.ValidateTags(in.Tags); err != nil {
		return nil, err
	}
	if pt := spec.Val(in.PropagateTags); pt != "" && pt != "TASK_DEFINITION" && pt != "SERVICE" && pt != "NONE" {
		return nil, spec.InvalidParam("Invalid propagateTags '%s'.", pt)
	}
	if len(in.Constraints) > 10 {
		return nil, spec.InvalidParam("placementConstraints can have at most 10 items.")
	}
	if len(in.Strategies) > 5 {
		return nil, spec.InvalidParam("placementStrategy can have at most 5 items.")
	}
	cl, err := a.cluster(ctx, in.Cluster)
	if err != nil {
		return nil, err
	}
	lt, providers, err := resolveCapacity(cl, in)
	if err != nil {
		return nil, err
	}
	if pv := spec.Val(in.PlatformVersion); pv != "" {
		if lt != spec.Fargate {
			return nil, spec.InvalidParam("Platform version can only be specified for tasks using the Fargate launch type.")
		}
		if pv != "LATEST" && pv != PlatformVersion && pv != "1.3.0" {
			return nil, spec.InvalidParam("The specified platform version does not exist. Berth runs platform version %s (LATEST).", PlatformVersion)
		}
	}
	td, _, err := a.loadTaskDef(ctx, spec.Val(in.TaskDefinition))
	if err != nil {
		var se *spec.Error
		if errors.As(err, &se) && se.Code == "ClientException" {
			return nil, spec.ClientErr("Unable to find task definition '%s'.", spec.Val(in.TaskDefinition))
		}
		return nil, err
	}
	def := &td.TaskDefinition
	if st := spec.Val(def.Status); st != "ACTIVE" && st != "INACTIVE" {
		return nil, spec.ClientErr("TaskDefinition is %s and cannot run new tasks.", st)
	}
	if !containsStr(def.Compatibilities, lt) {
		return nil, spec.InvalidParam("Task definition does not support launch_type %s.", lt)
	}
	network, subnetZones, err := prepareNetwork(def, in, lt)
	if err != nil {
		return nil, err
	}
	block, err := a.planBlockVolumes(ctx, spec.Val(cl.ClusterName), def, in)
	if err != nil {
		return nil, err
	}
	eff, err := applyOverrides(def, in.Overrides)
	if err != nil {
		return nil, err
	}
	group := spec.Val(in.Group)
	if group == "" {
		group = "family:" + spec.Val(def.Family)
	}
	req := &scheduler.Request{Count: in.Count, Group: group, RequiredAttributes: map[string]string{}, Fargate: lt == spec.Fargate}
	d := spec.TaskDemand(eff)
	req.CPU, req.Memory, req.Ports = d.CPU, d.Memory, d.Ports
	if lt == spec.EC2 {
		for _, at := range def.RequiresAttributes {
			req.RequiredAttributes[spec.Val(at.Name)] = spec.Val(at.Value)
		}
	}
	if req.Zones, err = a.efsZones(ctx, def); err != nil {
		return nil, err
	}
	if subnetZones != nil {
		req.Zones = append(req.Zones, *subnetZones)
	}
	var exprs []spec.PlacementConstraint
	for _, pc := range def.PlacementConstraints {
		exprs = append(exprs, spec.PlacementConstraint(pc))
	}
	exprs = append(exprs, in.Constraints...)
	for _, pc := range exprs {
		switch t := spec.Val(pc.Type); t {
		case "distinctInstance":
			if pc.Expression != nil {
				return nil, spec.InvalidParam("distinctInstance constraints take no expression.")
			}
			req.Constraints = append(req.Constraints, scheduler.Constraint{Type: t})
		case "memberOf":
			e, err := cql.Parse(spec.Val(pc.Expression))
			if err != nil {
				return nil, spec.InvalidParam("Invalid memberOf expression '%s': %v.", spec.Val(pc.Expression), err)
			}
			req.Constraints = append(req.Constraints, scheduler.Constraint{Type: t, Expr: e})
		default:
			return nil, spec.InvalidParam("Invalid placement constraint type '%s'. Valid values: distinctInstance, memberOf.", t)
		}
	}
	for _, ps := range in.Strategies {
		t, f := spec.Val(ps.Type), spec.Val(ps.Field)
		switch t {
		case "random":
			if f != "" {
				return nil, spec.InvalidParam("The random placement strategy takes no field.")
			}
		case "binpack":
			f = strings.ToLower(f)
			if f != "cpu" && f != "memory" {
				return nil, spec.InvalidParam("Invalid binpack field '%s'. Valid values: cpu, memory.", spec.Val(ps.Field))
			}
		case "spread":
			if f == "" {
				return nil, spec.InvalidParam("The spread placement strategy needs a field.")
			}
			if strings.EqualFold(f, "instanceId") || strings.EqualFold(f, "host") {
				f = "instanceId"
			} else if !strings.HasPrefix(f, "attribute:") || len(f) == len("attribute:") {
				return nil, spec.InvalidParam("Invalid spread field '%s'. Valid values: instanceId, host, attribute:NAME.", f)
			}
		default:
			return nil, spec.InvalidParam("Invalid placement strategy type '%s'. Valid values: random, spread, binpack.", t)
		}
		req.Strategies = append(req.Strategies, scheduler.Strategy{Type: t, Field: f})
	}
	for _, k := range spec.DataKeys(def, td.Tags) {
		req.Data = append(req.Data, scheduler.DataRequirement{Key: k.Key, Volume: k.Volume})
	}
	for _, b := range block {
		if b.Existing != nil {
			req.Data = append(req.Data, scheduler.DataRequirement{Key: "block-volume/" + b.Existing.VolumeID, Volume: b.Existing.VolumeID})
		}
	}
	tags := in.Tags
	if spec.Val(in.PropagateTags) == "TASK_DEFINITION" {
		tags = append(append([]spec.Tag(nil), td.Tags...), tags...)
	}
	return &launchSpec{cluster: cl, td: td, effective: eff, group: group, launchType: lt, startedBy: in.StartedBy,
		overrides: in.Overrides, tags: tags, request: req, block: block, network: network, providers: providers}, nil
}

// applyOverrides returns a copy of def with the cpu/memory overrides applied.
func applyOverrides(def *spec.TaskDefinition, o *spec.TaskOverride) (*spec.TaskDefinition, error) {
	cp := *def
	if o == nil {
		return &cp, nil
	}
	if err := spec.CheckOverridesSize(o); err != nil {
		return nil, err
	}
	if o.Cpu != nil {
		if _, err := spec.ParseCPU(*o.Cpu); err != nil {
			return nil, spec.InvalidParam("Invalid cpu override '%s'.", *o.Cpu)
		}
		cp.Cpu = o.Cpu
	}
	if o.Memory != nil {
		if _, err := spec.ParseMemory(*o.Memory); err != nil {
			return nil, spec.InvalidParam("Invalid memory override '%s'.", *o.Memory)
		}
		cp.Memory = o.Memory
	}
	for _, co := range o.ContainerOverrides {
		found := false
		for _, c := range def.ContainerDefinitions {
			found = found || spec.Val(c.Name) == spec.Val(co.Name)
		}
		if !found {
			return nil, spec.InvalidParam("Override for container named %s is not a container in the TaskDefinition.", spec.Val(co.Name))
		}
	}
	spec.ApplyContainerOverrides(&cp, o)
	return &cp, nil
}

// newTask builds the record of a task placed on inst.
func (a *API) newTask(ls *launchSpec, i int, inst *state.InstanceRecord, now time.Time) *state.TaskRecord {
	cluster := spec.Val(ls.cluster.ClusterName)
	id := newID()
	arn := a.taskARN(cluster, id)
	def := &ls.td.TaskDefinition
	d := spec.TaskDemand(ls.effective)
	t := &state.TaskRecord{Cluster: cluster, ID: id, InstanceID: inst.ID,
		Reserved: state.Reservation{CPU: d.CPU, Memory: d.Memory, Ports: d.Ports}}
	t.TaskArn = spec.Str(arn)
	t.ClusterArn = ls.cluster.ClusterArn
	t.TaskDefinitionArn = def.TaskDefinitionArn
	t.ContainerInstanceArn = inst.ContainerInstanceArn
	t.LastStatus = spec.Str("PROVISIONING")
	t.DesiredStatus = spec.Str("RUNNING")
	t.CreatedAt = spec.TS(now)
	t.Group = spec.Str(ls.group)
	t.LaunchType = spec.Str(ls.launchType)
	t.StartedBy = ls.startedBy
	t.Version = spec.I64(1)
	t.Cpu = spec.Str(strconv.Itoa(d.CPU))
	t.Memory = spec.Str(strconv.Itoa(d.Memory))
	t.Tags = ls.tags
	t.EphemeralStorage = def.EphemeralStorage
	t.Attributes = []spec.Attribute{{Name: spec.Str("ecs.cpu-architecture"), Value: spec.Str("x86_64")}}
	for _, at := range inst.Attributes {
		switch spec.Val(at.Name) {
		case "ecs.availability-zone":
			t.AvailabilityZone = at.Value
		case "ecs.cpu-architecture":
			t.Attributes[0].Value = at.Value
		}
	}
	t.Overrides = &spec.TaskOverride{ContainerOverrides: []spec.ContainerOverride{}, InferenceAcceleratorOverrides: []spec.InferenceAcceleratorOverride{}}
	if ls.overrides != nil {
		o := *ls.overrides
		if o.ContainerOverrides == nil {
			o.ContainerOverrides = []spec.ContainerOverride{}
		}
		if o.InferenceAcceleratorOverrides == nil {
			o.InferenceAcceleratorOverrides = []spec.InferenceAcceleratorOverride{}
		}
		t.Overrides = &o
	}
	for _, c := range ls.effective.ContainerDefinitions {
		ct := spec.Container{
			ContainerArn: spec.Str(a.arn("container/" + cluster + "/" + id + "/" + newID()[:8] + "-" + spec.Val(c.Name))),
			TaskArn:      spec.Str(arn), Name: c.Name, Image: c.Image, LastStatus: spec.Str("PENDING"),
			Cpu: spec.Str(strconv.Itoa(int(spec.Val(c.Cpu)))), NetworkBindings: []spec.NetworkBinding{},
			NetworkInterfaces: []spec.NetworkInterface{},
		}
		if c.Memory != nil {
			ct.Memory = spec.Str(strconv.Itoa(int(*c.Memory)))
		}
		if c.MemoryReservation != nil {
			ct.MemoryReservation = spec.Str(strconv.Itoa(int(*c.MemoryReservation)))
		}
		if c.HealthCheck != nil {
			ct.HealthStatus = spec.Str("UNKNOWN")
		}
		t.Containers = append(t.Containers, ct)
	}
	if c := ls.effective.ContainerDefinitions; len(c) > 0 && anyHealthCheck(c) {
		t.HealthStatus = spec.Str("UNKNOWN")
	}
	if ls.launchType == spec.Fargate {
		t.PlatformVersion = spec.Str(PlatformVersion)
		t.PlatformFamily = spec.Str("Linux")
		t.CapacityProviderName = spec.Str(ProviderFargate)
		if i < len(ls.providers) {
			t.CapacityProviderName = spec.Str(ls.providers[i])
		}
		if t.EphemeralStorage == nil {
			t.EphemeralStorage = &spec.EphemeralStorage{SizeInGiB: spec.I32(20)}
		}
	}
	if ls.network != nil {
		t.Attachments = append(t.Attachments, eniAttachment(ls.network.subnets[spec.Val(t.AvailabilityZone)]))
		t.Network = ls.network.config
	}
	return t
}

func anyHealthCheck(cs []spec.ContainerDefinition) bool {
	for _, c := range cs {
		if c.HealthCheck != nil {
			return true
		}
	}
	return false
}

func (a *API) failures(fs []scheduler.Failure) []spec.Failure {
	out := make([]spec.Failure, 0, len(fs))
	for _, f := range fs {
		sf := spec.Failure{Arn: spec.Str(f.InstanceARN), Reason: spec.Str(f.Reason)}
		if f.InstanceARN == "" {
			sf.Arn = nil
		}
		if f.Detail != "" {
			sf.Detail = spec.Str(f.Detail)
		}
		out = append(out, sf)
	}
	return out
}

func (a *API) taskView(t *state.TaskRecord, include []string) spec.Task {
	v := t.Task
	if !containsStr(include, "TAGS") {
		v.Tags = nil
	} else if v.Tags == nil {
		v.Tags = []spec.Tag{}
	}
	if v.Attachments == nil {
		v.Attachments = []spec.Attachment{}
	}
	if spec.Val(v.LaunchType) == spec.Fargate {
		v.ContainerInstanceArn = nil // Fargate tasks run on no instance of the user's
	}
	return v
}

// RunTask places count tasks with the scheduler and commits them atomically
// with their reservations.
func (a *API) RunTask(ctx context.Context, r *spec.RunTaskRequest) (*spec.RunTaskResponse, error) {
	count := int(spec.Val(r.Count))
	if r.Count == nil {
		count = 1
	}
	if count < 1 || count > 10 {
		return nil, spec.InvalidParam("count must be between 1 and 10.")
	}
	if tok := spec.Val(r.ClientToken); len(tok) > 64 || (r.ClientToken != nil && tok == "") {
		return nil, spec.InvalidParam("clientToken must be between 1 and 64 characters.")
	}
	if len(spec.Val(r.ReferenceId)) > 1024 {
		return nil, spec.InvalidParam("referenceId can be at most 1024 characters.")
	}
	if err := spec.ValidateNetworkConfiguration(r.NetworkConfiguration); err != nil {
		return nil, err
	}
	ls, err := a.prepare(ctx, &launch.Input{Cluster: r.Cluster, TaskDefinition: r.TaskDefinition, Group: r.Group,
		StartedBy: r.StartedBy, LaunchType: r.LaunchType, Overrides: r.Overrides, Tags: r.Tags, PropagateTags: r.PropagateTags,
		Constraints: r.PlacementConstraints, Strategies: r.PlacementStrategy, VolumeConfigurations: r.VolumeConfigurations, Count: count,
		Network: r.NetworkConfiguration, CapacityProviderStrategy: r.CapacityProviderStrategy, PlatformVersion: r.PlatformVersion})
	if err != nil {
		return nil, err
	}
	if err := fargatePlacement(ls, r.PlacementConstraints, r.PlacementStrategy); err != nil {
		return nil, err
	}
	cluster := spec.Val(ls.cluster.ClusterName)
	token := spec.Val(r.ClientToken)
	if token != "" {
		if out, ok, err := a.replay(ctx, cluster, token); err != nil || ok {
			return out, err
		}
	}
	if len(a.Cache.Instances(cluster)) == 0 {
		return nil, spec.InvalidParam("No Container Instances were found in your cluster.")
	}
	tasks, fails, err := a.place(ctx, ls, token)
	if err != nil {
		if token != "" {
			if out, ok, rerr := a.replay(ctx, cluster, token); rerr == nil && ok {
				return out, nil // a concurrent call with the same token won
			}
		}
		return nil, err
	}
	out := &spec.RunTaskResponse{Tasks: []spec.Task{}, Failures: a.failures(fails)}
	for _, t := range tasks {
		out.Tasks = append(out.Tasks, a.taskView(t, []string{"TAGS"}))
	}
	return out, nil
}

// replay returns the tasks of an earlier RunTask with the same clientToken.
func (a *API) replay(ctx context.Context, cluster, token string) (*spec.RunTaskResponse, bool, error) {
	var ids []string
	if _, err := a.Store.Get(ctx, state.TokenKey(cluster, token), &ids); isNotFound(err) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	out := &spec.RunTaskResponse{Tasks: []spec.Task{}, Failures: []spec.Failure{}}
	for _, id := range ids {
		t := &state.TaskRecord{}
		if _, err := a.Store.Get(ctx, state.TaskKey(cluster, id), t); isNotFound(err) {
			continue // stopped long ago and forgotten
		} else if err != nil {
			return nil, false, err
		}
		out.Tasks = append(out.Tasks, a.taskView(t, []string{"TAGS"}))
	}
	return out, true, nil
}

// StartTask places one task on each named container instance.
func (a *API) StartTask(ctx context.Context, r *spec.StartTaskRequest) (*spec.StartTaskResponse, error) {
	if len(r.ContainerInstances) == 0 || len(r.ContainerInstances) > 10 {
		return nil, spec.InvalidParam("containerInstances must have between 1 and 10 items.")
	}
	ls, err := a.prepare(ctx, &launch.Input{Cluster: r.Cluster, TaskDefinition: r.TaskDefinition, Group: r.Group,
		StartedBy: r.StartedBy, Overrides: r.Overrides, Tags: r.Tags, PropagateTags: r.PropagateTags,
		VolumeConfigurations: r.VolumeConfigurations, Count: len(r.ContainerInstances), Network: r.NetworkConfiguration})
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(ls.cluster.ClusterName)
	for _, ref := range r.ContainerInstances {
		id, err := a.instanceID(cluster, ref)
		if err != nil {
			return nil, err
		}
		ls.request.Candidates = append(ls.request.Candidates, id)
	}
	tasks, fails, err := a.place(ctx, ls, "")
	if err != nil {
		return nil, err
	}
	out := &spec.StartTaskResponse{Tasks: []spec.Task{}, Failures: a.failures(fails)}
	for i := range out.Failures {
		if out.Failures[i].Arn == nil || spec.Val(out.Failures[i].Reason) == scheduler.ReasonMissing {
			for _, f := range fails {
				if f.Reason == scheduler.ReasonMissing {
					out.Failures[i].Arn = spec.Str(a.instanceARN(cluster, f.InstanceID))
				}
			}
		}
	}
	for _, t := range tasks {
		out.Tasks = append(out.Tasks, a.taskView(t, []string{"TAGS"}))
	}
	return out, nil
}

// StopTask asks the task's agent to stop it. A task whose agent is not
// connected has no one to stop it, so it is stopped at once.
func (a *API) StopTask(ctx context.Context, r *spec.StopTaskRequest) (*spec.StopTaskResponse, error) {
	if spec.Val(r.Task) == "" {
		return nil, spec.InvalidParam("task is required.")
	}
	if len(spec.Val(r.Reason)) > 255 {
		return nil, spec.InvalidParam("reason can be at most 255 characters.")
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	id, err := a.taskID(cluster, spec.Val(r.Task))
	if err != nil {
		return nil, err
	}
	reason := spec.Val(r.Reason)
	if reason == "" {
		reason = "Task stopped by user"
	}
	now := a.Now()
	t, err := a.Applier.Transition(ctx, cluster, id, func(t *state.TaskRecord) (bool, error) {
		if spec.Val(t.LastStatus) == "STOPPED" {
			return false, nil
		}
		launch.MarkStopping(t, now, "UserInitiated", reason)
		if !a.Cache.Connected(cluster, t.InstanceID) {
			launch.MarkStopped(t, now)
		}
		return true, nil
	})
	if isNotFound(err) {
		return nil, spec.InvalidParam("The referenced task was not found.")
	} else if err != nil {
		return nil, err
	}
	v := a.taskView(t, []string{"TAGS"})
	return &spec.StopTaskResponse{Task: &v}, nil
}

// DescribeTasks describes tasks; unknown ones are MISSING.
func (a *API) DescribeTasks(ctx context.Context, r *spec.DescribeTasksRequest) (*spec.DescribeTasksResponse, error) {
	if len(r.Tasks) == 0 || len(r.Tasks) > 100 {
		return nil, spec.InvalidParam("tasks must have between 1 and 100 items.")
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	out := &spec.DescribeTasksResponse{Tasks: []spec.Task{}, Failures: []spec.Failure{}}
	for _, ref := range r.Tasks {
		id, err := a.taskID(cluster, ref)
		if err != nil {
			return nil, err
		}
		t := &state.TaskRecord{}
		if _, err := a.Store.Get(ctx, state.TaskKey(cluster, id), t); isNotFound(err) {
			out.Failures = append(out.Failures, spec.Failure{Arn: spec.Str(a.taskARN(cluster, id)), Reason: spec.Str("MISSING")})
			continue
		} else if err != nil {
			return nil, err
		}
		out.Tasks = append(out.Tasks, a.taskView(t, r.Include))
	}
	return out, nil
}

// ListTasks lists task ARNs with ECS's filters.
func (a *API) ListTasks(ctx context.Context, r *spec.ListTasksRequest) (*spec.ListTasksResponse, error) {
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	desired := spec.Val(r.DesiredStatus)
	if desired == "" {
		desired = "RUNNING"
	}
	if desired != "RUNNING" && desired != "PENDING" && desired != "STOPPED" {
		return nil, spec.InvalidParam("Invalid desiredStatus '%s'. Valid values: RUNNING, PENDING, STOPPED.", desired)
	}
	if r.ServiceName != nil && r.StartedBy != nil {
		return nil, spec.InvalidParam("serviceName and startedBy cannot both be given.")
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	instanceID := ""
	if ref := spec.Val(r.ContainerInstance); ref != "" {
		if instanceID, err = a.instanceID(cluster, ref); err != nil {
			return nil, err
		}
	}
	arns, next, err := listPage(ctx, a.Store, state.TaskPrefix(cluster), r.NextToken, limit, func(t *state.TaskRecord) (string, bool) {
		ds := spec.Val(t.DesiredStatus)
		if desired == "PENDING" {
			if ds != "RUNNING" || spec.Val(t.LastStatus) == "RUNNING" || spec.Val(t.LastStatus) == "STOPPED" {
				return "", false
			}
		} else if ds != desired {
			return "", false
		}
		if instanceID != "" && t.InstanceID != instanceID {
			return "", false
		}
		if f := spec.Val(r.Family); f != "" && !strings.Contains(spec.Val(t.TaskDefinitionArn), ":task-definition/"+f+":") {
			return "", false
		}
		if sb := spec.Val(r.StartedBy); sb != "" && spec.Val(t.StartedBy) != sb {
			return "", false
		}
		if sn := spec.Val(r.ServiceName); sn != "" && spec.Val(t.Group) != "service:"+sn {
			return "", false
		}
		if lt := spec.Val(r.LaunchType); lt != "" && spec.Val(t.LaunchType) != lt {
			return "", false
		}
		return spec.Val(t.TaskArn), true
	})
	return &spec.ListTasksResponse{TaskArns: arns, NextToken: next}, err
}

var taskStatusOrder = map[string]int{"PROVISIONING": 0, "PENDING": 1, "ACTIVATING": 2, "RUNNING": 3, "DEACTIVATING": 4, "STOPPING": 5, "DEPROVISIONING": 6, "STOPPED": 7}

// SubmitTaskStateChange is how agents report task progress. Status only
// moves forward; STOPPED releases the task's reservation in the same
// transaction.
func (a *API) SubmitTaskStateChange(ctx context.Context, r *agentapi.TaskStateChange) (*spec.SubmitTaskStateChangeResponse, error) {
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	id, err := a.taskID(cluster, spec.Val(r.Task))
	if err != nil {
		return nil, err
	}
	status := spec.Val(r.Status)
	if _, ok := taskStatusOrder[status]; status != "" && !ok {
		return nil, spec.InvalidParam("Invalid task status '%s'.", status)
	}
	now := a.Now()
	_, err = a.Applier.Transition(ctx, cluster, id, func(t *state.TaskRecord) (bool, error) {
		if err := agentauth.MayAct(ctx, a.Store, cluster, t.InstanceID); err != nil {
			return false, err
		}
		changed := false
		if status != "" && taskStatusOrder[status] > taskStatusOrder[spec.Val(t.LastStatus)] {
			t.LastStatus = spec.Str(status)
			changed = true
			switch status {
			case "PENDING", "ACTIVATING":
			case "RUNNING":
				t.StartedAt = spec.TS(now)
				t.Connectivity = spec.Str("CONNECTED")
				t.ConnectivityAt = spec.TS(now)
			case "STOPPED":
				if spec.Val(t.DesiredStatus) != "STOPPED" {
					code := spec.Val(r.StopCode)
					if code == "" {
						code = "EssentialContainerExited"
					}
					launch.MarkStopping(t, now, code, spec.Val(r.Reason))
				}
				launch.MarkStopped(t, now)
			}
			if r.Reason != nil && t.StoppedReason == nil {
				t.StoppedReason = r.Reason
			}
		}
		if r.PullStartedAt != nil {
			t.PullStartedAt, changed = r.PullStartedAt, true
		}
		if r.PullStoppedAt != nil {
			t.PullStoppedAt, changed = r.PullStoppedAt, true
			t.PullProgress = ""
		}
		if p := r.PullProgress; p != nil && t.PullStoppedAt == nil && *p != t.PullProgress && len(*p) <= 256 {
			t.PullProgress, changed = *p, true
		}
		if r.ExecutionStoppedAt != nil {
			t.ExecutionStoppedAt, changed = r.ExecutionStoppedAt, true
		}
		if r.Health != nil && spec.Val(t.HealthStatus) != *r.Health {
			t.HealthStatus, changed = r.Health, true
		}
		if r.Network != nil {
			ok, err := attachNetwork(t, r.Network)
			if err != nil {
				return false, err
			}
			changed = changed || ok
		}
		for _, cs := range r.Containers {
			for i := range t.Containers {
				c := &t.Containers[i]
				if spec.Val(c.Name) != spec.Val(cs.ContainerName) {
					continue
				}
				if cs.Status != nil {
					c.LastStatus = cs.Status
				}
				if cs.ExitCode != nil {
					c.ExitCode = cs.ExitCode
				}
				if cs.Reason != nil {
					c.Reason = cs.Reason
				}
				if cs.RuntimeId != nil {
					c.RuntimeId = cs.RuntimeId
				}
				if cs.ImageDigest != nil {
					c.ImageDigest = cs.ImageDigest
				}
				if cs.NetworkBindings != nil {
					c.NetworkBindings = cs.NetworkBindings
				}
				if h, ok := r.ContainerHealth[spec.Val(c.Name)]; ok {
					c.HealthStatus = spec.Str(h)
				}
				changed = true
			}
		}
		if changed {
			t.Version = spec.I64(spec.Val(t.Version) + 1)
		}
		return changed, nil
	})
	if isNotFound(err) {
		return nil, spec.InvalidParam("The referenced task was not found.")
	} else if err != nil {
		return nil, fmt.Errorf("task state change: %w", err)
	}
	return &spec.SubmitTaskStateChangeResponse{Acknowledgment: spec.Str("ACK")}, nil
}
