package ecs

import (
	"context"
	"errors"

	"github.com/berth-project/berth/internal/agentauth"
	"github.com/berth-project/berth/internal/launch"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// The service controller launches through these (controller.Launcher), so
// a service's tasks pass the same validation, placement and volume
// handling as RunTask's.

// Check validates a launch completely and writes nothing.
func (a *API) Check(ctx context.Context, in *launch.Input) error {
	_, err := a.prepare(ctx, in)
	return err
}

// Launch validates and places a launch: RunTask without its clientToken.
func (a *API) Launch(ctx context.Context, in *launch.Input) ([]*state.TaskRecord, []scheduler.Failure, error) {
	ls, err := a.prepare(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	ls.request.Candidates = in.Candidates
	return a.place(ctx, ls, "")
}

// place commits a prepared launch through the plan applier.
func (a *API) place(ctx context.Context, ls *launchSpec, token string) ([]*state.TaskRecord, []scheduler.Failure, error) {
	now := a.Now()
	tasks, fails, err := a.Applier.Run(ctx, &placement.Job{Cluster: spec.Val(ls.cluster.ClusterName), ClusterRev: ls.cluster.CreatedRev,
		Request: ls.request, Token: token,
		NewTask:      func(i int, inst *state.InstanceRecord) *state.TaskRecord { return a.newTask(ls, i, inst, now) },
		BlockVolumes: ls.block, Now: now})
	if errors.Is(err, placement.ErrClusterGone) {
		return nil, nil, spec.ErrClusterNotFound()
	}
	return tasks, fails, err
}

// TaskDefinition returns a registered task definition by ARN or
// family:revision.
func (a *API) TaskDefinition(ctx context.Context, ref string) (*state.TaskDefRecord, error) {
	rec, _, err := a.loadTaskDef(ctx, ref)
	return rec, err
}

// ResolveCluster resolves a cluster by name or ARN.
func (a *API) ResolveCluster(ctx context.Context, ref string) (string, error) {
	cl, err := a.cluster(ctx, &ref)
	if err != nil {
		return "", err
	}
	return spec.Val(cl.ClusterName), nil
}

// ResolveInstance resolves a cluster and one of its container instances
// (by id or ARN), and checks that the caller may act for the instance
// (agentauth.Owns).
func (a *API) ResolveInstance(ctx context.Context, clusterRef, ref string) (cluster, id string, err error) {
	if cluster, err = a.ResolveCluster(ctx, clusterRef); err != nil {
		return "", "", err
	}
	if id, err = a.instanceID(cluster, ref); err != nil {
		return "", "", err
	}
	return cluster, id, agentauth.Owns(ctx, a.Store, cluster, id)
}

// ResolveTask resolves a task of a cluster by id or ARN.
func (a *API) ResolveTask(cluster, ref string) (string, error) { return a.taskID(cluster, ref) }
