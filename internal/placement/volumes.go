package placement

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// BlockVolume is a configuredAtLaunch volume of a job: every task placed
// gets a new volume made from New, or the one task gets Existing, which
// was read at revision Rev.
type BlockVolume struct {
	Name     string           // the task definition's volume name
	New      *agentapi.Volume // size, type, file system, snapshot, tags…; the applier fills the rest
	Existing *agentapi.Volume
	Rev      int64
}

// attachVolumes creates or attaches the job's block volumes for the placed
// tasks, in the placement's transaction: a new volume is guarded on its
// key being absent and claims its data residency on the task's instance;
// an existing one is guarded on its revision. Each attachment gets a new
// epoch (agentapi.Volume.Attach); the task records name their volumes.
func attachVolumes(job *Job, tasks []*state.TaskRecord, insts map[string]*state.InstanceRecord, now time.Time) ([]clientv3.Cmp, []clientv3.Op) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, t := range tasks {
		inst := insts[t.InstanceID]
		zone := ""
		for _, at := range inst.Attributes {
			if spec.Val(at.Name) == "ecs.availability-zone" {
				zone = spec.Val(at.Value)
			}
		}
		for _, b := range job.BlockVolumes {
			var v *agentapi.Volume
			if b.New != nil {
				cp := *b.New
				v = &cp
				v.VolumeID = spec.VolumeID(newID())
				v.Cluster, v.Zone, v.InstanceID = job.Cluster, zone, t.InstanceID
				v.State, v.Managed, v.CreatedAt = "creating", true, spec.TS(now)
				key := state.VolumeKey(job.Cluster, v.VolumeID)
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
				ops = append(ops, clientv3.OpPut(state.ResidencyKey(job.Cluster, "block-volume/"+v.VolumeID), t.InstanceID))
			} else {
				cp := *b.Existing
				v = &cp
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(state.VolumeKey(job.Cluster, v.VolumeID)), "=", b.Rev))
				if v.State == "available" {
					v.State = "in-use"
				}
			}
			epoch := v.Attach(spec.Val(t.TaskArn), t.InstanceID)
			ops = append(ops, clientv3.OpPut(state.VolumeKey(job.Cluster, v.VolumeID), state.Marshal(v)))
			t.BlockVolumes = append(t.BlockVolumes, agentapi.TaskBlockVolume{Name: b.Name, VolumeID: v.VolumeID, Epoch: epoch})
			t.Attachments = append(t.Attachments, spec.Attachment{Id: spec.Str(newID()[:8] + "-" + v.VolumeID), Type: spec.Str("AmazonElasticBlockStorage"),
				Status: spec.Str("ATTACHING"), Details: []spec.KeyValuePair{
					{Name: spec.Str("volumeId"), Value: spec.Str(v.VolumeID)},
					{Name: spec.Str("volumeName"), Value: spec.Str(b.Name)},
					{Name: spec.Str("sizeInGiB"), Value: spec.Str(strconv.Itoa(v.SizeInGiB))},
					{Name: spec.Str("filesystemType"), Value: spec.Str(v.FilesystemType)},
					{Name: spec.Str("deleteOnTermination"), Value: spec.Str(strconv.FormatBool(v.DeleteOnTermination))},
				}})
		}
	}
	return cmps, ops
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
