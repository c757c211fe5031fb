package ecs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

const defaultCluster = "default"

// clusterName resolves a cluster name or ARN ("" means default).
func (a *API) clusterName(ref *string) (string, error) {
	s := spec.Val(ref)
	if s == "" {
		return defaultCluster, nil
	}
	if strings.HasPrefix(s, "arn:") {
		kind, name, ok := a.resourceOf(s)
		if !ok || kind != "cluster" || name == "" {
			return "", spec.InvalidParam("Invalid cluster ARN '%s'.", s)
		}
		return name, nil
	}
	if !spec.ValidName(s) {
		return "", spec.InvalidParam("Invalid cluster name '%s'. Up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.", s)
	}
	return s, nil
}

// cluster loads an existing cluster, creating "default" on first use as ECS does.
func (a *API) cluster(ctx context.Context, ref *string) (*state.ClusterRecord, error) {
	name, err := a.clusterName(ref)
	if err != nil {
		return nil, err
	}
	rec := &state.ClusterRecord{}
	resp, err := a.Store.Client.Get(ctx, state.ClusterKey(name))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		if name != defaultCluster {
			return nil, spec.ErrClusterNotFound()
		}
		if err := a.Store.Create(ctx, state.ClusterKey(name), a.newCluster(name)); err != nil && err != state.ErrExists {
			return nil, err
		}
		return a.cluster(ctx, ref)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
		return nil, err
	}
	rec.CreatedRev = resp.Kvs[0].CreateRevision
	return rec, nil
}

func (a *API) newCluster(name string) *state.ClusterRecord {
	return &state.ClusterRecord{Cluster: spec.Cluster{
		ClusterArn: spec.Str(a.clusterARN(name)), ClusterName: spec.Str(name), Status: spec.Str("ACTIVE"),
		Settings: []spec.ClusterSetting{{Name: spec.Str("containerInsights"), Value: spec.Str("disabled")}},
	}}
}

// view fills the computed counts of a cluster.
func (a *API) clusterView(ctx context.Context, rec *state.ClusterRecord, include []string) (spec.Cluster, error) {
	c := rec.Cluster
	name := spec.Val(c.ClusterName)
	var running, pending int32
	insts := a.Cache.Instances(name)
	for _, ci := range insts {
		running += spec.Val(ci.Record.RunningTasksCount)
		pending += spec.Val(ci.Record.PendingTasksCount)
	}
	c.RegisteredContainerInstancesCount = spec.I32(int32(len(insts)))
	c.RunningTasksCount = spec.I32(running)
	c.PendingTasksCount = spec.I32(pending)
	services := int32(0)
	err := a.Store.Range(ctx, state.ServicePrefix(name), "", func(key string, val []byte, _ int64) (bool, error) {
		sv := &state.ServiceRecord{}
		if err := json.Unmarshal(val, sv); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		if spec.Val(sv.Status) == "ACTIVE" {
			services++
		}
		return true, nil
	})
	if err != nil {
		return c, err
	}
	c.ActiveServicesCount = spec.I32(services)
	if !containsStr(include, "TAGS") {
		c.Tags = nil
	}
	if !containsStr(include, "SETTINGS") {
		c.Settings = nil
	}
	if !containsStr(include, "CONFIGURATIONS") {
		c.Configuration = nil
	}
	if containsStr(include, "STATISTICS") {
		c.Statistics = []spec.KeyValuePair{}
	}
	if c.CapacityProviders == nil {
		c.CapacityProviders = []string{}
	}
	if c.DefaultCapacityProviderStrategy == nil {
		c.DefaultCapacityProviderStrategy = []spec.CapacityProviderStrategyItem{}
	}
	return c, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CreateCluster creates a cluster, or returns the existing one of that name.
func (a *API) CreateCluster(ctx context.Context, r *spec.CreateClusterRequest) (*spec.CreateClusterResponse, error) {
	name := spec.Val(r.ClusterName)
	if name == "" {
		name = defaultCluster
	}
	if !spec.ValidName(name) {
		return nil, spec.InvalidParam("Invalid cluster name '%s'. Up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.", name)
	}
	if err := spec.ValidateTags(r.Tags); err != nil {
		return nil, err
	}
	if err := validateSettings(r.Settings); err != nil {
		return nil, err
	}
	if err := checkClusterProviders(r.CapacityProviders, r.DefaultCapacityProviderStrategy); err != nil {
		return nil, err
	}
	rec := a.newCluster(name)
	rec.Tags = r.Tags
	if r.Settings != nil {
		rec.Settings = r.Settings
	} else {
		settings, err := a.defaultClusterSettings(ctx)
		if err != nil {
			return nil, err
		}
		rec.Settings = settings
	}
	rec.Configuration = r.Configuration
	rec.CapacityProviders = r.CapacityProviders
	rec.DefaultCapacityProviderStrategy = r.DefaultCapacityProviderStrategy
	if err := a.Store.Create(ctx, state.ClusterKey(name), rec); err != nil && err != state.ErrExists {
		return nil, err
	}
	got, err := a.cluster(ctx, &name)
	if err != nil {
		return nil, err
	}
	c, err := a.clusterView(ctx, got, []string{"TAGS", "SETTINGS", "CONFIGURATIONS"})
	return &spec.CreateClusterResponse{Cluster: &c}, err
}

func validateSettings(s []spec.ClusterSetting) error {
	for _, st := range s {
		if spec.Val(st.Name) != "containerInsights" {
			return spec.InvalidParam("Invalid cluster setting name '%s'. Valid names: containerInsights.", spec.Val(st.Name))
		}
		if v := spec.Val(st.Value); v != "enabled" && v != "disabled" && v != "enhanced" {
			return spec.InvalidParam("Invalid containerInsights value '%s'. Valid values: enabled, disabled, enhanced.", v)
		}
	}
	return nil
}

// DescribeClusters describes clusters; unknown ones are reported as MISSING.
func (a *API) DescribeClusters(ctx context.Context, r *spec.DescribeClustersRequest) (*spec.DescribeClustersResponse, error) {
	refs := r.Clusters
	if len(refs) == 0 {
		if _, err := a.cluster(ctx, nil); err != nil {
			return nil, err
		}
		refs = []string{defaultCluster}
	}
	if len(refs) > 100 {
		return nil, spec.InvalidParam("clusters can have at most 100 items.")
	}
	out := &spec.DescribeClustersResponse{Clusters: []spec.Cluster{}, Failures: []spec.Failure{}}
	for _, ref := range refs {
		name, err := a.clusterName(&ref)
		if err != nil {
			return nil, err
		}
		rec := &state.ClusterRecord{}
		if _, err := a.Store.Get(ctx, state.ClusterKey(name), rec); isNotFound(err) {
			out.Failures = append(out.Failures, spec.Failure{Arn: spec.Str(a.clusterARN(name)), Reason: spec.Str("MISSING")})
			continue
		} else if err != nil {
			return nil, err
		}
		c, err := a.clusterView(ctx, rec, r.Include)
		if err != nil {
			return nil, err
		}
		out.Clusters = append(out.Clusters, c)
	}
	return out, nil
}

// ListClusters lists cluster ARNs with pagination.
func (a *API) ListClusters(ctx context.Context, r *spec.ListClustersRequest) (*spec.ListClustersResponse, error) {
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	arns, next, err := listPage(ctx, a.Store, state.ClustersPrefix(), r.NextToken, limit, func(c *state.ClusterRecord) (string, bool) {
		return spec.Val(c.ClusterArn), true
	})
	return &spec.ListClustersResponse{ClusterArns: arns, NextToken: next}, err
}

// UpdateCluster changes settings and configuration.
func (a *API) UpdateCluster(ctx context.Context, r *spec.UpdateClusterRequest) (*spec.UpdateClusterResponse, error) {
	if spec.Val(r.Cluster) == "" {
		return nil, spec.InvalidParam("cluster is required.")
	}
	if err := validateSettings(r.Settings); err != nil {
		return nil, err
	}
	c, err := a.updateCluster(ctx, r.Cluster, func(c *state.ClusterRecord) {
		for _, s := range r.Settings {
			found := false
			for i := range c.Settings {
				if spec.Val(c.Settings[i].Name) == spec.Val(s.Name) {
					c.Settings[i] = s
					found = true
				}
			}
			if !found {
				c.Settings = append(c.Settings, s)
			}
		}
		if r.Configuration != nil {
			c.Configuration = r.Configuration
		}
		if r.ServiceConnectDefaults != nil {
			c.ServiceConnectDefaults = &spec.ClusterServiceConnectDefaults{Namespace: r.ServiceConnectDefaults.Namespace}
		}
	})
	if err != nil {
		return nil, err
	}
	return &spec.UpdateClusterResponse{Cluster: c}, nil
}

// updateCluster changes a cluster's record and returns its full view.
func (a *API) updateCluster(ctx context.Context, ref *string, change func(*state.ClusterRecord)) (*spec.Cluster, error) {
	name, err := a.clusterName(ref)
	if err != nil {
		return nil, err
	}
	rec, err := state.Update(ctx, a.Store, state.ClusterKey(name), func(c *state.ClusterRecord) error {
		change(c)
		return nil
	})
	if isNotFound(err) {
		return nil, spec.ErrClusterNotFound()
	} else if err != nil {
		return nil, err
	}
	c, err := a.clusterView(ctx, rec, []string{"TAGS", "SETTINGS", "CONFIGURATIONS"})
	return &c, err
}

// DeleteCluster deletes an empty cluster.
func (a *API) DeleteCluster(ctx context.Context, r *spec.DeleteClusterRequest) (*spec.DeleteClusterResponse, error) {
	if spec.Val(r.Cluster) == "" {
		return nil, spec.InvalidParam("cluster is required.")
	}
	name, err := a.clusterName(r.Cluster)
	if err != nil {
		return nil, err
	}
	rec := &state.ClusterRecord{}
	rev, err := a.Store.Get(ctx, state.ClusterKey(name), rec)
	if isNotFound(err) {
		return nil, spec.ErrClusterNotFound()
	} else if err != nil {
		return nil, err
	}
	if n, err := a.Store.Count(ctx, state.InstancePrefix(name)); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, spec.Exception("ClusterContainsContainerInstancesException", "The Cluster cannot be deleted while Container Instances are active or draining.")
	}
	if active, err := anyUnder(ctx, a.Store, state.TaskPrefix(name), func(t *state.TaskRecord) bool { return spec.Val(t.LastStatus) != "STOPPED" }); err != nil {
		return nil, err
	} else if active {
		return nil, spec.Exception("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.")
	}
	if active, err := anyUnder(ctx, a.Store, state.ServicePrefix(name), func(s *state.ServiceRecord) bool { return spec.Val(s.Status) != "INACTIVE" }); err != nil {
		return nil, err
	} else if active {
		return nil, spec.Exception("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.")
	}
	// Delete only if nothing registered in the meantime.
	resp, err := a.Store.Client.Txn(ctx).If(
		modRevIs(state.ClusterKey(name), rev),
		noKeysUnder(state.InstancePrefix(name)),
	).Then(deleteOp(state.ClusterKey(name)), deletePrefixOp(state.ResidencyPrefix(name))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, spec.Exception("UpdateInProgressException", "The cluster changed while it was being deleted. Try again.")
	}
	c, err := a.clusterView(ctx, rec, nil)
	if err != nil {
		return nil, err
	}
	c.Status = spec.Str("INACTIVE")
	c.RegisteredContainerInstancesCount = spec.I32(0)
	return &spec.DeleteClusterResponse{Cluster: &c}, nil
}
