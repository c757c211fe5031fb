// Package efs serves the Amazon EFS API (restJson, 2015-02-01) over Berth's
// shared file systems: file systems, mount targets (one per zone), access
// points, file system policies and tags. Records are kept in etcd next to
// the file system's own (keys under efs/); the data plane is internal/fsmeta.
package efs

import (
	"encoding/json"
	"math"
	"time"

	"github.com/berth-project/berth/internal/fsmeta"
)

// FileSystemSize is the size EFS reports.
type FileSystemSize struct {
	Value           int64   `json:"Value"`
	Timestamp       float64 `json:"Timestamp"`
	ValueInStandard int64   `json:"ValueInStandard"`
	ValueInIA       int64   `json:"ValueInIA"`
	ValueInArchive  int64   `json:"ValueInArchive"`
}

// FileSystemDescription is EFS's view of a file system.
type FileSystemDescription struct {
	OwnerId                      string         `json:"OwnerId"`
	CreationToken                string         `json:"CreationToken"`
	FileSystemId                 string         `json:"FileSystemId"`
	FileSystemArn                string         `json:"FileSystemArn"`
	CreationTime                 float64        `json:"CreationTime"`
	LifeCycleState               string         `json:"LifeCycleState"`
	Name                         string         `json:"Name,omitempty"`
	NumberOfMountTargets         int            `json:"NumberOfMountTargets"`
	SizeInBytes                  FileSystemSize `json:"SizeInBytes"`
	PerformanceMode              string         `json:"PerformanceMode"`
	Encrypted                    bool           `json:"Encrypted"`
	KmsKeyId                     string         `json:"KmsKeyId,omitempty"`
	ThroughputMode               string         `json:"ThroughputMode"`
	ProvisionedThroughputInMibps *float64       `json:"ProvisionedThroughputInMibps,omitempty"`
	AvailabilityZoneName         string         `json:"AvailabilityZoneName,omitempty"`
	AvailabilityZoneId           string         `json:"AvailabilityZoneId,omitempty"`
	Tags                         []fsmeta.Tag   `json:"Tags"`
	FileSystemProtection         map[string]any `json:"FileSystemProtection"`
}

// MountTarget is a file system's mount target in one zone.
type MountTarget struct {
	OwnerId              string `json:"OwnerId"`
	MountTargetId        string `json:"MountTargetId"`
	FileSystemId         string `json:"FileSystemId"`
	SubnetId             string `json:"SubnetId"`
	LifeCycleState       string `json:"LifeCycleState"`
	IpAddress            string `json:"IpAddress,omitempty"`
	NetworkInterfaceId   string `json:"NetworkInterfaceId"`
	AvailabilityZoneId   string `json:"AvailabilityZoneId"`
	AvailabilityZoneName string `json:"AvailabilityZoneName"`
	VpcId                string `json:"VpcId"`
}

// PosixUser is the identity an access point enforces.
type PosixUser struct {
	Uid           *int64  `json:"Uid"`
	Gid           *int64  `json:"Gid"`
	SecondaryGids []int64 `json:"SecondaryGids,omitempty"`
}

// CreationInfo says how an access point's missing root is created.
type CreationInfo struct {
	OwnerUid    *int64 `json:"OwnerUid"`
	OwnerGid    *int64 `json:"OwnerGid"`
	Permissions string `json:"Permissions"`
}

// RootDirectory is an access point's root.
type RootDirectory struct {
	Path         string        `json:"Path,omitempty"`
	CreationInfo *CreationInfo `json:"CreationInfo,omitempty"`
}

// AccessPoint is an EFS access point.
type AccessPoint struct {
	ClientToken    string         `json:"ClientToken"`
	Name           string         `json:"Name,omitempty"`
	Tags           []fsmeta.Tag   `json:"Tags"`
	AccessPointId  string         `json:"AccessPointId"`
	AccessPointArn string         `json:"AccessPointArn"`
	FileSystemId   string         `json:"FileSystemId"`
	PosixUser      *PosixUser     `json:"PosixUser,omitempty"`
	RootDirectory  *RootDirectory `json:"RootDirectory,omitempty"`
	OwnerId        string         `json:"OwnerId"`
	LifeCycleState string         `json:"LifeCycleState"`
}

func epoch(ns int64) float64 {
	return math.Round(float64(ns)/1e6) / 1e3
}

func nowEpoch() float64 { return epoch(time.Now().UnixNano()) }

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
