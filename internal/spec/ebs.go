package spec

import (
	"encoding/json"
	"fmt"
)

// EBS volume types and their limits, as ECS validates managedEBSVolume.
var ebsSize = map[string][2]int{
	"gp2": {1, 16384}, "gp3": {1, 16384}, "io1": {4, 16384}, "io2": {4, 65536},
	"st1": {125, 16384}, "sc1": {125, 16384}, "standard": {1, 1024},
}

// SnapshotInfo is what validation needs of a source snapshot.
type SnapshotInfo struct {
	SizeInGiB      int
	FilesystemType string
}

// ManagedVolume is a validated managedEBSVolume with defaults applied.
type ManagedVolume struct {
	SizeInGiB           int
	VolumeType          string
	Iops, Throughput    int
	FilesystemType      string
	SnapshotID          string
	DeleteOnTermination bool
	Tags                []Tag
}

// ValidateManagedEBS checks a managedEBSVolume as ECS does. snap is the
// source snapshot when SnapshotId is set (nil when it does not exist).
func ValidateManagedEBS(name string, c *TaskManagedEBSVolumeConfiguration, snap *SnapshotInfo) (*ManagedVolume, *Error) {
	if c == nil {
		return nil, InvalidParam("volumeConfigurations '%s' must have a managedEBSVolume.", name)
	}
	if Val(c.RoleArn) == "" {
		return nil, InvalidParam("The managedEBSVolume roleArn is required for volume '%s'.", name)
	}
	m := &ManagedVolume{VolumeType: Val(c.VolumeType), FilesystemType: Val(c.FilesystemType), SnapshotID: Val(c.SnapshotId), DeleteOnTermination: true}
	if m.VolumeType == "" {
		m.VolumeType = "gp3"
	}
	limits, ok := ebsSize[m.VolumeType]
	if !ok {
		return nil, InvalidParam("Invalid volumeType '%s'. Valid values: gp2, gp3, io1, io2, st1, sc1, standard.", m.VolumeType)
	}
	if m.FilesystemType == "" {
		m.FilesystemType = "xfs"
		if snap != nil {
			m.FilesystemType = snap.FilesystemType
		}
	}
	if m.FilesystemType != "xfs" && m.FilesystemType != "ext4" && m.FilesystemType != "ext3" {
		return nil, InvalidParam("Invalid filesystemType '%s'. Valid values for Linux: ext3, ext4, xfs.", m.FilesystemType)
	}
	if m.SnapshotID != "" {
		if snap == nil {
			return nil, InvalidParam("The snapshot '%s' does not exist.", m.SnapshotID)
		}
		if snap.FilesystemType != m.FilesystemType {
			return nil, InvalidParam("The filesystemType '%s' does not match the file system of snapshot '%s' (%s).", m.FilesystemType, m.SnapshotID, snap.FilesystemType)
		}
	}
	switch {
	case c.SizeInGiB != nil:
		m.SizeInGiB = int(*c.SizeInGiB)
	case snap != nil:
		m.SizeInGiB = snap.SizeInGiB
	default:
		return nil, InvalidParam("sizeInGiB is required for volume '%s' when no snapshotId is given.", name)
	}
	if m.SizeInGiB < limits[0] || m.SizeInGiB > limits[1] {
		return nil, InvalidParam("The sizeInGiB %d is not valid for volume type %s. Valid range: %d-%d GiB.", m.SizeInGiB, m.VolumeType, limits[0], limits[1])
	}
	if snap != nil && m.SizeInGiB < snap.SizeInGiB {
		return nil, InvalidParam("The sizeInGiB %d must be greater than or equal to the snapshot size (%d GiB).", m.SizeInGiB, snap.SizeInGiB)
	}
	iops := int(Val(c.Iops))
	switch m.VolumeType {
	case "io1", "io2":
		hi := 64000
		if m.VolumeType == "io2" {
			hi = 256000
		}
		if c.Iops == nil {
			return nil, InvalidParam("iops is required for volume type %s.", m.VolumeType)
		}
		if iops < 100 || iops > hi {
			return nil, InvalidParam("The iops %d is not valid for volume type %s. Valid range: 100-%d.", iops, m.VolumeType, hi)
		}
	case "gp3":
		if c.Iops == nil {
			iops = 3000
		} else if iops < 3000 || iops > 16000 {
			return nil, InvalidParam("The iops %d is not valid for volume type gp3. Valid range: 3000-16000.", iops)
		}
	default:
		if c.Iops != nil {
			return nil, InvalidParam("iops is not supported for volume type %s.", m.VolumeType)
		}
	}
	m.Iops = iops
	if c.Throughput != nil {
		if m.VolumeType != "gp3" {
			return nil, InvalidParam("throughput is only supported for volume type gp3.")
		}
		if t := int(*c.Throughput); t < 125 || t > 1000 {
			return nil, InvalidParam("The throughput %d is not valid. Valid range: 125-1000 MiB/s.", t)
		}
		m.Throughput = int(*c.Throughput)
	} else if m.VolumeType == "gp3" {
		m.Throughput = 125
	}
	if p := c.TerminationPolicy; p != nil && p.DeleteOnTermination != nil {
		m.DeleteOnTermination = *p.DeleteOnTermination
	}
	for _, ts := range c.TagSpecifications {
		if Val(ts.ResourceType) != "volume" {
			return nil, InvalidParam("Invalid tagSpecifications resourceType '%s'. Valid value: volume.", Val(ts.ResourceType))
		}
		m.Tags = append(m.Tags, ts.Tags...)
	}
	if err := ValidateTags(m.Tags); err != nil {
		return nil, err
	}
	return m, nil
}

// VolumeID formats a block volume id.
func VolumeID(hex string) string { return fmt.Sprintf("vol-%s", hex[:17]) }

// SnapshotID formats a snapshot id.
func SnapshotID(hex string) string { return fmt.Sprintf("snap-%s", hex[:17]) }

// ServiceVolumes turns a service's volumeConfigurations into the form a
// task's take (the same fields).
func ServiceVolumes(in []ServiceVolumeConfiguration) ([]TaskVolumeConfiguration, error) {
	if len(in) == 0 {
		return nil, nil
	}
	b, _ := json.Marshal(in)
	var out []TaskVolumeConfiguration
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}
