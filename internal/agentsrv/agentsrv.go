// Package agentsrv is the server side of the agent protocol (package
// agentapi): an instance's desired state, long-polled; the data its
// instance holds; and the grants of its tasks' EFS mounts. Every call
// acts only for the caller's own instance (Resolver.ResolveInstance
// checks agentauth.Owns).
package agentsrv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/vpc"
)

// Resolver resolves what an agent names as the ECS API does (names,
// ids or ARNs); ecs.API is one.
type Resolver interface {
	// ResolveInstance resolves a cluster and one of its instances and
	// checks that the caller may act for it.
	ResolveInstance(ctx context.Context, clusterRef, ref string) (cluster, id string, err error)
	ResolveTask(cluster, ref string) (string, error)
	TaskDefinition(ctx context.Context, ref string) (*state.TaskDefRecord, error)
}

// API serves the agent endpoints.
type API struct {
	Store    *state.Store
	Resolver Resolver
	Secrets  SecretResolver
}

// AgentTasks is Berth's agent endpoint: the desired state of one instance,
// long-polled.
func (a *API) AgentTasks(ctx context.Context, r *agentapi.TasksRequest) (*agentapi.TasksResponse, error) {
	cluster, id, err := a.Resolver.ResolveInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	resp, changed, err := a.instanceTasks(ctx, cluster, id, r.AfterRevision)
	if err != nil {
		return nil, err
	}
	if r.AfterRevision > 0 && !changed {
		// Watch from the revision just read: a watch that starts at the
		// current revision is delivered at once, where one that starts in
		// the past waits for etcd's catch-up loop.
		wait := time.Duration(min(max(r.WaitSeconds, 0), 60)) * time.Second
		wctx, cancel := context.WithTimeout(ctx, wait)
		ch := a.Store.Client.Watch(clientv3.WithRequireLeader(wctx), state.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	wait:
		for wr := range ch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if concernsInstance(cluster, id, string(ev.Kv.Key), ev.Kv.Value) {
					break wait
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if resp, _, err = a.instanceTasks(ctx, cluster, id, 0); err != nil {
			return nil, err
		}
	}
	out := &agentapi.TasksResponse{Tasks: []agentapi.Task{}}
	defs := map[string]*spec.TaskDefinition{}
	out.Revision = resp.Header.Revision
	vols := map[string]agentapi.Volume{}
	latest := map[string]agentapi.Snapshot{}
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		switch {
		case strings.HasPrefix(key, state.VolumePrefix(cluster)):
			v := agentapi.Volume{}
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				return nil, fmt.Errorf("decode %s: %w", key, err)
			}
			if v.InstanceID == id {
				vols[v.VolumeID] = v
				if (v.State == "creating" && v.Attachment == nil) || v.State == "deleting" {
					out.Volumes = append(out.Volumes, v)
				}
			}
		case strings.HasPrefix(key, state.SnapshotPrefix(cluster)):
			sn := agentapi.Snapshot{}
			if err := json.Unmarshal(kv.Value, &sn); err != nil {
				return nil, fmt.Errorf("decode %s: %w", key, err)
			}
			if sn.InstanceID == id && sn.State == "pending" {
				out.Snapshots = append(out.Snapshots, sn)
			}
			if l, ok := latest[sn.VolumeID]; sn.State == "completed" && sn.Manifest != "" && (!ok || sn.CreatedAt.After(l.CreatedAt.Time)) {
				latest[sn.VolumeID] = sn
			}
		}
	}
	// A new snapshot need not send again what the volume's latest completed
	// one holds: chunks are not collected while a snapshot is pending.
	for i := range out.Snapshots {
		out.Snapshots[i].PreviousManifest = latest[out.Snapshots[i].VolumeID].Manifest
	}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), state.TaskPrefix(cluster)) {
			continue
		}
		t := &state.TaskRecord{}
		if err := json.Unmarshal(kv.Value, t); err != nil {
			return nil, err
		}
		if t.InstanceID != id || spec.Val(t.LastStatus) == "STOPPED" {
			continue
		}
		arn := spec.Val(t.TaskDefinitionArn)
		td, ok := defs[arn]
		if !ok {
			rec, err := a.Resolver.TaskDefinition(ctx, arn)
			if err != nil {
				return nil, err
			}
			td = &rec.TaskDefinition
			defs[arn] = td
		}
		at := agentapi.Task{Task: t.Task, TaskDefinition: *td, BlockVolumes: t.BlockVolumes}
		for _, bv := range t.BlockVolumes {
			if v, ok := vols[bv.VolumeID]; ok {
				at.Volumes = append(at.Volumes, v)
			}
		}
		out.Tasks = append(out.Tasks, at)
	}
	return out, nil
}

// instanceTasks reads the cluster's tasks, volumes and snapshots at one
// revision and reports whether any of the instance's changed after rev.
func (a *API) instanceTasks(ctx context.Context, cluster, id string, rev int64) (*clientv3.GetResponse, bool, error) {
	resp, err := a.Store.Client.Get(ctx, state.TaskPrefix(cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, false, err
	}
	for _, p := range []string{state.VolumePrefix(cluster), state.SnapshotPrefix(cluster)} {
		more, err := a.Store.Client.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
		if err != nil {
			return nil, false, err
		}
		resp.Kvs = append(resp.Kvs, more.Kvs...)
	}
	changed := false
	for _, kv := range resp.Kvs {
		if kv.ModRevision > rev && concernsInstance(cluster, id, string(kv.Key), kv.Value) {
			changed = true
			break
		}
	}
	return resp, changed, nil
}

// concernsInstance reports whether a key's change matters to an instance's agent.
func concernsInstance(cluster, id, key string, val []byte) bool {
	var rec struct {
		Task     string `json:"berthInstanceId"`
		Volume   string `json:"containerInstanceId"`
		Attached *struct {
			InstanceID string `json:"instanceId"`
		} `json:"attachment"`
	}
	switch {
	case strings.HasPrefix(key, state.TaskPrefix(cluster)):
		return val == nil || (json.Unmarshal(val, &rec) == nil && rec.Task == id)
	case strings.HasPrefix(key, state.VolumePrefix(cluster)), strings.HasPrefix(key, state.SnapshotPrefix(cluster)):
		return val == nil || (json.Unmarshal(val, &rec) == nil && rec.Volume == id)
	}
	return false
}

// ReportResidency records that this instance holds the data keys not yet
// claimed by another; a key claimed elsewhere is left as it is and its
// holder returned, so the agent can tell.
func (a *API) ReportResidency(ctx context.Context, r *agentapi.ResidencyRequest) (*agentapi.ResidencyResponse, error) {
	cluster, id, err := a.Resolver.ResolveInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	out := &agentapi.ResidencyResponse{Holders: map[string]string{}}
	for _, k := range r.Keys {
		key := state.ResidencyKey(cluster, k)
		resp, err := a.Store.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, id)).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			out.Holders[k] = id
		} else if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			out.Holders[k] = string(kvs[0].Value)
		}
	}
	return out, nil
}

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

// TaskOnInstance finds a task the calling agent's instance runs (not
// stopped), with its definition: what an agent may ask about one of its
// tasks' volumes and secrets.
func (a *API) TaskOnInstance(ctx context.Context, clusterRef, instRef, taskRef string) (cluster, inst string, t *state.TaskRecord, td *state.TaskDefRecord, err error) {
	cluster, inst, err = a.Resolver.ResolveInstance(ctx, clusterRef, instRef)
	if err != nil {
		return
	}
	tid, err := a.Resolver.ResolveTask(cluster, taskRef)
	if err != nil {
		return
	}
	t = &state.TaskRecord{}
	if _, err = a.Store.Get(ctx, state.TaskKey(cluster, tid), t); errors.Is(err, state.ErrNotFound) {
		err = spec.InvalidParam("Task %s does not exist.", taskRef)
		return
	} else if err != nil {
		return
	}
	if t.InstanceID != inst || spec.Val(t.LastStatus) == "STOPPED" {
		err = &spec.Error{Code: "AccessDeniedException", Message: "Task " + taskRef + " does not run on this container instance."}
		return
	}
	td, err = a.Resolver.TaskDefinition(ctx, spec.Val(t.TaskDefinitionArn))
	return
}

// SecretResolver reads secrets' values (secrets.API).
type SecretResolver interface {
	Resolve(ctx context.Context, valueFrom string) (string, error)
	Credentials(ctx context.Context, valueFrom string) (user, password string, err error)
}

// TaskSecrets resolves the container secrets and registry credentials
// of a task the caller's instance runs, at the moment it starts them.
func (a *API) TaskSecrets(ctx context.Context, r *agentapi.TaskSecretsRequest) (*agentapi.TaskSecretsResponse, error) {
	_, _, _, td, err := a.TaskOnInstance(ctx, r.Cluster, r.ContainerInstance, r.Task)
	if err != nil {
		return nil, err
	}
	out := &agentapi.TaskSecretsResponse{Containers: map[string]agentapi.ContainerSecrets{}}
	// resolve reads secrets into a map by name: the environment's, or the
	// log driver's options.
	resolve := func(container, what string, secrets []spec.Secret) (map[string]string, error) {
		if len(secrets) == 0 {
			return nil, nil
		}
		if a.Secrets == nil {
			return nil, &spec.Error{Code: "ClientException", Message: "This server has no secrets key."}
		}
		m := map[string]string{}
		for _, sec := range secrets {
			v, err := a.Secrets.Resolve(ctx, spec.Val(sec.ValueFrom))
			if err != nil {
				return nil, &spec.Error{Code: "ClientException", Message: fmt.Sprintf("container %s: %s %s: %v", container, what, spec.Val(sec.Name), err)}
			}
			m[spec.Val(sec.Name)] = v
		}
		return m, nil
	}
	for _, c := range td.TaskDefinition.ContainerDefinitions {
		var cs agentapi.ContainerSecrets
		if cs.Env, err = resolve(spec.Val(c.Name), "secret", c.Secrets); err != nil {
			return nil, err
		}
		if lc := c.LogConfiguration; lc != nil {
			if cs.LogOptions, err = resolve(spec.Val(c.Name), "log option", lc.SecretOptions); err != nil {
				return nil, err
			}
		}
		if rc := c.RepositoryCredentials; rc != nil {
			if a.Secrets == nil {
				return nil, &spec.Error{Code: "ClientException", Message: "This server has no secrets key."}
			}
			u, p, err := a.Secrets.Credentials(ctx, spec.Val(rc.CredentialsParameter))
			if err != nil {
				return nil, &spec.Error{Code: "ClientException", Message: fmt.Sprintf("container %s: repositoryCredentials: %v", spec.Val(c.Name), err)}
			}
			cs.RegistryUser, cs.RegistryPass = u, p
		}
		if cs.Env != nil || cs.LogOptions != nil || cs.RegistryUser != "" {
			out.Containers[spec.Val(c.Name)] = cs
		}
	}
	return out, nil
}

// EFSMount checks that the task runs on the asking instance and uses the
// volume, so an instance can mount only file systems its tasks need.
func (a *API) EFSMount(ctx context.Context, r *agentapi.EFSMountRequest) (*EFSMountGrant, error) {
	cluster, inst, t, td, err := a.TaskOnInstance(ctx, r.Cluster, r.ContainerInstance, r.Task)
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
	if g.Zone, err = a.InstanceZone(ctx, cluster, inst); err != nil {
		return nil, err
	}
	return g, nil
}

// InstanceZone is a container instance's zone.
func (a *API) InstanceZone(ctx context.Context, cluster, inst string) (string, error) {
	ir := &state.InstanceRecord{}
	if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, inst), ir); err != nil {
		return "", err
	}
	for _, at := range ir.Attributes {
		if spec.Val(at.Name) == "ecs.availability-zone" {
			return spec.Val(at.Value), nil
		}
	}
	return "", nil
}

// Network gives the instance its block of task addresses in its zone's
// subnet (allocated the first time), for its awsvpc tasks.
func (a *API) Network(ctx context.Context, r *agentapi.NetworkRequest) (*agentapi.NetworkBlock, error) {
	cluster, id, err := a.Resolver.ResolveInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	inst := &state.InstanceRecord{}
	if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, id), inst); err != nil {
		return nil, err
	}
	zone := ""
	for _, at := range inst.Attributes {
		if spec.Val(at.Name) == "ecs.availability-zone" {
			zone = spec.Val(at.Value)
		}
	}
	if _, ok := vpc.ZoneOfSubnet(vpc.SubnetID(zone)); !ok {
		return nil, spec.InvalidParam("Zone '%s' of container instance %s cannot have a subnet: zones for awsvpc tasks are 1 to 60 lower-case letters, digits and hyphens.", zone, id)
	}
	host := ""
	if ip, err := netip.ParseAddr(r.HostAddress); err == nil && ip.Is4() {
		host = ip.String()
	}
	b, err := vpc.EnsureBlock(ctx, a.Store.Client, cluster, id, zone, host)
	if errors.Is(err, vpc.ErrFull) {
		return nil, &spec.Error{Code: "ServerException", Message: err.Error()}
	} else if err != nil {
		return nil, err
	}
	b.VPCCIDR = vpc.CIDR
	return &b, nil
}

// Routes lists the blocks of the instance's cluster: its agent routes
// the others' to their hosts.
func (a *API) Routes(ctx context.Context, r *agentapi.NetworkRequest) (*agentapi.RoutesResponse, error) {
	cluster, _, err := a.Resolver.ResolveInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	blocks, err := vpc.ClusterBlocks(ctx, a.Store.Client, cluster)
	if err != nil {
		return nil, err
	}
	return &agentapi.RoutesResponse{Blocks: blocks}, nil
}
