package state

import (
	"time"

	"github.com/berth-project/berth/internal/agentapi"
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
	BlockVolumes []agentapi.TaskBlockVolume `json:"berthBlockVolumes,omitempty"`
	// Network is an awsvpc task's configuration as launched (its
	// security groups are recorded here; Berth does not enforce them).
	Network *spec.AwsVpcConfiguration `json:"berthNetwork,omitempty"`
	// PullProgress is how far the agent's image pull got, while it pulls.
	PullProgress string `json:"berthPullProgress,omitempty"`
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

// MemberTokenRecord is a token a new server's etcd member joins the
// cluster with: used once, and not after ExpiresAt.
type MemberTokenRecord struct {
	ID           string    `json:"id"`
	SecretSHA256 string    `json:"secretSha256"`
	CreatedAt    time.Time `json:"createdAt"`
	ExpiresAt    time.Time `json:"expiresAt"`
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
