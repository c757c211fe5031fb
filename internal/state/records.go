package state

import "github.com/berth-project/berth/internal/spec"

// ClusterRecord is a stored cluster. Counts are computed on read.
type ClusterRecord struct {
	spec.Cluster
	CreatedRev int64 `json:"-"`
}

// FamilyRecord allocates revisions of a task-definition family.
type FamilyRecord struct {
	Last int `json:"last"`
}

// TaskDefRecord is a stored task definition with its tags.
type TaskDefRecord struct {
	TaskDefinition spec.TaskDefinition `json:"taskDefinition"`
	Tags           []spec.Tag          `json:"tags,omitempty"`
}

// InstanceRecord is a stored container instance. RemainingResources is kept
// exact by the transactions that place and release tasks.
type InstanceRecord struct {
	spec.ContainerInstance
	Cluster   string         `json:"berthCluster"`
	ID        string         `json:"berthId"`
	CPU       int            `json:"berthRemainingCpu"`
	Memory    int            `json:"berthRemainingMemory"`
	UsedPorts []string       `json:"berthUsedPorts,omitempty"`
	Groups    map[string]int `json:"berthGroups,omitempty"`
}

// Reservation is what a task holds on its instance until it stops.
type Reservation struct {
	CPU    int      `json:"cpu"`
	Memory int      `json:"memory"`
	Ports  []string `json:"ports,omitempty"`
}

// TaskRecord is a stored task.
type TaskRecord struct {
	spec.Task
	Cluster    string      `json:"berthCluster"`
	ID         string      `json:"berthId"`
	InstanceID string      `json:"berthInstanceId"`
	Reserved   Reservation `json:"berthReserved"`
	Released   bool        `json:"berthReleased,omitempty"`
}
