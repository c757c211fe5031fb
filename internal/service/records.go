package service

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/berth-project/berth/internal/spec"
)

// Stateful services (beyond ECS): a service tagged berth:stateful=true
// gives each task slot a stable identity, SERVICE-N, and its own block
// volume, created from the service's volumeConfigurations on the slot's
// first start and kept when the task stops or the service scales down. A
// replacement for slot N gets slot N's volume, on the instance (and so in
// the zone) that holds it; while that instance is lost, the slot waits.
// A stateful service may use an EFS volume instead (or as well): each slot
// then mounts its own directory SERVICE-N of the volume's root, made on
// its first start, wherever the slot runs.
const (
	StatefulTag = "berth:stateful"
	SlotTag     = "berth:slot"
	ServiceTag  = "berth:service"
	// SlotEnv is set in every container of a stateful service's task.
	SlotEnv = "BERTH_SERVICE_SLOT"
	// SnapshotIntervalTag (a duration, e.g. "1h") snapshots every slot's
	// volume on that schedule.
	SnapshotIntervalTag = "berth:snapshot-interval"
	// RestoreLostSlotsTag ("true") lets a slot whose instance is lost be
	// restored elsewhere from its latest snapshot instead of waiting.
	RestoreLostSlotsTag = "berth:restore-lost-slots"
	FormerSlotTag       = "berth:former-slot"
)

// TagValue returns the value of the tag key, if it is there.
func TagValue(tags []spec.Tag, key string) (string, bool) {
	for _, t := range tags {
		if spec.Val(t.Key) == key {
			return spec.Val(t.Value), true
		}
	}
	return "", false
}

// NewDeployment is a service's new PRIMARY deployment of a task definition.
func NewDeployment(td string, desired int32, now *spec.Timestamp, lt string) spec.Deployment {
	return spec.Deployment{Id: spec.Str("ecs-svc/" + newID()[:19]), Status: spec.Str("PRIMARY"), TaskDefinition: spec.Str(td),
		DesiredCount: spec.I32(desired), PendingCount: spec.I32(0), RunningCount: spec.I32(0), FailedTasks: spec.I32(0),
		CreatedAt: now, UpdatedAt: now, LaunchType: spec.Str(lt), RolloutState: spec.Str("IN_PROGRESS"),
		RolloutStateReason: spec.Str("ECS deployment " + "in progress.")}
}

// AddEvent records a service event, newest first, without repeating the
// newest message, keeping the last 100.
func AddEvent(s *spec.Service, now *spec.Timestamp, format string, args ...any) bool {
	msg := fmt.Sprintf("(service %s) ", spec.Val(s.ServiceName)) + fmt.Sprintf(format, args...)
	if len(s.Events) > 0 && spec.Val(s.Events[0].Message) == msg {
		return false
	}
	s.Events = append([]spec.ServiceEvent{{Id: spec.Str(newID()[:8] + "-" + newID()[:4]), CreatedAt: now, Message: spec.Str(msg)}}, s.Events...)
	if len(s.Events) > 100 {
		s.Events = s.Events[:100]
	}
	return true
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
