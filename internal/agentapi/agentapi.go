// Package agentapi is the protocol between a server and its agents
// (Berth's own JSON endpoints under /berth/v1/agent/), and the block
// volume and snapshot records that cross it, which Berth's volume API
// (/berth/v1/volumes/, /berth/v1/snapshots/) also speaks. It imports no
// server package: an agent links no etcd code.
package agentapi

import (
	"fmt"

	"github.com/berth-project/berth/internal/spec"
)

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

// Volume is a block volume (EBS-like).
type Volume struct {
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

// Snapshot is a snapshot of a block volume: a manifest of chunks in
// the blob store.
type Snapshot struct {
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

// TasksRequest asks for the tasks placed on one instance.
type TasksRequest struct {
	Cluster           string `json:"cluster"`
	ContainerInstance string `json:"containerInstance"`
	// AfterRevision, when set, makes the call wait (up to WaitSeconds) until
	// a task of this instance changes after that revision.
	AfterRevision int64 `json:"afterRevision,omitempty"`
	WaitSeconds   int   `json:"waitSeconds,omitempty"`
}

// Task is one task with the definition it runs and its block volumes.
type Task struct {
	Task           spec.Task           `json:"task"`
	TaskDefinition spec.TaskDefinition `json:"taskDefinition"`
	BlockVolumes   []TaskBlockVolume   `json:"blockVolumes,omitempty"`
	Volumes        []Volume            `json:"volumes,omitempty"`
}

// TasksResponse lists, as of Revision, the instance's tasks that are
// not yet STOPPED, the block volumes it must create or delete, and the
// snapshots it must take.
type TasksResponse struct {
	Revision  int64      `json:"revision"`
	Tasks     []Task     `json:"tasks"`
	Volumes   []Volume   `json:"volumes,omitempty"`
	Snapshots []Snapshot `json:"snapshots,omitempty"`
}

// ResidencyRequest reports instance-local data an agent holds.
type ResidencyRequest struct {
	Cluster           string   `json:"cluster"`
	ContainerInstance string   `json:"containerInstance"`
	Keys              []string `json:"keys"`
}

// ResidencyResponse says, for each key, which instance holds it now.
type ResidencyResponse struct {
	Holders map[string]string `json:"holders"`
}

// TaskStateChange is SubmitTaskStateChange's request with Berth's agent
// extensions: health, which ECS agents report on another channel, and the
// stop code of a task that failed to start.
type TaskStateChange struct {
	spec.SubmitTaskStateChangeRequest
	Health          *string           `json:"berthHealthStatus,omitempty"`
	ContainerHealth map[string]string `json:"berthContainerHealth,omitempty"`
	StopCode        *string           `json:"berthStopCode,omitempty"`
	// Network is an awsvpc task's network interface once the agent has
	// brought it up.
	Network *TaskNetwork `json:"berthNetwork,omitempty"`
	// PullProgress says how far an image pull got ("pulling IMAGE: 45%
	// (12 of 26 MiB)").
	PullProgress *string `json:"berthPullProgress,omitempty"`
}

// TaskNetwork is the address an awsvpc task got on its instance.
type TaskNetwork struct {
	AttachmentID       string `json:"attachmentId"`
	PrivateIPv4Address string `json:"privateIPv4Address"`
	MACAddress         string `json:"macAddress"`
}

// NetworkBlock is the part of its zone's subnet an instance gives its
// awsvpc tasks: a /24 whose first address is the tasks' gateway.
type NetworkBlock struct {
	Cluster    string `json:"cluster"`
	InstanceID string `json:"containerInstanceId"`
	SubnetID   string `json:"subnetId"`
	Zone       string `json:"availabilityZone"`
	SubnetCIDR string `json:"subnetCidrBlock"`
	CIDR       string `json:"cidrBlock"`
	Gateway    string `json:"gateway"`
	Index      int    `json:"index"`
	// VPCCIDR is the range of every task address, of every subnet.
	VPCCIDR string `json:"vpcCidrBlock"`
	// HostAddress is the address other hosts reach the instance (and
	// so its block) at, as its agent reports it.
	HostAddress string `json:"hostAddress,omitempty"`
}

// RoutesResponse lists the blocks of an instance's cluster, for routes
// to the other instances' tasks.
type RoutesResponse struct {
	Blocks []NetworkBlock `json:"blocks"`
}

// NetworkRequest asks for the instance's block of task addresses, and
// says where other hosts reach the instance.
type NetworkRequest struct {
	Cluster           string `json:"cluster"`
	ContainerInstance string `json:"containerInstance"`
	HostAddress       string `json:"hostAddress,omitempty"`
}

// TaskSecretsRequest is an agent asking, as it starts a task placed on its
// instance, for the values of the task's container secrets and registry
// credentials. They are kept nowhere but in the containers' environment
// and the engine's pull.
type TaskSecretsRequest struct {
	Cluster           string `json:"cluster"`
	ContainerInstance string `json:"containerInstance"`
	Task              string `json:"task"`
}

// TaskSecretsResponse gives each container's secrets, by container name.
type TaskSecretsResponse struct {
	Containers map[string]ContainerSecrets `json:"containers"`
}

// ContainerSecrets are one container's secrets: environment variables,
// and credentials for pulling its image.
type ContainerSecrets struct {
	Env          map[string]string `json:"env,omitempty"`
	LogOptions   map[string]string `json:"logOptions,omitempty"` // logConfiguration.secretOptions
	RegistryUser string            `json:"registryUser,omitempty"`
	RegistryPass string            `json:"registryPassword,omitempty"`
}

// EFSMountRequest is an agent asking to mount one EFS volume of a task
// placed on its instance.
type EFSMountRequest struct {
	Cluster           string `json:"cluster"`
	ContainerInstance string `json:"containerInstance"`
	Task              string `json:"task"`
	Volume            string `json:"volume"`
}

// EFSMountResponse is what an agent gets to mount a task's EFS volume:
// a short-lived token for the mount process.
type EFSMountResponse struct {
	Token        string `json:"token"`
	FileSystemID string `json:"fileSystemId"`
	Zone         string `json:"zone"`
	TLS          bool   `json:"tls"`
	CA           string `json:"ca,omitempty"` // PEM of the server's CA, for TLS mounts
}

// CreateVolumeRequest creates a block volume in a zone.
type CreateVolumeRequest struct {
	Cluster        string     `json:"cluster"`
	Zone           string     `json:"availabilityZone"`
	SizeInGiB      *int32     `json:"sizeInGiB"`
	VolumeType     string     `json:"volumeType"`
	Iops           *int32     `json:"iops"`
	Throughput     *int32     `json:"throughput"`
	FilesystemType string     `json:"filesystemType"`
	SnapshotID     string     `json:"snapshotId"`
	Tags           []spec.Tag `json:"tags"`
}

// VolumesRequest names volumes (all when empty).
type VolumesRequest struct {
	Cluster   string   `json:"cluster"`
	VolumeIDs []string `json:"volumeIds"`
}

// VolumesResponse lists volumes.
type VolumesResponse struct {
	Volumes []Volume `json:"volumes"`
}

// SnapshotsRequest names snapshots (all when empty), or the volume to snapshot.
type SnapshotsRequest struct {
	Cluster     string   `json:"cluster"`
	VolumeID    string   `json:"volumeId,omitempty"`
	SnapshotIDs []string `json:"snapshotIds,omitempty"`
}

// SnapshotsResponse lists snapshots.
type SnapshotsResponse struct {
	Snapshots []Snapshot `json:"snapshots"`
}

// VolumeEventRequest is an agent's report about a volume it holds.
type VolumeEventRequest struct {
	Cluster           string `json:"cluster"`
	ContainerInstance string `json:"containerInstance"`
	VolumeID          string `json:"volumeId"`
	Event             string `json:"event"` // created, deleted, error
	Reason            string `json:"reason,omitempty"`
	// Epoch, for an attached volume, is the attachment the agent acts on;
	// a report with an older epoch than the volume's is refused.
	Epoch int64 `json:"epoch,omitempty"`
}

// SnapshotDoneRequest is an agent's report of a finished snapshot.
type SnapshotDoneRequest struct {
	Cluster       string `json:"cluster"`
	SnapshotID    string `json:"snapshotId"`
	Manifest      string `json:"manifest,omitempty"`
	UploadedBytes int64  `json:"uploadedBytes"`
	Error         string `json:"error,omitempty"`
}

// Attach gives v a new attachment to a task on an instance and returns
// its epoch. The epoch goes up by one with every attachment, so every
// earlier attachment is stale from here on (CheckEpoch). This is the only
// place an epoch is minted.
func (v *Volume) Attach(taskArn, instanceID string) int64 {
	v.Epoch++
	v.Attachment = &VolumeAttachment{TaskArn: taskArn, InstanceID: instanceID, Epoch: v.Epoch, Status: "ATTACHING"}
	return v.Epoch
}

// CheckEpoch is the block-volume fencing check, the one every path makes
// before acting on an attachment: the agent before it uses the volume for
// a task, the server before it takes an agent's report, the plan applier
// before it detaches. It returns nil while epoch is the volume's current
// one and, when taskArn is given, the current attachment is that task's.
//
// Epoch 0 names no attachment: an agent's report about an unattached
// volume's own life (created, deleted), which the caller guards by the
// volume's holding instance instead.
func (v *Volume) CheckEpoch(taskArn string, epoch int64) error {
	if epoch == 0 && taskArn == "" {
		return nil
	}
	if epoch != v.Epoch || (taskArn != "" && (v.Attachment == nil || v.Attachment.TaskArn != taskArn || v.Attachment.Epoch != epoch)) {
		return &StaleEpochError{VolumeID: v.VolumeID, Epoch: epoch, Current: v.Epoch}
	}
	return nil
}

// StaleEpochError refuses an act under an attachment that is no longer
// the volume's current one.
type StaleEpochError struct {
	VolumeID       string
	Epoch, Current int64
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("Attachment epoch %d of volume '%s' is stale; the current epoch is %d.", e.Epoch, e.VolumeID, e.Current)
}

// SMBRequest is an agent's poll for the SMB shares (FSx for Windows File
// Server file systems) it should serve: it reports the endpoints it
// serves and asks for mount grants for the shares it has not mounted.
type SMBRequest struct {
	Cluster           string `json:"cluster"`
	ContainerInstance string `json:"containerInstance"`
	// Capable says the host has Samba (smbd) and nss_wrapper: only then
	// is the agent given shares.
	Capable bool          `json:"capable"`
	Serving []SMBEndpoint `json:"serving,omitempty"`
	Mount   []string      `json:"mount,omitempty"`
}

// SMBEndpoint is one share an agent serves, at an address of its own.
type SMBEndpoint struct {
	FileSystemID string `json:"fileSystemId"`
	Address      string `json:"address"`
	Ready        bool   `json:"ready"`
}

// SMBResponse lists the shares the agent is to serve (it serves its
// zone's endpoint of each).
type SMBResponse struct {
	Shares []SMBShare `json:"shares"`
}

// SMBShare is one file system's share: its domain and users, and, when
// asked for, a grant to mount its file system.
type SMBShare struct {
	FileSystemID string            `json:"fileSystemId"`
	Domain       string            `json:"domain,omitempty"`
	Users        []SMBUser         `json:"users"`
	CapacityGiB  int32             `json:"capacityGiB"`
	Mount        *EFSMountResponse `json:"mount,omitempty"`
}

// SMBUser is a user of a share and its password.
type SMBUser struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}
