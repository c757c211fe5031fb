// Package launch is the shape of a task launch that the ECS edge and the
// service controller share: what to launch (Input), and the transitions
// of a task record towards STOPPED. The edge carries a launch out
// (ecs.API.Launch: validation, placement, block volumes in the placement's
// transaction); the controller asks for one through controller.Launcher.
package launch

import (
	"time"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// AttachVolumeTagPrefix names a RunTask/StartTask tag that attaches an
// existing block volume to a configuredAtLaunch volume of the definition:
// berth:attach-volume:NAME = vol-….
const AttachVolumeTagPrefix = "berth:attach-volume:"

// Input is one launch: Count tasks of TaskDefinition in Cluster, as
// RunTask, StartTask or a service asks for them.
type Input struct {
	Cluster, TaskDefinition, Group, StartedBy, LaunchType *string
	Overrides                                             *spec.TaskOverride
	Tags                                                  []spec.Tag
	PropagateTags                                         *string
	Constraints                                           []spec.PlacementConstraint
	Strategies                                            []spec.PlacementStrategy
	VolumeConfigurations                                  []spec.TaskVolumeConfiguration
	Count                                                 int
	// Network is the awsvpc configuration (subnets, security groups) a
	// task definition in awsvpc mode needs.
	Network *spec.NetworkConfiguration
	// CapacityProviderStrategy chooses FARGATE or FARGATE_SPOT capacity,
	// instead of LaunchType.
	CapacityProviderStrategy []spec.CapacityProviderStrategyItem
	PlatformVersion          *string
	// Candidates, when set, are the only instances the tasks may go to
	// (StartTask; a daemon service's one instance).
	Candidates []string
}

// MarkStopping records that a task is to stop, and why; the agent stops it.
func MarkStopping(t *state.TaskRecord, now time.Time, code, reason string) {
	if spec.Val(t.DesiredStatus) == "STOPPED" {
		return
	}
	t.DesiredStatus = spec.Str("STOPPED")
	t.StopCode = spec.Str(code)
	t.StoppedReason = spec.Str(reason)
	t.StoppingAt = spec.TS(now)
	t.Version = spec.I64(spec.Val(t.Version) + 1)
}

// MarkStopped records that a task has stopped (its agent said so, or no
// agent is there to stop it).
func MarkStopped(t *state.TaskRecord, now time.Time) {
	t.LastStatus = spec.Str("STOPPED")
	t.StoppedAt = spec.TS(now)
	if t.ExecutionStoppedAt == nil {
		t.ExecutionStoppedAt = spec.TS(now)
	}
	for i := range t.Containers {
		t.Containers[i].LastStatus = spec.Str("STOPPED")
	}
	for i := range t.Attachments {
		if spec.Val(t.Attachments[i].Type) == "ElasticNetworkInterface" {
			t.Attachments[i].Status = spec.Str("DELETED")
		}
	}
}
