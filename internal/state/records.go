package state

import (
	"time"

	"github.com/berth-project/berth/internal/spec"
)

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
	// AgentKey is the agent access key that registered the instance; only
	// it may obtain EFS mounts for the instance's tasks.
	AgentKey string `json:"berthAgentKey,omitempty"`
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
	// BlockVolumes are released (detached) in the transaction that stops the task.
	BlockVolumes []TaskBlockVolume `json:"berthBlockVolumes,omitempty"`
}

// TaskBlockVolume is a block volume attached to a task.
type TaskBlockVolume struct {
	Name     string `json:"name"` // task-definition volume name
	VolumeID string `json:"volumeId"`
	Epoch    int64  `json:"epoch"`
}

// VolumeAttachment is a block volume's one attachment, fenced by Epoch: an
// attachment with an older epoch than the volume's is stale and refused.
type VolumeAttachment struct {
	TaskArn    string `json:"taskArn"`
	InstanceID string `json:"instanceId"`
	Epoch      int64  `json:"epoch"`
	Status     string `json:"status"` // ATTACHING, ATTACHED
}

// VolumeRecord is a block volume (EBS-like).
type VolumeRecord struct {
	VolumeID            string            `json:"volumeId"`
	Cluster             string            `json:"cluster"`
	Zone                string            `json:"availabilityZone"`
	SizeInGiB           int               `json:"sizeInGiB"`
	VolumeType          string            `json:"volumeType"`
	Iops                int               `json:"iops,omitempty"`
	Throughput          int               `json:"throughput,omitempty"`
	FilesystemType      string            `json:"filesystemType"`
	State               string            `json:"state"` // creating, available, in-use, deleting, error
	StateReason         string            `json:"stateReason,omitempty"`
	InstanceID          string            `json:"containerInstanceId"` // where the data lives
	SnapshotID          string            `json:"snapshotId,omitempty"`
	Initialized         bool              `json:"initialized"` // image created on the instance
	Attachment          *VolumeAttachment `json:"attachment,omitempty"`
	Epoch               int64             `json:"epoch"`
	DeleteOnTermination bool              `json:"deleteOnTermination"`
	Managed             bool              `json:"managed"`
	Tags                []spec.Tag        `json:"tags,omitempty"`
	CreatedAt           *spec.Timestamp   `json:"createdAt"`
}

// SnapshotRecord is a snapshot of a block volume: a manifest of chunks in
// the blob store.
type SnapshotRecord struct {
	SnapshotID     string          `json:"snapshotId"`
	Cluster        string          `json:"cluster"`
	VolumeID       string          `json:"volumeId"`
	InstanceID     string          `json:"containerInstanceId"` // who takes it
	SizeInGiB      int             `json:"sizeInGiB"`
	FilesystemType string          `json:"filesystemType"`
	State          string          `json:"state"` // pending, completed, error
	StateReason    string          `json:"stateReason,omitempty"`
	Manifest       string          `json:"manifest,omitempty"`
	UploadedBytes  int64           `json:"uploadedBytes"`
	CreatedAt      *spec.Timestamp `json:"createdAt"`
	CompletedAt    *spec.Timestamp `json:"completedAt,omitempty"`
	// PreviousManifest is the manifest of the volume's latest completed
	// snapshot, sent to the agent with a pending snapshot; never stored.
	PreviousManifest string `json:"previousManifest,omitempty"`
}

// ServiceRecord is a stored service; runningCount and pendingCount are
// computed on read.
type ServiceRecord struct {
	spec.Service
	Cluster string `json:"berthCluster"`
	// PreviousTaskDefinition is what a circuit-breaker rollback returns to.
	PreviousTaskDefinition string `json:"berthPreviousTaskDefinition,omitempty"`
	// SteadyReported avoids repeating the steady-state event.
	SteadyReported bool `json:"berthSteadyReported,omitempty"`
}

// JoinTokenRecord is a token agents join the cluster with; only the
// SHA-256 of its secret is kept.
type JoinTokenRecord struct {
	ID           string    `json:"id"`
	SecretSHA256 string    `json:"secretSha256"`
	Description  string    `json:"description,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
}

// AgentKeyRecord holds the credentials an agent received when it joined.
// Cluster and Instance name the container instance the key registered: a
// key registers one instance (another only once that one is gone), and
// no other key may act for it.
type AgentKeyRecord struct {
	AccessKeyID string    `json:"accessKeyId"`
	Secret      string    `json:"secretAccessKey"`
	TokenID     string    `json:"tokenId"`
	Cluster     string    `json:"cluster,omitempty"`
	Instance    string    `json:"instance,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}
