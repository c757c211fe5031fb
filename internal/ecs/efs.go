package ecs

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/service"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// EFSMountGrant is what the control plane knows of such a mount: the
// volume's configuration, the instance's zone and the task's role.
type EFSMountGrant struct {
	Cluster     string
	TaskArn     string
	InstanceID  string
	Zone        string
	Config      spec.EFSVolumeConfiguration
	TaskRoleArn string
	// SlotDir is set for a task of a stateful service: the slot's own
	// subdirectory (SERVICE-N) of the volume's root, its stable data.
	SlotDir string
}

// EFSMount checks that the task runs on the asking instance and uses the
// volume, so an instance can mount only file systems its tasks need.
func (a *API) EFSMount(ctx context.Context, r *agentapi.EFSMountRequest) (*EFSMountGrant, error) {
	cluster, inst, err := a.clusterInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	tid, err := a.taskID(cluster, r.Task)
	if err != nil {
		return nil, err
	}
	t := &state.TaskRecord{}
	if _, err := a.Store.Get(ctx, state.TaskKey(cluster, tid), t); errors.Is(err, state.ErrNotFound) {
		return nil, spec.InvalidParam("Task %s does not exist.", r.Task)
	} else if err != nil {
		return nil, err
	}
	if t.InstanceID != inst || spec.Val(t.LastStatus) == "STOPPED" {
		return nil, &spec.Error{Code: "AccessDeniedException", Message: "Task " + r.Task + " does not run on this container instance."}
	}
	td, _, err := a.loadTaskDef(ctx, spec.Val(t.TaskDefinitionArn))
	if err != nil {
		return nil, err
	}
	g := &EFSMountGrant{Cluster: cluster, TaskArn: spec.Val(t.TaskArn), InstanceID: inst, TaskRoleArn: spec.Val(td.TaskDefinition.TaskRoleArn)}
	if o := t.Overrides; o != nil && spec.Val(o.TaskRoleArn) != "" {
		g.TaskRoleArn = spec.Val(o.TaskRoleArn)
	}
	slot, isSlot := service.TagValue(t.Tags, service.SlotTag)
	if svc, ok := strings.CutPrefix(spec.Val(t.Group), "service:"); ok && isSlot {
		g.SlotDir = svc + "-" + slot // as BERTH_SERVICE_SLOT names the slot
	}
	found := false
	for _, v := range td.TaskDefinition.Volumes {
		if spec.Val(v.Name) == r.Volume && v.EfsVolumeConfiguration != nil {
			g.Config, found = *v.EfsVolumeConfiguration, true
		}
	}
	if !found {
		return nil, &spec.Error{Code: "AccessDeniedException", Message: "Task " + r.Task + " has no EFS volume '" + r.Volume + "'."}
	}
	ir := &state.InstanceRecord{}
	if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, inst), ir); err != nil {
		return nil, err
	}
	for _, at := range ir.Attributes {
		if spec.Val(at.Name) == "ecs.availability-zone" {
			g.Zone = spec.Val(at.Value)
		}
	}
	return g, nil
}

// efsZones lists, for each EFS volume of a task definition, the zones in
// which its file system has a mount target: only there can it be mounted.
func (a *API) efsZones(ctx context.Context, def *spec.TaskDefinition) ([]scheduler.ZoneRequirement, error) {
	var out []scheduler.ZoneRequirement
	for _, v := range def.Volumes {
		e := v.EfsVolumeConfiguration
		if e == nil {
			continue
		}
		fs := spec.Val(e.FileSystemId)
		zones, err := efs.MountTargetZones(ctx, a.Store.Client, fs)
		if err != nil {
			return nil, err
		}
		out = append(out, scheduler.ZoneRequirement{Volume: spec.Val(v.Name), FileSystem: fs, Zones: zones})
	}
	return out, nil
}

type agentKeyCtx struct{}

// WithAgentKey marks a request as made with an agent's access key.
func WithAgentKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, agentKeyCtx{}, key)
}

// AgentKeyOf is the agent access key a request was made with ("" for an
// operator's key or an unauthenticated loopback server).
func AgentKeyOf(ctx context.Context) string {
	k, _ := ctx.Value(agentKeyCtx{}).(string)
	return k
}
