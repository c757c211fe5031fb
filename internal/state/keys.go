package state

import "fmt"

// Every etcd key Berth writes is spelled here, and only here. Each prefix
// has one owning package, the only one that writes under it (others may
// read, as noted). ARCHITECTURE.md shows the same layout.

// Prefix is the root of every Berth key.
const Prefix = "/berth/v1/"

// ECS records. Owner: internal/ecs (the API edge), with task and instance
// placement fields written only by internal/placement.
func ClustersPrefix() string             { return Prefix + "clusters/" }
func ClusterKey(name string) string      { return ClustersPrefix() + name }
func FamilyKey(family string) string     { return Prefix + "families/" + family }
func TaskDefsPrefix() string             { return Prefix + "taskdefs/" }
func TaskDefPrefix(family string) string { return TaskDefsPrefix() + family + "/" }
func TaskDefKey(family string, rev int) string {
	return fmt.Sprintf("%s%010d", TaskDefPrefix(family), rev)
}
func InstancesPrefix() string                { return Prefix + "instances/" }
func InstancePrefix(cluster string) string   { return InstancesPrefix() + cluster + "/" }
func InstanceKey(cluster, id string) string  { return InstancePrefix(cluster) + id }
func TasksPrefix() string                    { return Prefix + "tasks/" }
func TaskPrefix(cluster string) string       { return TasksPrefix() + cluster + "/" }
func TaskKey(cluster, id string) string      { return TaskPrefix(cluster) + id }
func TokenKey(cluster, token string) string  { return Prefix + "tokens/" + cluster + "/" + token } // RunTask clientToken
func ServicePrefix(cluster string) string    { return Prefix + "services/" + cluster + "/" }
func ServiceKey(cluster, name string) string { return ServicePrefix(cluster) + name }

// Agents. conn/ keys live on an agent's lease (internal/ecs: registration
// and heartbeat); residency/ claims are written by internal/placement and
// internal/agentsrv (what an agent reports it holds).
func ConnPrefix(cluster string) string        { return Prefix + "conn/" + cluster + "/" }
func ConnKey(cluster, id string) string       { return ConnPrefix(cluster) + id }
func ResidencyPrefix(cluster string) string   { return Prefix + "residency/" + cluster + "/" }
func ResidencyKey(cluster, key string) string { return ResidencyPrefix(cluster) + key }

// Block volumes and snapshots. Owner: internal/volume; volumes are
// created and attached only in placement transactions (internal/placement).
func VolumePrefix(cluster string) string    { return Prefix + "volumes/" + cluster + "/" }
func VolumeKey(cluster, id string) string   { return VolumePrefix(cluster) + id }
func SnapshotsPrefix() string               { return Prefix + "snapshots/" }
func SnapshotPrefix(cluster string) string  { return SnapshotsPrefix() + cluster + "/" }
func SnapshotKey(cluster, id string) string { return SnapshotPrefix(cluster) + id }

// EFS records. Owner: internal/efs; mount targets are read by the launch
// (zones a task may run in), access points by internal/fsmeta (a mount's
// identity and root).
func EFSMountTargetPrefix(fs string) string      { return Prefix + "efs/mt/" + fs + "/" }
func EFSMountTargetKey(fs, zone string) string   { return EFSMountTargetPrefix(fs) + zone }
func EFSMountTargetIDKey(id string) string       { return Prefix + "efs/mtid/" + id }
func EFSAccessPointsPrefix() string              { return Prefix + "efs/ap/" }
func EFSAccessPointPrefix(fs string) string      { return EFSAccessPointsPrefix() + fs + "/" }
func EFSAccessPointKey(fs, id string) string     { return EFSAccessPointPrefix(fs) + id }
func EFSAccessPointIDKey(id string) string       { return Prefix + "efs/apid/" + id }
func EFSAccessPointTokenKey(token string) string { return Prefix + "efs/aptoken/" + token }

// EFSMountTokenKey holds a task mount's one-time token, by the token's
// SHA-256 (hex). Owner: internal/server (the agent's EFS mount endpoint).
func EFSMountTokenKey(sum string) string { return Prefix + "efs/tokens/" + sum }

// EFSTaskSessionKey records a shared file system session opened for a
// task, so the task's stop ends it. Owner: internal/fsmeta.
func EFSTaskSessionKey(taskID, sess string) string {
	return EFSTaskSessionsPrefix(taskID) + sess
}
func EFSTaskSessionsPrefix(taskID string) string { return Prefix + "efs/tasksess/" + taskID + "/" }

// Shared file systems. Owner: internal/fsmeta. Under fsm/ID/:
//
//	i/INO            inode (INO: 16 hex digits; root is 1)
//	i/INO/t          a directory's entry-change times
//	d/PARENT/NAME    directory entry
//	b/INO/BLK        slices of one 4 MiB block (BLK: 8 hex digits)
//	s/SESSION        session, on the session's lease
//	l/INO/SESSION    locks one session holds on one inode (session lease)
//	o/INO            orphan: nlink reached 0
//	h/INO/SESSION    an open, unlinked file's hold by a session (session lease)
//	gc               the chunk collector's mark
func FSKey(fs string) string                                 { return Prefix + "filesystems/" + fs }
func FSTokenKey(token string) string                         { return Prefix + "fstokens/" + token }
func FSMetaPrefix(fs string) string                          { return Prefix + "fsm/" + fs + "/" }
func hx(ino uint64) string                                   { return fmt.Sprintf("%016x", ino) }
func InodeKey(fs string, ino uint64) string                  { return FSMetaPrefix(fs) + "i/" + hx(ino) }
func DirTimesKey(fs string, ino uint64) string               { return InodeKey(fs, ino) + "/t" }
func DentryPrefix(fs string, parent uint64) string           { return FSMetaPrefix(fs) + "d/" + hx(parent) + "/" }
func DentryKey(fs string, parent uint64, name string) string { return DentryPrefix(fs, parent) + name }
func BlockPrefix(fs string, ino uint64) string               { return FSMetaPrefix(fs) + "b/" + hx(ino) + "/" }
func BlockKey(fs string, ino uint64, blk uint32) string {
	return fmt.Sprintf("%s%08x", BlockPrefix(fs, ino), blk)
}
func LockPrefix(fs string, ino uint64) string { return FSMetaPrefix(fs) + "l/" + hx(ino) + "/" }
func OrphanKey(fs string, ino uint64) string  { return FSMetaPrefix(fs) + "o/" + hx(ino) }
func HoldPrefix(fs string, ino uint64) string { return FSMetaPrefix(fs) + "h/" + hx(ino) + "/" }
func FSSessionKey(fs, sess string) string     { return FSMetaPrefix(fs) + "s/" + sess }
func FSGCKey(fs string) string                { return FSMetaPrefix(fs) + "gc" }

// FSChunkKeyKey holds the cluster's key for issued chunk ids. Owner:
// internal/fsmeta.
func FSChunkKeyKey() string { return Prefix + "fs-chunk-key" }

// Agents' join tokens and the credentials joining issued. Owner:
// internal/server (join endpoint, token commands).
func JoinTokenPrefix() string             { return Prefix + "jointokens/" }
func JoinTokenKey(id string) string       { return JoinTokenPrefix() + id }
func AgentKeyKey(accessKey string) string { return Prefix + "agentkeys/" + accessKey }

// The cluster's CA (certificate and key). Owner: internal/server.
func CAKey() string { return Prefix + "ca" }

// The embedded etcd members' peer CA (certificate and key), and the
// single-use tokens a new member joins with. Owner: internal/server.
func PeerCAKey() string               { return Prefix + "peer-ca" }
func MemberTokenPrefix() string       { return Prefix + "membertokens/" }
func MemberTokenKey(id string) string { return MemberTokenPrefix() + id }

// ControllerElection is the service controller's leader election.
// Owner: internal/server.
func ControllerElection() string { return Prefix + "election/controller" }

// Task networks (awsvpc). Owner: internal/vpc. Under vpc/:
//
//	subnets/ZONE            a subnet (one per zone) and its address range
//	subnetidx/NN            which zone holds subnet number NN
//	blocks/ZONE/NNN         which instance holds block NNN of a subnet
//	instances/CLUSTER/ID    an instance's block
func VPCSubnetsPrefix() string                 { return Prefix + "vpc/subnets/" }
func VPCSubnetKey(zone string) string          { return VPCSubnetsPrefix() + zone }
func VPCSubnetIndexKey(i int) string           { return fmt.Sprintf("%svpc/subnetidx/%02d", Prefix, i) }
func VPCBlocksPrefix(zone string) string       { return Prefix + "vpc/blocks/" + zone + "/" }
func VPCBlockKey(zone string, i int) string    { return fmt.Sprintf("%s%03d", VPCBlocksPrefix(zone), i) }
func VPCInstancesPrefix() string               { return Prefix + "vpc/instances/" }
func VPCInstanceKey(cluster, id string) string { return VPCInstancesPrefix() + cluster + "/" + id }

// ConsoleSessionKey holds a web console session (by its token's
// SHA-256), on a lease of the session's life. Owner: internal/console.
func ConsoleSessionKey(sum string) string { return Prefix + "console/sessions/" + sum }

// AccountSettingsKey holds the ECS account settings, every principal's
// and the account's defaults, in one record. Owner: internal/ecs.
func AccountSettingsKey() string { return Prefix + "account-settings" }

// Secrets Manager secrets and SSM parameters, sealed with the cluster's
// secrets key (kept outside etcd; SecretsKeyIDKey holds only its id, so a
// server with another key refuses to start). Owner: internal/secrets.
func SecretsKeyIDKey() string         { return Prefix + "secrets/key-id" }
func SecretsPrefix() string           { return Prefix + "secrets/sm/" }
func SecretKey(name string) string    { return SecretsPrefix() + name }
func ParametersPrefix() string        { return Prefix + "secrets/ssm/" }
func ParameterKey(name string) string { return ParametersPrefix() + name }

// FSx for Windows File Server file systems, and which instance serves
// each zone's SMB endpoint (a claim on that instance's connection lease).
// Owner: internal/fsx.
func FSxPrefix() string                     { return Prefix + "fsx/fs/" }
func FSxKey(id string) string               { return FSxPrefix() + id }
func FSxEndpointPrefix(id string) string    { return Prefix + "fsx/endpoints/" + id + "/" }
func FSxEndpointKey(id, zone string) string { return FSxEndpointPrefix(id) + zone }
func FSxEndpointsPrefix() string            { return Prefix + "fsx/endpoints/" }

// FSxHolderKey remembers (without a lease) which instance last served a
// zone's endpoint, so the next one can end its predecessor's mount.
// Owner: internal/fsx.
func FSxHolderPrefix(id string) string    { return Prefix + "fsx/holders/" + id + "/" }
func FSxHolderKey(id, zone string) string { return FSxHolderPrefix(id) + zone }
