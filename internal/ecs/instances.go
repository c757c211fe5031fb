package ecs

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentauth"
	"github.com/berth-project/berth/internal/cql"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/vpc"
)

// ReservedPorts are the host ports ECS reserves on every instance.
var ReservedPorts = []string{"22/tcp", "2375/tcp", "2376/tcp", "51678/tcp", "51679/tcp"}

// AgentVersion is reported for instances registered without versionInfo.
const AgentVersion = "1.0.0"

type identityDoc struct {
	InstanceID       string `json:"instanceId"`
	InstanceType     string `json:"instanceType"`
	AvailabilityZone string `json:"availabilityZone"`
	Region           string `json:"region"`
}

func resourceInt(rs []spec.Resource, name string) (int, bool) {
	for _, r := range rs {
		if spec.Val(r.Name) != name {
			continue
		}
		switch {
		case r.IntegerValue != nil:
			return int(*r.IntegerValue), true
		case r.LongValue != nil:
			return int(*r.LongValue), true
		case r.DoubleValue != nil:
			return int(*r.DoubleValue), true
		}
	}
	return 0, false
}

// RegisterContainerInstance adds an instance (or re-registers one by ARN)
// and connects its agent with a lease.
func (a *API) RegisterContainerInstance(ctx context.Context, r *spec.RegisterContainerInstanceRequest) (*spec.RegisterContainerInstanceResponse, error) {
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	cpu, okC := resourceInt(r.TotalResources, "CPU")
	mem, okM := resourceInt(r.TotalResources, "MEMORY")
	if !okC || !okM || cpu < 0 || mem < 0 {
		return nil, spec.InvalidParam("totalResources must include non-negative CPU and MEMORY values.")
	}
	if len(r.Attributes) > spec.MaxInstanceAttributes {
		return nil, spec.InvalidParam("attributes must have at most %d items.", spec.MaxInstanceAttributes)
	}
	if err := validateAttributes(r.Attributes, false); err != nil {
		return nil, err
	}
	if err := spec.ValidateTags(r.Tags); err != nil {
		return nil, err
	}
	for _, res := range r.TotalResources {
		if n := len(res.StringSetValue); n > spec.MaxReservedPorts {
			return nil, spec.InvalidParam("The %s resource lists %d values; at most %d ports can be reserved.", spec.Val(res.Name), n, spec.MaxReservedPorts)
		}
	}
	if v := r.VersionInfo; v != nil && (len(spec.Val(v.AgentVersion)) > 256 || len(spec.Val(v.AgentHash)) > 256 || len(spec.Val(v.DockerVersion)) > 256) {
		return nil, spec.InvalidParam("versionInfo values must be at most 256 characters.")
	}
	if len(spec.Val(r.InstanceIdentityDocument)) > 16<<10 {
		return nil, spec.InvalidParam("instanceIdentityDocument must be at most 16384 characters.")
	}
	var doc identityDoc
	if d := spec.Val(r.InstanceIdentityDocument); d != "" {
		if err := json.Unmarshal([]byte(d), &doc); err != nil {
			return nil, spec.InvalidParam("instanceIdentityDocument is not valid JSON.")
		}
	}
	id := newID()
	if ref := spec.Val(r.ContainerInstanceArn); ref != "" {
		if id, err = a.instanceID(cluster, ref); err != nil {
			return nil, err
		}
	}
	if doc.InstanceID == "" {
		doc.InstanceID = "i-" + id[:17]
	}
	now := a.Now()
	attrs := map[string]string{
		"ecs.os-type":          "linux",
		"ecs.cpu-architecture": map[string]string{"amd64": "x86_64", "arm64": "arm64"}[runtime.GOARCH],
		"ecs.instance-type":    "berth.local",
	}
	if doc.AvailabilityZone != "" {
		attrs["ecs.availability-zone"] = doc.AvailabilityZone
	}
	if doc.InstanceType != "" {
		attrs["ecs.instance-type"] = doc.InstanceType
	}
	for _, at := range r.Attributes {
		attrs[spec.Val(at.Name)] = spec.Val(at.Value)
	}
	ports := append([]string(nil), ReservedPorts...)
	var tcp, udp []string
	for _, res := range r.TotalResources {
		switch spec.Val(res.Name) {
		case "PORTS":
			tcp = res.StringSetValue
		case "PORTS_UDP":
			udp = res.StringSetValue
		}
	}
	for _, p := range tcp {
		ports = append(ports, p+"/tcp")
	}
	for _, p := range udp {
		ports = append(ports, p+"/udp")
	}
	rec := &state.InstanceRecord{Cluster: cluster, ID: id, CPU: cpu, Memory: mem, UsedPorts: dedupeSorted(ports), AgentKey: agentauth.KeyOf(ctx)}
	rec.ContainerInstanceArn = spec.Str(a.instanceARN(cluster, id))
	rec.Ec2InstanceId = spec.Str(doc.InstanceID)
	rec.Status = spec.Str("ACTIVE")
	rec.Version = spec.I64(1)
	rec.RegisteredAt = spec.TS(now)
	rec.RunningTasksCount, rec.PendingTasksCount = spec.I32(0), spec.I32(0)
	rec.VersionInfo = r.VersionInfo
	if rec.VersionInfo == nil {
		rec.VersionInfo = &spec.VersionInfo{AgentVersion: spec.Str(AgentVersion), AgentHash: spec.Str("berth"), DockerVersion: spec.Str("DockerVersion: unknown")}
	}
	rec.Tags = r.Tags
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		at := spec.Attribute{Name: spec.Str(n)}
		if v := attrs[n]; v != "" {
			at.Value = spec.Str(v)
		}
		rec.Attributes = append(rec.Attributes, at)
	}
	placement.SyncResources(rec)
	rec.RegisteredResources = append([]spec.Resource(nil), rec.RemainingResources...)
	rec.RegisteredResources[0].IntegerValue = spec.I32(int32(cpu))
	rec.RegisteredResources[1].IntegerValue = spec.I32(int32(mem))

	// Credentials an agent received by joining register one instance; a
	// new one only once that one is gone (deregistered).
	bound, boundRev, err := agentauth.JoinedKey(ctx, a.Store)
	if err != nil {
		return nil, err
	}
	var boundGone []clientv3.Cmp
	if bound != nil && bound.Instance != "" && (bound.Cluster != cluster || bound.Instance != id) {
		old := state.InstanceKey(bound.Cluster, bound.Instance)
		if live, err := a.Store.Exists(ctx, old); err != nil {
			return nil, err
		} else if live {
			return nil, &spec.Error{Code: "AccessDeniedException", Message: "These agent credentials are bound to container instance " + bound.Instance + "; re-register it with its ARN."}
		}
		boundGone = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(old), "=", 0)}
		bound.Instance = ""
	}
	key := state.InstanceKey(cluster, id)
	var guard clientv3.Cmp
	if r.ContainerInstanceArn != nil {
		// Re-registration keeps the instance's reservations and counters.
		old := &state.InstanceRecord{}
		orev, err := a.Store.Get(ctx, key, old)
		if isNotFound(err) {
			return nil, spec.InvalidParam("Container instance '%s' is not registered in cluster '%s'.", id, cluster)
		} else if err != nil {
			return nil, err
		}
		if k := agentauth.KeyOf(ctx); k != "" && k != old.AgentKey {
			return nil, agentauth.ErrNotOwner(id)
		}
		rec.AgentKey = old.AgentKey
		usedCPU := registeredInt(old, "CPU") - old.CPU
		usedMem := registeredInt(old, "MEMORY") - old.Memory
		rec.CPU, rec.Memory = cpu-usedCPU, mem-usedMem
		rec.UsedPorts = dedupeSorted(append(rec.UsedPorts, old.UsedPorts...))
		rec.Groups, rec.RunningTasksCount, rec.PendingTasksCount = old.Groups, old.RunningTasksCount, old.PendingTasksCount
		rec.RegisteredAt = old.RegisteredAt
		rec.Ec2InstanceId = old.Ec2InstanceId
		rec.Version = spec.I64(spec.Val(old.Version) + 1)
		placement.SyncResources(rec)
		guard = modRevIs(key, orev)
	} else {
		guard = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	lease, err := a.Store.Client.Grant(ctx, a.LeaseTTL)
	if err != nil {
		return nil, err
	}
	cmps := []clientv3.Cmp{guard, clientv3.Compare(clientv3.CreateRevision(state.ClusterKey(cluster)), "=", cl.CreatedRev)}
	ops := []clientv3.Op{
		clientv3.OpPut(key, state.Marshal(rec)),
		clientv3.OpPut(state.ConnKey(cluster, id), strconv.FormatInt(int64(lease.ID), 16), clientv3.WithLease(lease.ID)),
	}
	if bound != nil && bound.Instance == "" {
		bound.Cluster, bound.Instance = cluster, id
		ak := state.AgentKeyKey(bound.AccessKeyID)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(ak), "=", boundRev))
		cmps = append(cmps, boundGone...)
		ops = append(ops, clientv3.OpPut(ak, state.Marshal(bound)))
	}
	resp, err := a.Store.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		if _, err := a.Store.Client.Revoke(context.WithoutCancel(ctx), lease.ID); err != nil {
			a.Log.Warn("register: revoking an unused lease (it expires on its own)", "err", err)
		}
		return nil, spec.Exception("ServerException", "The container instance changed during registration; try again.")
	}
	a.Cache.WaitRev(resp.Header.Revision, 2*time.Second)
	ci := a.instanceView(rec, true, []string{"TAGS"})
	return &spec.RegisterContainerInstanceResponse{ContainerInstance: &ci}, nil
}

func registeredInt(rec *state.InstanceRecord, name string) int {
	n, _ := resourceInt(rec.RegisteredResources, name)
	return n
}

func dedupeSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// Heartbeat keeps an agent's lease alive, re-creating it after expiry.
// It is Berth's own agent endpoint; ECS agents use a websocket instead.
func (a *API) Heartbeat(ctx context.Context, clusterRef, instanceRef string) error {
	cl, err := a.cluster(ctx, &clusterRef)
	if err != nil {
		return err
	}
	cluster := spec.Val(cl.ClusterName)
	id, err := a.instanceID(cluster, instanceRef)
	if err != nil {
		return err
	}
	if err := agentauth.Owns(ctx, a.Store, cluster, id); err != nil {
		return err
	}
	resp, err := a.Store.Client.Get(ctx, state.ConnKey(cluster, id))
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 1 {
		if lid, err := strconv.ParseInt(string(resp.Kvs[0].Value), 16, 64); err == nil {
			if _, err := a.Store.Client.KeepAliveOnce(ctx, clientv3.LeaseID(lid)); err == nil {
				return nil
			}
		}
	}
	lease, err := a.Store.Client.Grant(ctx, a.LeaseTTL)
	if err != nil {
		return err
	}
	_, err = a.Store.Client.Put(ctx, state.ConnKey(cluster, id), strconv.FormatInt(int64(lease.ID), 16), clientv3.WithLease(lease.ID))
	return err
}

// instanceView renders a stored instance for the API.
func (a *API) instanceView(rec *state.InstanceRecord, connected bool, include []string) spec.ContainerInstance {
	ci := rec.ContainerInstance
	ci.AgentConnected = spec.Bool(connected)
	if !containsStr(include, "TAGS") {
		ci.Tags = nil
	} else if ci.Tags == nil {
		ci.Tags = []spec.Tag{}
	}
	if ci.Attachments == nil {
		ci.Attachments = []spec.Attachment{}
	}
	return ci
}

// DeregisterContainerInstance removes an instance. With running tasks it
// needs force; those tasks are then marked STOPPED.
func (a *API) DeregisterContainerInstance(ctx context.Context, r *spec.DeregisterContainerInstanceRequest) (*spec.DeregisterContainerInstanceResponse, error) {
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	id, err := a.instanceID(cluster, spec.Val(r.ContainerInstance))
	if err != nil {
		return nil, err
	}
	rec := &state.InstanceRecord{}
	if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, id), rec); isNotFound(err) {
		return nil, spec.InvalidParam("The referenced container instance %s was not found.", id)
	} else if err != nil {
		return nil, err
	}
	var live []string
	err = a.Store.Range(ctx, state.TaskPrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		t := &state.TaskRecord{}
		if err := json.Unmarshal(val, t); err != nil {
			return false, err
		}
		if t.InstanceID == id && spec.Val(t.LastStatus) != "STOPPED" {
			live = append(live, t.ID)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(live) > 0 && !spec.Val(r.Force) {
		return nil, spec.InvalidParam("Found running tasks on the instance. Use force to deregister the container instance %s.", id)
	}
	now := a.Now()
	for _, tid := range live {
		_, err := a.Applier.Transition(ctx, cluster, tid, func(t *state.TaskRecord) (bool, error) {
			launch.MarkStopping(t, now, "TerminationNotice", "Container instance deregistered")
			launch.MarkStopped(t, now)
			return true, nil
		})
		if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	// Re-read: stopping the tasks above released their reservations.
	fresh := &state.InstanceRecord{}
	if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, id), fresh); err == nil {
		rec = fresh
	} else if !isNotFound(err) {
		return nil, err
	}
	if _, err := a.Store.Client.Txn(ctx).Then(
		clientv3.OpDelete(state.InstanceKey(cluster, id)),
		clientv3.OpDelete(state.ConnKey(cluster, id)),
	).Commit(); err != nil {
		return nil, err
	}
	if err := vpc.Release(ctx, a.Store.Client, cluster, id); err != nil {
		a.Log.Warn("release the instance's task addresses", "instance", id, "err", err)
	}
	ci := a.instanceView(rec, false, nil)
	ci.Status = spec.Str("INACTIVE")
	return &spec.DeregisterContainerInstanceResponse{ContainerInstance: &ci}, nil
}

// DescribeContainerInstances describes instances; unknown ones are MISSING.
func (a *API) DescribeContainerInstances(ctx context.Context, r *spec.DescribeContainerInstancesRequest) (*spec.DescribeContainerInstancesResponse, error) {
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	if len(r.ContainerInstances) == 0 || len(r.ContainerInstances) > 100 {
		return nil, spec.InvalidParam("containerInstances must have between 1 and 100 items.")
	}
	out := &spec.DescribeContainerInstancesResponse{ContainerInstances: []spec.ContainerInstance{}, Failures: []spec.Failure{}}
	for _, ref := range r.ContainerInstances {
		id, err := a.instanceID(cluster, ref)
		if err != nil {
			return nil, err
		}
		rec := &state.InstanceRecord{}
		if _, err := a.Store.Get(ctx, state.InstanceKey(cluster, id), rec); isNotFound(err) {
			out.Failures = append(out.Failures, spec.Failure{Arn: spec.Str(a.instanceARN(cluster, id)), Reason: spec.Str("MISSING")})
			continue
		} else if err != nil {
			return nil, err
		}
		connected, err := a.Store.Exists(ctx, state.ConnKey(cluster, id))
		if err != nil {
			return nil, err
		}
		out.ContainerInstances = append(out.ContainerInstances, a.instanceView(rec, connected, r.Include))
	}
	return out, nil
}

// ListContainerInstances lists instance ARNs, filtered by status and a
// cluster query language expression.
func (a *API) ListContainerInstances(ctx context.Context, r *spec.ListContainerInstancesRequest) (*spec.ListContainerInstancesResponse, error) {
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	var filter *cql.Expr
	if f := spec.Val(r.Filter); f != "" {
		if filter, err = cql.Parse(f); err != nil {
			return nil, spec.InvalidParam("Invalid filter expression '%s': %v.", f, err)
		}
	}
	status := spec.Val(r.Status)
	if status != "" && !containsStr([]string{"ACTIVE", "DRAINING", "REGISTERING", "DEREGISTERING", "REGISTRATION_FAILED"}, status) {
		return nil, spec.InvalidParam("Invalid status '%s'.", status)
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	arns, next, err := listPage(ctx, a.Store, state.InstancePrefix(cluster), r.NextToken, limit, func(rec *state.InstanceRecord) (string, bool) {
		if status != "" && spec.Val(rec.Status) != status {
			return "", false
		}
		if filter != nil && !filter.Match(a.cqlEnv(cluster, rec)) {
			return "", false
		}
		return spec.Val(rec.ContainerInstanceArn), true
	})
	return &spec.ListContainerInstancesResponse{ContainerInstanceArns: arns, NextToken: next}, err
}

// cqlEnv is what a cluster query expression sees of an instance.
func (a *API) cqlEnv(cluster string, rec *state.InstanceRecord) *cql.Env {
	env := &cql.Env{Attributes: map[string]string{}, EC2InstanceID: spec.Val(rec.Ec2InstanceId),
		AgentConnected: a.Cache.Connected(cluster, rec.ID), RunningTasksCount: int(spec.Val(rec.RunningTasksCount) + spec.Val(rec.PendingTasksCount)),
		TaskGroups: rec.Groups}
	for _, at := range rec.Attributes {
		env.Attributes[spec.Val(at.Name)] = spec.Val(at.Value)
	}
	if rec.VersionInfo != nil {
		env.AgentVersion = spec.Val(rec.VersionInfo.AgentVersion)
	}
	if rec.RegisteredAt != nil {
		env.RegisteredAt = rec.RegisteredAt.Time
	}
	return env
}

// UpdateContainerInstancesState sets ACTIVE or DRAINING.
func (a *API) UpdateContainerInstancesState(ctx context.Context, r *spec.UpdateContainerInstancesStateRequest) (*spec.UpdateContainerInstancesStateResponse, error) {
	status := spec.Val(r.Status)
	if status != "ACTIVE" && status != "DRAINING" {
		return nil, spec.InvalidParam("Container instance status can be updated to ACTIVE or DRAINING only.")
	}
	if len(r.ContainerInstances) == 0 || len(r.ContainerInstances) > 10 {
		return nil, spec.InvalidParam("containerInstances must have between 1 and 10 items.")
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	var ids []string
	for _, ref := range r.ContainerInstances {
		id, err := a.instanceID(cluster, ref)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	out := &spec.UpdateContainerInstancesStateResponse{ContainerInstances: []spec.ContainerInstance{}, Failures: []spec.Failure{}}
	for _, id := range ids {
		rec, err := state.Update(ctx, a.Store, state.InstanceKey(cluster, id), func(in *state.InstanceRecord) error {
			if spec.Val(in.Status) != status {
				in.Status = spec.Str(status)
				in.Version = spec.I64(spec.Val(in.Version) + 1)
			}
			return nil
		})
		if isNotFound(err) {
			out.Failures = append(out.Failures, spec.Failure{Arn: spec.Str(a.instanceARN(cluster, id)), Reason: spec.Str("MISSING")})
			continue
		} else if err != nil {
			return nil, err
		}
		out.ContainerInstances = append(out.ContainerInstances, a.instanceView(rec, a.Cache.Connected(cluster, id), nil))
	}
	return out, nil
}

var (
	attrNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_.\-/:@\\]{1,128}$`)
	attrValueRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-/:@\\ ]{1,128}$`)
)

func validateAttributes(attrs []spec.Attribute, needTarget bool) error {
	for _, at := range attrs {
		n := spec.Val(at.Name)
		if !attrNameRE.MatchString(n) {
			return spec.InvalidParam("Invalid attribute name '%s'. Up to 128 letters, numbers, hyphens, underscores, periods, at signs, slashes, backslashes and colons are allowed.", n)
		}
		if v := at.Value; v != nil && (!attrValueRE.MatchString(*v) || strings.TrimSpace(*v) != *v) {
			return spec.InvalidParam("Invalid value '%s' for attribute '%s'. Up to 128 letters, numbers, hyphens, underscores, periods, at signs, slashes, backslashes, colons and inner spaces are allowed.", *v, n)
		}
		if tt := spec.Val(at.TargetType); tt != "" && tt != "container-instance" {
			return spec.InvalidParam("Invalid targetType '%s'. Valid value: container-instance.", tt)
		}
		if needTarget && spec.Val(at.TargetId) == "" {
			return spec.InvalidParam("targetId is required for attribute '%s'.", n)
		}
	}
	return nil
}

// maxCustomAttributes is ECS's limit of custom attributes per resource.
const maxCustomAttributes = 10

// PutAttributes sets attributes on container instances, all or none.
func (a *API) PutAttributes(ctx context.Context, r *spec.PutAttributesRequest) (*spec.PutAttributesResponse, error) {
	if len(r.Attributes) == 0 || len(r.Attributes) > 10 {
		return nil, spec.InvalidParam("attributes must have between 1 and 10 items.")
	}
	if err := validateAttributes(r.Attributes, true); err != nil {
		return nil, err
	}
	return &spec.PutAttributesResponse{Attributes: r.Attributes}, a.changeAttributes(ctx, r.Cluster, r.Attributes, true)
}

// DeleteAttributes removes attributes from container instances.
func (a *API) DeleteAttributes(ctx context.Context, r *spec.DeleteAttributesRequest) (*spec.DeleteAttributesResponse, error) {
	if len(r.Attributes) == 0 {
		return nil, spec.InvalidParam("attributes must not be empty.")
	}
	if err := validateAttributes(r.Attributes, true); err != nil {
		return nil, err
	}
	return &spec.DeleteAttributesResponse{Attributes: r.Attributes}, a.changeAttributes(ctx, r.Cluster, r.Attributes, false)
}

func isBuiltinAttr(n string) bool {
	return strings.HasPrefix(n, "ecs.") || strings.HasPrefix(n, "com.amazonaws.ecs.")
}

// changeAttributes applies puts or deletes in one transaction.
func (a *API) changeAttributes(ctx context.Context, clusterRef *string, attrs []spec.Attribute, put bool) error {
	cl, err := a.cluster(ctx, clusterRef)
	if err != nil {
		return err
	}
	cluster := spec.Val(cl.ClusterName)
	for attempt := 0; attempt < 50; attempt++ {
		recs := map[string]*state.InstanceRecord{}
		revs := map[string]int64{}
		var order []string
		for _, at := range attrs {
			id, err := a.instanceID(cluster, spec.Val(at.TargetId))
			if err != nil {
				return err
			}
			rec, ok := recs[id]
			if !ok {
				rec = &state.InstanceRecord{}
				rev, err := a.Store.Get(ctx, state.InstanceKey(cluster, id), rec)
				if isNotFound(err) {
					return spec.Exception("TargetNotFoundException", "Could not find container instance %s in cluster %s.", id, cluster)
				} else if err != nil {
					return err
				}
				recs[id], revs[id] = rec, rev
				order = append(order, id)
			}
			name := spec.Val(at.Name)
			kept := rec.Attributes[:0]
			for _, old := range rec.Attributes {
				if spec.Val(old.Name) != name {
					kept = append(kept, old)
				}
			}
			rec.Attributes = kept
			if put {
				rec.Attributes = append(rec.Attributes, spec.Attribute{Name: at.Name, Value: at.Value})
				custom := 0
				for _, x := range rec.Attributes {
					if !isBuiltinAttr(spec.Val(x.Name)) {
						custom++
					}
				}
				if custom > maxCustomAttributes {
					return spec.Exception("AttributeLimitExceededException", "You can apply up to %d custom attributes per resource.", maxCustomAttributes)
				}
			}
			sort.Slice(rec.Attributes, func(i, j int) bool { return spec.Val(rec.Attributes[i].Name) < spec.Val(rec.Attributes[j].Name) })
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, id := range order {
			k := state.InstanceKey(cluster, id)
			cmps = append(cmps, modRevIs(k, revs[id]))
			ops = append(ops, clientv3.OpPut(k, state.Marshal(recs[id])))
		}
		resp, err := a.Store.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			a.Cache.WaitRev(resp.Header.Revision, 2*time.Second)
			return nil
		}
	}
	return fmt.Errorf("put attributes: %w", state.ErrConflict)
}

// ListAttributes lists attributes of the cluster's container instances.
func (a *API) ListAttributes(ctx context.Context, r *spec.ListAttributesRequest) (*spec.ListAttributesResponse, error) {
	if spec.Val(r.TargetType) != "container-instance" {
		return nil, spec.InvalidParam("targetType must be container-instance.")
	}
	if r.AttributeValue != nil && r.AttributeName == nil {
		return nil, spec.InvalidParam("attributeValue can only be given with attributeName.")
	}
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	var all []spec.Attribute
	err = a.Store.Range(ctx, state.InstancePrefix(cluster), "", func(_ string, val []byte, _ int64) (bool, error) {
		rec := &state.InstanceRecord{}
		if err := json.Unmarshal(val, rec); err != nil {
			return false, err
		}
		for _, at := range rec.Attributes {
			if r.AttributeName != nil && spec.Val(at.Name) != *r.AttributeName {
				continue
			}
			if r.AttributeValue != nil && spec.Val(at.Value) != *r.AttributeValue {
				continue
			}
			all = append(all, spec.Attribute{Name: at.Name, Value: at.Value, TargetType: spec.Str("container-instance"), TargetId: rec.ContainerInstanceArn})
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	start := 0
	if r.NextToken != nil {
		tok, err := decodeToken(r.NextToken, "attr:")
		if err != nil {
			return nil, err
		}
		if start, err = strconv.Atoi(strings.TrimPrefix(tok, "attr:")); err != nil || start > len(all) {
			return nil, spec.InvalidParam("Invalid nextToken.")
		}
	}
	end := min(start+limit, len(all))
	out := &spec.ListAttributesResponse{Attributes: all[start:end]}
	if out.Attributes == nil {
		out.Attributes = []spec.Attribute{}
	}
	if end < len(all) {
		out.NextToken = encodeToken("attr:" + strconv.Itoa(end))
	}
	return out, nil
}
