package ecs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/service"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

func (a *API) serviceARN(cluster, name string) string {
	return a.arn("service/" + cluster + "/" + name)
}

// MaxServiceTasks is ECS's quota of tasks per service.
const MaxServiceTasks = 5000

// clusterService resolves a cluster and one of its services (by name or ARN).
func (a *API) clusterService(ctx context.Context, clusterRef *string, ref string) (cluster, name string, err error) {
	cl, err := a.cluster(ctx, clusterRef)
	if err != nil {
		return "", "", err
	}
	cluster = spec.Val(cl.ClusterName)
	name, err = a.serviceName(cluster, ref)
	return cluster, name, err
}

func defaultDeploymentConfig(d *spec.DeploymentConfiguration) (*spec.DeploymentConfiguration, error) {
	out := &spec.DeploymentConfiguration{}
	if d != nil {
		*out = *d
	}
	if out.MaximumPercent == nil {
		out.MaximumPercent = spec.I32(200)
	}
	if out.MinimumHealthyPercent == nil {
		out.MinimumHealthyPercent = spec.I32(100)
	}
	if *out.MaximumPercent < 100 || *out.MaximumPercent > 200 && *out.MaximumPercent > 1000 {
		return nil, spec.InvalidParam("maximumPercent must be at least 100.")
	}
	if *out.MinimumHealthyPercent < 0 || *out.MinimumHealthyPercent > 100 {
		return nil, spec.InvalidParam("minimumHealthyPercent must be between 0 and 100.")
	}
	if out.DeploymentCircuitBreaker == nil {
		out.DeploymentCircuitBreaker = &spec.DeploymentCircuitBreaker{Enable: spec.Bool(false), Rollback: spec.Bool(false)}
	}
	return out, nil
}

// CreateService creates a service; the controller starts its tasks.
func (a *API) CreateService(ctx context.Context, r *spec.CreateServiceRequest) (*spec.CreateServiceResponse, error) {
	name := spec.Val(r.ServiceName)
	if name == "" {
		return nil, spec.InvalidParam("serviceName is required.")
	}
	if !spec.ValidName(name) {
		return nil, spec.InvalidParam("Invalid service name '%s'. Up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.", name)
	}
	if err := spec.ValidateNetworkConfiguration(r.NetworkConfiguration); err != nil {
		return nil, err
	}
	strategy := spec.Val(r.SchedulingStrategy)
	if strategy == "" {
		strategy = "REPLICA"
	}
	if strategy != "REPLICA" && strategy != "DAEMON" {
		return nil, spec.InvalidParam("Invalid schedulingStrategy '%s'. Valid values: REPLICA, DAEMON.", strategy)
	}
	if strategy == "REPLICA" && r.DesiredCount == nil {
		return nil, spec.InvalidParam("desiredCount is required for a service with the REPLICA scheduling strategy.")
	}
	if strategy == "DAEMON" {
		if r.DesiredCount != nil {
			return nil, spec.InvalidParam("The daemon scheduling strategy does not support a desired count for services.")
		}
		if len(r.PlacementStrategy) > 0 {
			return nil, spec.InvalidParam("The daemon scheduling strategy does not support placement strategies.")
		}
		if len(r.VolumeConfigurations) > 0 {
			return nil, spec.InvalidParam("The daemon scheduling strategy does not support volumeConfigurations.")
		}
	}
	if n := spec.Val(r.DesiredCount); n < 0 || n > MaxServiceTasks {
		return nil, spec.InvalidParam("desiredCount must be between 0 and %d.", MaxServiceTasks)
	}
	dc, err := defaultDeploymentConfig(r.DeploymentConfiguration)
	if err != nil {
		return nil, err
	}
	if err := spec.ValidateTags(r.Tags); err != nil {
		return nil, err
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	strategies := r.PlacementStrategy
	if len(strategies) == 0 && strategy == "REPLICA" {
		strategies = []spec.PlacementStrategy{{Type: spec.Str("spread"), Field: spec.Str("attribute:ecs.availability-zone")}, {Type: spec.Str("spread"), Field: spec.Str("instanceId")}}
	}
	vcs, err := spec.ServiceVolumes(r.VolumeConfigurations)
	if err != nil {
		return nil, err
	}
	// Validate the launch as the controller will make it.
	ls, err := a.prepare(ctx, &launch.Input{Cluster: r.Cluster, TaskDefinition: r.TaskDefinition, Group: spec.Str("service:" + name),
		LaunchType: r.LaunchType, Constraints: r.PlacementConstraints, Strategies: strategies, VolumeConfigurations: vcs, Count: 1,
		Network: r.NetworkConfiguration, CapacityProviderStrategy: r.CapacityProviderStrategy, PlatformVersion: r.PlatformVersion})
	if err != nil {
		return nil, err
	}
	if err := fargatePlacement(ls, r.PlacementConstraints, r.PlacementStrategy); err != nil {
		return nil, err
	}
	if ls.launchType == spec.Fargate && strategy == "DAEMON" {
		return nil, spec.InvalidParam("The DAEMON scheduling strategy is not supported for services using the Fargate launch type.")
	}
	if v, _ := service.TagValue(r.Tags, service.StatefulTag); v == "true" && len(vcs) == 0 && !hasEFS(&ls.td.TaskDefinition) {
		return nil, spec.InvalidParam("A service tagged %s=true needs volumeConfigurations or an EFS volume: each slot gets its own volume or directory.", service.StatefulTag)
	}
	td := spec.Val(ls.td.TaskDefinition.TaskDefinitionArn)
	now := spec.TS(a.Now())
	svc := &state.ServiceRecord{Cluster: cluster}
	svc.ServiceArn = spec.Str(a.serviceARN(cluster, name))
	svc.ServiceName = spec.Str(name)
	svc.ClusterArn = cl.ClusterArn
	svc.Status = spec.Str("ACTIVE")
	svc.DesiredCount = spec.I32(spec.Val(r.DesiredCount))
	svc.LaunchType = spec.Str(ls.launchType)
	if len(ls.providers) > 0 {
		// A strategy (given or the cluster's default) stands in for the launch type.
		svc.LaunchType = nil
		svc.CapacityProviderStrategy = r.CapacityProviderStrategy
		if len(svc.CapacityProviderStrategy) == 0 {
			svc.CapacityProviderStrategy = cl.DefaultCapacityProviderStrategy
		}
	}
	if ls.launchType == spec.Fargate {
		svc.PlatformVersion = spec.Str("LATEST")
		if r.PlatformVersion != nil {
			svc.PlatformVersion = r.PlatformVersion
		}
		svc.PlatformFamily = spec.Str("Linux")
	}
	svc.NetworkConfiguration = r.NetworkConfiguration
	svc.TaskDefinition = spec.Str(td)
	svc.DeploymentConfiguration = dc
	svc.PlacementConstraints = r.PlacementConstraints
	svc.PlacementStrategy = strategies
	svc.SchedulingStrategy = spec.Str(strategy)
	svc.CreatedAt = now
	svc.CreatedBy = spec.Str("arn:aws:iam::" + a.Account + ":root")
	svc.Tags = r.Tags
	svc.PropagateTags = r.PropagateTags
	svc.DeploymentController = &spec.DeploymentController{Type: spec.Str("ECS")}
	svc.Deployments = []spec.Deployment{service.NewDeployment(td, spec.Val(r.DesiredCount), now, ls.launchType)}
	svc.Deployments[0].VolumeConfigurations = r.VolumeConfigurations
	if svc.LaunchType == nil {
		svc.Deployments[0].LaunchType = nil
	}
	svc.Deployments[0].NetworkConfiguration = svc.NetworkConfiguration
	svc.Deployments[0].CapacityProviderStrategy = svc.CapacityProviderStrategy
	svc.Deployments[0].PlatformVersion, svc.Deployments[0].PlatformFamily = svc.PlatformVersion, svc.PlatformFamily
	svc.Events = []spec.ServiceEvent{}
	key := state.ServiceKey(cluster, name)
	old := &state.ServiceRecord{}
	rev, err := a.Store.Get(ctx, key, old)
	switch {
	case isNotFound(err):
		err = a.Store.Create(ctx, key, svc)
	case err != nil:
		return nil, err
	case spec.Val(old.Status) != "INACTIVE":
		return nil, spec.InvalidParam("Creation of service was not idempotent.")
	default:
		err = a.Store.Put(ctx, key, svc, rev)
	}
	if err == state.ErrExists || err == state.ErrConflict {
		return nil, spec.InvalidParam("Creation of service was not idempotent.")
	} else if err != nil {
		return nil, err
	}
	v, err := a.serviceView(ctx, svc, []string{"TAGS"})
	if err != nil {
		return nil, err
	}
	return &spec.CreateServiceResponse{Service: &v}, nil
}

// serviceView fills runningCount and pendingCount, per deployment too.
func (a *API) serviceView(ctx context.Context, svc *state.ServiceRecord, include []string) (spec.Service, error) {
	v := svc.Service
	var running, pending int32
	counts := map[string][2]int32{}
	err := a.Store.Range(ctx, state.TaskPrefix(svc.Cluster), "", func(key string, val []byte, _ int64) (bool, error) {
		t := &state.TaskRecord{}
		if err := json.Unmarshal(val, t); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		if spec.Val(t.Group) != "service:"+spec.Val(svc.ServiceName) || spec.Val(t.DesiredStatus) != "RUNNING" {
			return true, nil
		}
		c := counts[spec.Val(t.TaskDefinitionArn)]
		switch spec.Val(t.LastStatus) {
		case "RUNNING":
			running++
			c[0]++
		case "STOPPED":
		default:
			pending++
			c[1]++
		}
		counts[spec.Val(t.TaskDefinitionArn)] = c
		return true, nil
	})
	if err != nil {
		return spec.Service{}, err
	}
	v.RunningCount, v.PendingCount = spec.I32(running), spec.I32(pending)
	v.Deployments = append([]spec.Deployment(nil), svc.Deployments...)
	for i := range v.Deployments {
		c := counts[spec.Val(v.Deployments[i].TaskDefinition)]
		v.Deployments[i].RunningCount, v.Deployments[i].PendingCount = spec.I32(c[0]), spec.I32(c[1])
	}
	if !containsStr(include, "TAGS") {
		v.Tags = nil
	}
	return v, nil
}

// DescribeServices describes services; unknown ones are MISSING.
func (a *API) DescribeServices(ctx context.Context, r *spec.DescribeServicesRequest) (*spec.DescribeServicesResponse, error) {
	if len(r.Services) == 0 || len(r.Services) > 10 {
		return nil, spec.InvalidParam("services must have between 1 and 10 items.")
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	out := &spec.DescribeServicesResponse{Services: []spec.Service{}, Failures: []spec.Failure{}}
	for _, ref := range r.Services {
		name, err := a.serviceName(cluster, ref)
		if err != nil {
			return nil, err
		}
		svc := &state.ServiceRecord{}
		if _, err := a.Store.Get(ctx, state.ServiceKey(cluster, name), svc); isNotFound(err) {
			out.Failures = append(out.Failures, spec.Failure{Arn: spec.Str(a.serviceARN(cluster, name)), Reason: spec.Str("MISSING")})
			continue
		} else if err != nil {
			return nil, err
		}
		v, err := a.serviceView(ctx, svc, r.Include)
		if err != nil {
			return nil, err
		}
		out.Services = append(out.Services, v)
	}
	return out, nil
}

// ListServices lists the ARNs of a cluster's services that are not INACTIVE.
func (a *API) ListServices(ctx context.Context, r *spec.ListServicesRequest) (*spec.ListServicesResponse, error) {
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	cl, err := a.cluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	cluster := spec.Val(cl.ClusterName)
	arns, next, err := listPage(ctx, a.Store, state.ServicePrefix(cluster), r.NextToken, limit, func(svc *state.ServiceRecord) (string, bool) {
		if spec.Val(svc.Status) == "INACTIVE" || (r.LaunchType != nil && spec.Val(svc.LaunchType) != *r.LaunchType) ||
			(r.SchedulingStrategy != nil && spec.Val(svc.SchedulingStrategy) != *r.SchedulingStrategy) {
			return "", false
		}
		return spec.Val(svc.ServiceArn), true
	})
	return &spec.ListServicesResponse{ServiceArns: arns, NextToken: next}, err
}

// UpdateService changes the desired count, task definition, deployment
// configuration or placement; a new task definition starts a deployment.
func (a *API) UpdateService(ctx context.Context, r *spec.UpdateServiceRequest) (*spec.UpdateServiceResponse, error) {
	if err := spec.ValidateNetworkConfiguration(r.NetworkConfiguration); err != nil {
		return nil, err
	}
	cluster, name, err := a.clusterService(ctx, r.Cluster, spec.Val(r.Service))
	if err != nil {
		return nil, err
	}
	if r.DesiredCount != nil && (*r.DesiredCount < 0 || *r.DesiredCount > MaxServiceTasks) {
		return nil, spec.InvalidParam("desiredCount must be between 0 and %d.", MaxServiceTasks)
	}
	var newTD string
	if r.TaskDefinition != nil {
		rec, _, err := a.loadTaskDef(ctx, *r.TaskDefinition)
		if err != nil {
			return nil, spec.InvalidParam("Unable to find task definition '%s'.", *r.TaskDefinition)
		}
		newTD = spec.Val(rec.TaskDefinition.TaskDefinitionArn)
	}
	now := spec.TS(a.Now())
	svc, err := state.Update(ctx, a.Store, state.ServiceKey(cluster, name), func(s *state.ServiceRecord) error {
		if spec.Val(s.Status) != "ACTIVE" {
			return spec.Exception("ServiceNotActiveException", "Service was not ACTIVE.")
		}
		if r.DesiredCount != nil {
			s.DesiredCount = r.DesiredCount
			s.Deployments[0].DesiredCount = r.DesiredCount
			s.SteadyReported = false
		}
		if r.DeploymentConfiguration != nil {
			dc, err := defaultDeploymentConfig(r.DeploymentConfiguration)
			if err != nil {
				return err
			}
			s.DeploymentConfiguration = dc
		}
		if r.PlacementConstraints != nil {
			s.PlacementConstraints = r.PlacementConstraints
		}
		if r.PlacementStrategy != nil {
			s.PlacementStrategy = r.PlacementStrategy
		}
		netChanged := r.NetworkConfiguration != nil && !sameJSON(r.NetworkConfiguration, s.NetworkConfiguration)
		if netChanged {
			s.NetworkConfiguration = r.NetworkConfiguration
		}
		if (newTD != "" && newTD != spec.Val(s.TaskDefinition)) || spec.Val(r.ForceNewDeployment) || netChanged {
			if newTD == "" {
				newTD = spec.Val(s.TaskDefinition)
			}
			s.PreviousTaskDefinition = spec.Val(s.TaskDefinition)
			s.TaskDefinition = spec.Str(newTD)
			for i := range s.Deployments {
				s.Deployments[i].Status = spec.Str("ACTIVE")
			}
			d := service.NewDeployment(newTD, spec.Val(s.DesiredCount), now, spec.Val(s.LaunchType))
			if s.LaunchType == nil {
				d.LaunchType = nil
			}
			d.NetworkConfiguration, d.CapacityProviderStrategy = s.NetworkConfiguration, s.CapacityProviderStrategy
			d.PlatformVersion, d.PlatformFamily = s.PlatformVersion, s.PlatformFamily
			if r.VolumeConfigurations != nil {
				d.VolumeConfigurations = r.VolumeConfigurations
			} else if len(s.Deployments) > 0 {
				d.VolumeConfigurations = s.Deployments[0].VolumeConfigurations
			}
			s.Deployments = append([]spec.Deployment{d}, s.Deployments...)
			s.SteadyReported = false
		}
		return nil
	})
	if isNotFound(err) {
		return nil, spec.Exception("ServiceNotFoundException", "Service not found.")
	} else if err != nil {
		return nil, err
	}
	v, err := a.serviceView(ctx, svc, nil)
	if err != nil {
		return nil, err
	}
	return &spec.UpdateServiceResponse{Service: &v}, nil
}

// DeleteService drains a service; with force it needs no scale-down first.
func (a *API) DeleteService(ctx context.Context, r *spec.DeleteServiceRequest) (*spec.DeleteServiceResponse, error) {
	cluster, name, err := a.clusterService(ctx, r.Cluster, spec.Val(r.Service))
	if err != nil {
		return nil, err
	}
	svc, err := state.Update(ctx, a.Store, state.ServiceKey(cluster, name), func(s *state.ServiceRecord) error {
		if spec.Val(s.Status) != "ACTIVE" {
			return spec.Exception("ServiceNotActiveException", "Service was not ACTIVE.")
		}
		if spec.Val(s.DesiredCount) > 0 && !spec.Val(r.Force) {
			return spec.InvalidParam("The service cannot be stopped while it is scaled above 0.")
		}
		s.Status = spec.Str("DRAINING")
		s.DesiredCount = spec.I32(0)
		return nil
	})
	if isNotFound(err) {
		return nil, spec.Exception("ServiceNotFoundException", "Service not found.")
	} else if err != nil {
		return nil, err
	}
	v, err := a.serviceView(ctx, svc, nil)
	if err != nil {
		return nil, err
	}
	return &spec.DeleteServiceResponse{Service: &v}, nil
}

func hasEFS(td *spec.TaskDefinition) bool {
	for _, v := range td.Volumes {
		if v.EfsVolumeConfiguration != nil {
			return true
		}
	}
	return false
}

// sameJSON reports whether two values encode alike.
func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
