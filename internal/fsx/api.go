// Package fsx is the FSx API for FileSystemType WINDOWS: SMB file systems
// in the manner of FSx for Windows File Server, each backed by a Berth
// shared file system of the same id (so its data lives where Berth's data
// lives), served over SMB by Samba on agents in the file system's zones
// (package agent, smb.go) and mounted directly by Linux tasks.
//
// Records live under state.FSxPrefix; which agent serves each zone is a
// claim on that agent's connection lease (endpoints.go), so a lost
// agent's zone passes to another agent there once its lease expires.
package fsx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/secrets"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/vpc"
)

// TargetPrefix is the X-Amz-Target prefix of FSx operations.
const TargetPrefix = "AWSSimbaAPIService_v20180301."

// ShareName is the one share of every file system, as FSx names it.
const ShareName = "share"

// API serves the FSx operations.
type API struct {
	Client  *clientv3.Client
	FS      *fsmeta.Engine
	Keys    *secrets.Keyring
	Secrets *secrets.API
	Region  string
	Account string
	Log     *slog.Logger
}

// Record is a file system as Berth keeps it. Passwords are sealed with
// the cluster's secrets key.
type Record struct {
	ID                 string         `json:"id"`
	Created            time.Time      `json:"created"`
	Token              string         `json:"clientRequestToken,omitempty"`
	StorageCapacity    int32          `json:"storageCapacity"`
	StorageType        string         `json:"storageType"`
	SubnetIDs          []string       `json:"subnetIds"`
	SecurityGroupIDs   []string       `json:"securityGroupIds,omitempty"`
	DeploymentType     string         `json:"deploymentType"`
	PreferredSubnetID  string         `json:"preferredSubnetId"`
	ThroughputCapacity int32          `json:"throughputCapacity"`
	ActiveDirectoryID  string         `json:"activeDirectoryId,omitempty"`
	SelfManaged        *SelfManagedAD `json:"selfManaged,omitempty"`
	Users              []User         `json:"users,omitempty"`
	Tags               []Tag          `json:"tags,omitempty"`
	KmsKeyID           string         `json:"kmsKeyId"`
	Backup             BackupSettings `json:"backup"`
	Aliases            []string       `json:"aliases,omitempty"`
	Deleting           bool           `json:"deleting,omitempty"`
	Available          bool           `json:"available,omitempty"`
}

// SelfManagedAD is the self-managed Active Directory configuration, less
// the password (sealed in Users).
type SelfManagedAD struct {
	DomainName                          string   `json:"domainName"`
	UserName                            string   `json:"userName,omitempty"`
	DnsIps                              []string `json:"dnsIps"`
	OrganizationalUnitDistinguishedName string   `json:"ou,omitempty"`
	FileSystemAdministratorsGroup       string   `json:"adminGroup,omitempty"`
	DomainJoinServiceAccountSecret      string   `json:"serviceAccountSecret,omitempty"`
}

// User is one of the share's users, its password sealed.
type User struct {
	Name   string `json:"name"`
	Sealed []byte `json:"sealed"`
}

// BackupSettings are recorded and shown; Berth takes no FSx backups.
type BackupSettings struct {
	RetentionDays    int32  `json:"retentionDays"`
	DailyStart       string `json:"dailyStart,omitempty"`
	WeeklyMaintStart string `json:"weeklyMaintenanceStart,omitempty"`
	CopyTags         bool   `json:"copyTags,omitempty"`
}

// Tag is an FSx tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// Zones are the zones of the file system's subnets, preferred first.
func (r *Record) Zones() []string {
	var out []string
	if z, ok := vpc.ZoneOfSubnet(r.PreferredSubnetID); ok {
		out = append(out, z)
	}
	for _, s := range r.SubnetIDs {
		if z, ok := vpc.ZoneOfSubnet(s); ok && !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	return out
}

// Domain is the share's domain: the self-managed directory's name, or
// "" for an AWS Managed AD, whose name Berth cannot know.
func (r *Record) Domain() string {
	if r.SelfManaged != nil {
		return r.SelfManaged.DomainName
	}
	return ""
}

// Service returns the FSx service.
func (a *API) Service() *awsjson.Service {
	return &awsjson.Service{Prefix: TargetPrefix, InternalError: "InternalServerError", Log: a.Log, MaxBody: 1 << 20,
		Ops: map[string]awsjson.Op{
			"CreateFileSystem":    awsjson.Handle(a.CreateFileSystem),
			"DescribeFileSystems": awsjson.Handle(a.DescribeFileSystems),
			"UpdateFileSystem":    awsjson.Handle(a.UpdateFileSystem),
			"DeleteFileSystem":    awsjson.Handle(a.DeleteFileSystem),
			"TagResource":         awsjson.Handle(a.TagResource),
			"UntagResource":       awsjson.Handle(a.UntagResource),
			"ListTagsForResource": awsjson.Handle(a.ListTagsForResource),
		}}
}

func badRequest(format string, args ...any) error {
	return &awsjson.Error{Code: "BadRequest", Message: fmt.Sprintf(format, args...)}
}

func incompatible(param, format string, args ...any) error {
	return &awsjson.Error{Code: "IncompatibleParameterError", Message: fmt.Sprintf(format, args...), Fields: map[string]string{"Parameter": param}}
}

func badNetwork(subnet, format string, args ...any) error {
	e := &awsjson.Error{Code: "InvalidNetworkSettings", Message: fmt.Sprintf(format, args...)}
	if subnet != "" {
		e.Fields = map[string]string{"InvalidSubnetId": subnet}
	}
	return e
}

func validation(format string, args ...any) error {
	return &awsjson.Error{Code: "ValidationException", Message: fmt.Sprintf(format, args...)}
}

func notFound(id string) error {
	return &awsjson.Error{Code: "FileSystemNotFound", Message: fmt.Sprintf("File system '%s' does not exist.", id)}
}

// ARN is a file system's ARN.
func (a *API) ARN(id string) string {
	return fmt.Sprintf("arn:aws:fsx:%s:%s:file-system/%s", a.Region, a.Account, id)
}

var (
	throughputs   = []int32{8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4608, 6144, 9216, 12288}
	adIDRE        = regexp.MustCompile(`^d-[0-9a-f]{10}$`)
	domainRE      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)+[A-Za-z0-9-]{1,63}$|^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)
	hhmmRE        = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)
	weeklyRE      = regexp.MustCompile(`^[1-7]:([01]\d|2[0-3]):[0-5]\d$`)
	tokenRE       = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,63}$`)
	userNameRE    = regexp.MustCompile(`^[^\x00-\x1f"/\\\[\]:;|=,+*?<>@]{1,256}$`)
	errIdempotent = errors.New("idempotent")
)

// CreateFileSystemInput is CreateFileSystem's request (the WINDOWS part).
type CreateFileSystemInput struct {
	ClientRequestToken    string
	FileSystemType        string
	StorageCapacity       *int32
	StorageType           string
	SubnetIds             []string
	SecurityGroupIds      []string
	Tags                  []Tag
	KmsKeyId              string
	WindowsConfiguration  *WindowsConfigurationInput
	LustreConfiguration   json.RawMessage
	OntapConfiguration    json.RawMessage
	OpenZFSConfiguration  json.RawMessage
	FileSystemTypeVersion string
	NetworkType           string
}

// WindowsConfigurationInput is CreateFileSystemWindowsConfiguration.
type WindowsConfigurationInput struct {
	ActiveDirectoryId                       string
	SelfManagedActiveDirectoryConfiguration *SelfManagedADInput
	DeploymentType                          string
	PreferredSubnetId                       string
	ThroughputCapacity                      *int32
	WeeklyMaintenanceStartTime              string
	DailyAutomaticBackupStartTime           string
	AutomaticBackupRetentionDays            *int32
	CopyTagsToBackups                       bool
	Aliases                                 []string
	AuditLogConfiguration                   json.RawMessage
	DiskIopsConfiguration                   json.RawMessage
	FsrmConfiguration                       json.RawMessage
}

// SelfManagedADInput is SelfManagedActiveDirectoryConfiguration.
type SelfManagedADInput struct {
	DomainName                          string
	OrganizationalUnitDistinguishedName string
	FileSystemAdministratorsGroup       string
	UserName                            string
	Password                            *string
	DnsIps                              []string
	DomainJoinServiceAccountSecret      string
}

// CreateFileSystemOutput is CreateFileSystem's response.
type CreateFileSystemOutput struct{ FileSystem *FileSystem }

func (a *API) CreateFileSystem(ctx context.Context, in *CreateFileSystemInput) (*CreateFileSystemOutput, error) {
	rec, password, err := a.validateCreate(in)
	if err != nil {
		return nil, err
	}
	if rec.Token != "" {
		// The same token again returns the file system it made.
		all, err := a.list(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range all {
			if r.Token == rec.Token {
				fs, err := a.describe(ctx, r)
				return &CreateFileSystemOutput{FileSystem: fs}, err
			}
		}
	}
	rec.ID = "fs-0" + randomHex(16)
	rec.Created = time.Now()
	if rec.SelfManaged != nil && rec.SelfManaged.UserName != "" && password != nil {
		rec.Users = []User{{Name: rec.SelfManaged.UserName, Sealed: a.Keys.Seal(userContext(rec.ID, rec.SelfManaged.UserName), []byte(*password))}}
	}
	// The backing Berth file system has the same id; it is created first
	// so a record never names a file system that is not there.
	if _, err := a.FS.CreateFS(ctx, "", &fsmeta.FileSystem{ID: rec.ID, Name: "FSx " + rec.ID, FSx: true, Encrypted: true, KmsKeyID: rec.KmsKeyID,
		PerformanceMode: "generalPurpose", ThroughputMode: "provisioned", Provisioned: float64(rec.ThroughputCapacity)}); err != nil {
		return nil, err
	}
	if err := a.put(ctx, rec, 0); err != nil {
		return nil, err
	}
	fs, err := a.describe(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &CreateFileSystemOutput{FileSystem: fs}, nil
}

func userContext(fs, user string) string {
	return state.FSxKey(fs) + "\x00user\x00" + strings.ToLower(user)
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// validateCreate checks a CreateFileSystem request as FSx does and turns
// it into a record; nothing is written before it passes.
func (a *API) validateCreate(in *CreateFileSystemInput) (*Record, *string, error) {
	switch in.FileSystemType {
	case "WINDOWS":
	case "LUSTRE", "ONTAP", "OPENZFS":
		return nil, nil, badRequest("Berth serves FSx for Windows File Server only: FileSystemType %s is not supported.", in.FileSystemType)
	case "":
		return nil, nil, validation("1 validation error detected: Value null at 'fileSystemType' failed to satisfy constraint: Member must not be null")
	default:
		return nil, nil, validation("1 validation error detected: Value '%s' at 'fileSystemType' failed to satisfy constraint: Member must satisfy enum value set: [LUSTRE, ONTAP, OPENZFS, WINDOWS]", in.FileSystemType)
	}
	if in.LustreConfiguration != nil || in.OntapConfiguration != nil || in.OpenZFSConfiguration != nil {
		return nil, nil, incompatible("FileSystemType", "Only a WindowsConfiguration can be given for a WINDOWS file system.")
	}
	if in.ClientRequestToken != "" && !tokenRE.MatchString(in.ClientRequestToken) {
		return nil, nil, validation("1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 63 and match [A-za-z0-9_.-]")
	}
	w := in.WindowsConfiguration
	if w == nil {
		return nil, nil, &awsjson.Error{Code: "MissingFileSystemConfiguration", Message: "A WindowsConfiguration is required to create a WINDOWS file system."}
	}
	rec := &Record{Token: in.ClientRequestToken, StorageType: in.StorageType, SecurityGroupIDs: in.SecurityGroupIds, Tags: in.Tags,
		DeploymentType: w.DeploymentType, Aliases: w.Aliases, KmsKeyID: in.KmsKeyId}
	if rec.StorageType == "" {
		rec.StorageType = "SSD"
	}
	if rec.DeploymentType == "" {
		rec.DeploymentType = "SINGLE_AZ_1"
	}
	if rec.KmsKeyID == "" {
		rec.KmsKeyID = fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/fsx", a.Region, a.Account)
	}
	switch rec.DeploymentType {
	case "SINGLE_AZ_1", "SINGLE_AZ_2", "MULTI_AZ_1":
	default:
		return nil, nil, validation("1 validation error detected: Value '%s' at 'windowsConfiguration.deploymentType' failed to satisfy constraint: Member must satisfy enum value set: [MULTI_AZ_1, SINGLE_AZ_1, SINGLE_AZ_2]", rec.DeploymentType)
	}
	// Storage.
	if in.StorageCapacity == nil {
		return nil, nil, badRequest("StorageCapacity is required for a WINDOWS file system.")
	}
	rec.StorageCapacity = *in.StorageCapacity
	switch rec.StorageType {
	case "SSD":
		if rec.StorageCapacity < 32 || rec.StorageCapacity > 65536 {
			return nil, nil, badRequest("Storage capacity %d GiB is invalid: SSD storage for a WINDOWS file system is 32 to 65,536 GiB.", rec.StorageCapacity)
		}
	case "HDD":
		if rec.DeploymentType == "SINGLE_AZ_1" {
			return nil, nil, incompatible("StorageType", "HDD storage is supported only with the SINGLE_AZ_2 and MULTI_AZ_1 deployment types.")
		}
		if rec.StorageCapacity < 2000 || rec.StorageCapacity > 65536 {
			return nil, nil, badRequest("Storage capacity %d GiB is invalid: HDD storage for a WINDOWS file system is 2,000 to 65,536 GiB.", rec.StorageCapacity)
		}
	default:
		return nil, nil, validation("1 validation error detected: Value '%s' at 'storageType' failed to satisfy constraint: Member must satisfy enum value set: [SSD, HDD]", rec.StorageType)
	}
	// Throughput.
	if w.ThroughputCapacity == nil {
		return nil, nil, badRequest("ThroughputCapacity is required for a WINDOWS file system.")
	}
	rec.ThroughputCapacity = *w.ThroughputCapacity
	if err := checkThroughput(rec.ThroughputCapacity, rec.DeploymentType); err != nil {
		return nil, nil, err
	}
	// Network: subnets of Berth's VPC (subnet-ZONE), one per deployment
	// zone.
	if len(in.SubnetIds) == 0 {
		return nil, nil, badNetwork("", "SubnetIds is required.")
	}
	zones := map[string]bool{}
	for _, s := range in.SubnetIds {
		z, ok := vpc.ZoneOfSubnet(s)
		if !ok {
			return nil, nil, badNetwork(s, "The subnet ID '%s' does not exist (Berth's subnets are named subnet-ZONE).", s)
		}
		if zones[z] {
			return nil, nil, badNetwork(s, "Subnet %s is given twice, or two subnets are in zone %s.", s, z)
		}
		zones[z] = true
	}
	rec.SubnetIDs = in.SubnetIds
	switch rec.DeploymentType {
	case "MULTI_AZ_1":
		if len(in.SubnetIds) != 2 {
			return nil, nil, badNetwork(in.SubnetIds[min(2, len(in.SubnetIds)-1)], "A MULTI_AZ_1 file system takes exactly two subnets, in two Availability Zones; %d were given.", len(in.SubnetIds))
		}
		if w.PreferredSubnetId == "" {
			return nil, nil, badRequest("PreferredSubnetId is required for a MULTI_AZ_1 file system.")
		}
		if !slices.Contains(in.SubnetIds, w.PreferredSubnetId) {
			return nil, nil, badNetwork(w.PreferredSubnetId, "PreferredSubnetId %s is not one of the file system's SubnetIds.", w.PreferredSubnetId)
		}
		rec.PreferredSubnetID = w.PreferredSubnetId
	default:
		if len(in.SubnetIds) != 1 {
			return nil, nil, badNetwork(in.SubnetIds[1], "A %s file system takes exactly one subnet; %d were given.", rec.DeploymentType, len(in.SubnetIds))
		}
		if w.PreferredSubnetId != "" && w.PreferredSubnetId != in.SubnetIds[0] {
			return nil, nil, incompatible("PreferredSubnetId", "PreferredSubnetId is only for MULTI_AZ_1 file systems.")
		}
		rec.PreferredSubnetID = in.SubnetIds[0]
	}
	for _, sg := range in.SecurityGroupIds {
		if !strings.HasPrefix(sg, "sg-") {
			return nil, nil, &awsjson.Error{Code: "InvalidNetworkSettings", Message: fmt.Sprintf("The security group '%s' does not exist.", sg), Fields: map[string]string{"InvalidSecurityGroupId": sg}}
		}
	}
	// Active Directory: one of the two.
	var password *string
	switch {
	case w.ActiveDirectoryId != "" && w.SelfManagedActiveDirectoryConfiguration != nil:
		return nil, nil, incompatible("ActiveDirectoryId", "Specify either ActiveDirectoryId or SelfManagedActiveDirectoryConfiguration, not both.")
	case w.ActiveDirectoryId != "":
		if !adIDRE.MatchString(w.ActiveDirectoryId) {
			return nil, nil, &awsjson.Error{Code: "ActiveDirectoryError", Message: fmt.Sprintf("The directory ID %s is not valid.", w.ActiveDirectoryId),
				Fields: map[string]string{"ActiveDirectoryId": w.ActiveDirectoryId, "Type": "DOMAIN_NOT_FOUND"}}
		}
		rec.ActiveDirectoryID = w.ActiveDirectoryId
	case w.SelfManagedActiveDirectoryConfiguration != nil:
		sm := w.SelfManagedActiveDirectoryConfiguration
		if sm.DomainName == "" || !domainRE.MatchString(sm.DomainName) || len(sm.DomainName) > 255 {
			return nil, nil, badRequest("SelfManagedActiveDirectoryConfiguration.DomainName must be a fully qualified domain name, such as corp.example.com.")
		}
		if len(sm.DnsIps) < 1 || len(sm.DnsIps) > 3 {
			return nil, nil, badRequest("SelfManagedActiveDirectoryConfiguration.DnsIps takes one to three IP addresses.")
		}
		for _, ip := range sm.DnsIps {
			if addr, err := netip.ParseAddr(ip); err != nil || !addr.Is4() {
				return nil, nil, badRequest("DNS IP address %q is not an IPv4 address.", ip)
			}
		}
		switch {
		case sm.DomainJoinServiceAccountSecret != "" && (sm.UserName != "" || sm.Password != nil):
			return nil, nil, incompatible("DomainJoinServiceAccountSecret", "Specify either DomainJoinServiceAccountSecret or UserName and Password, not both.")
		case sm.DomainJoinServiceAccountSecret != "":
			if !strings.HasPrefix(sm.DomainJoinServiceAccountSecret, "arn:aws:secretsmanager:") {
				return nil, nil, badRequest("DomainJoinServiceAccountSecret must be a Secrets Manager secret ARN.")
			}
		case sm.UserName == "" || sm.Password == nil || *sm.Password == "":
			return nil, nil, badRequest("SelfManagedActiveDirectoryConfiguration needs UserName and Password, or DomainJoinServiceAccountSecret.")
		}
		if sm.UserName != "" && (!userNameRE.MatchString(sm.UserName) || strings.Contains(sm.UserName, " ")) {
			return nil, nil, badRequest("UserName %q is not a valid Active Directory user name.", sm.UserName)
		}
		rec.SelfManaged = &SelfManagedAD{DomainName: sm.DomainName, UserName: sm.UserName, DnsIps: sm.DnsIps,
			OrganizationalUnitDistinguishedName: sm.OrganizationalUnitDistinguishedName, FileSystemAdministratorsGroup: sm.FileSystemAdministratorsGroup,
			DomainJoinServiceAccountSecret: sm.DomainJoinServiceAccountSecret}
		password = sm.Password
	default:
		return nil, nil, badRequest("A WINDOWS file system needs an Active Directory: specify ActiveDirectoryId or SelfManagedActiveDirectoryConfiguration.")
	}
	// Backups and maintenance: recorded.
	rec.Backup = BackupSettings{RetentionDays: 7, DailyStart: w.DailyAutomaticBackupStartTime, WeeklyMaintStart: w.WeeklyMaintenanceStartTime, CopyTags: w.CopyTagsToBackups}
	if w.AutomaticBackupRetentionDays != nil {
		rec.Backup.RetentionDays = *w.AutomaticBackupRetentionDays
		if rec.Backup.RetentionDays < 0 || rec.Backup.RetentionDays > 90 {
			return nil, nil, badRequest("AutomaticBackupRetentionDays must be 0 to 90.")
		}
	}
	if rec.Backup.DailyStart != "" && !hhmmRE.MatchString(rec.Backup.DailyStart) {
		return nil, nil, badRequest("DailyAutomaticBackupStartTime must be HH:MM.")
	}
	if rec.Backup.WeeklyMaintStart != "" && !weeklyRE.MatchString(rec.Backup.WeeklyMaintStart) {
		return nil, nil, badRequest("WeeklyMaintenanceStartTime must be D:HH:MM, D from 1 (Monday) to 7.")
	}
	if rec.Backup.WeeklyMaintStart == "" {
		rec.Backup.WeeklyMaintStart = "1:05:00"
	}
	if rec.Backup.RetentionDays > 0 && rec.Backup.DailyStart == "" {
		rec.Backup.DailyStart = "05:00"
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, nil, err
	}
	return rec, password, nil
}

func checkThroughput(t int32, deployment string) error {
	if !slices.Contains(throughputs, t) {
		return badRequest("ThroughputCapacity %d MB/s is invalid: choose one of 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4608, 6144, 9216 or 12288.", t)
	}
	if deployment == "SINGLE_AZ_1" && t > 2048 {
		return badRequest("SINGLE_AZ_1 file systems support a ThroughputCapacity of at most 2048 MB/s.")
	}
	return nil
}

func checkTags(tags []Tag) error {
	if len(tags) > 50 {
		return validation("1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return validation("Tag keys are 1 to 128 characters and values up to 256.")
		}
	}
	return nil
}

func (a *API) put(ctx context.Context, rec *Record, rev int64) error {
	return state.New(a.Client).Put(ctx, state.FSxKey(rec.ID), rec, rev)
}

// Get reads a file system's record and revision.
func (a *API) Get(ctx context.Context, id string) (*Record, int64, error) {
	rec := &Record{}
	rev, err := state.New(a.Client).Get(ctx, state.FSxKey(id), rec)
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, notFound(id)
	}
	return rec, rev, err
}

func (a *API) list(ctx context.Context) ([]*Record, error) {
	resp, err := a.Client.Get(ctx, state.FSxPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, kv := range resp.Kvs {
		rec := &Record{}
		if json.Unmarshal(kv.Value, rec) == nil {
			out = append(out, rec)
		}
	}
	return out, nil
}

// update applies fn to a record until it is written without a race.
func (a *API) update(ctx context.Context, id string, fn func(*Record) error) (*Record, error) {
	rec, err := state.Update(ctx, state.New(a.Client), state.FSxKey(id), fn)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound(id)
	}
	return rec, err
}

// FileSystem is FSx's FileSystem shape (the WINDOWS members).
type FileSystem struct {
	OwnerId              string
	CreationTime         spec.Timestamp
	FileSystemId         string
	FileSystemType       string
	Lifecycle            string
	StorageCapacity      int32
	StorageType          string
	VpcId                string
	SubnetIds            []string
	NetworkInterfaceIds  []string
	DNSName              string `json:",omitempty"`
	KmsKeyId             string
	ResourceARN          string
	Tags                 []Tag
	WindowsConfiguration *WindowsConfiguration
	NetworkType          string
}

// WindowsConfiguration is WindowsFileSystemConfiguration.
type WindowsConfiguration struct {
	ActiveDirectoryId                       string                   `json:",omitempty"`
	SelfManagedActiveDirectoryConfiguration *SelfManagedADAttributes `json:",omitempty"`
	DeploymentType                          string
	RemoteAdministrationEndpoint            string `json:",omitempty"`
	PreferredSubnetId                       string
	PreferredFileServerIp                   string `json:",omitempty"`
	ThroughputCapacity                      int32
	MaintenanceOperationsInProgress         []string
	WeeklyMaintenanceStartTime              string
	DailyAutomaticBackupStartTime           string `json:",omitempty"`
	AutomaticBackupRetentionDays            int32
	CopyTagsToBackups                       bool
	Aliases                                 []Alias
}

// SelfManagedADAttributes is SelfManagedActiveDirectoryAttributes.
type SelfManagedADAttributes struct {
	DomainName                          string
	OrganizationalUnitDistinguishedName string `json:",omitempty"`
	FileSystemAdministratorsGroup       string `json:",omitempty"`
	UserName                            string `json:",omitempty"`
	DnsIps                              []string
	DomainJoinServiceAccountSecret      string `json:",omitempty"`
}

// Alias is a DNS alias of the file system.
type Alias struct {
	Name      string
	Lifecycle string
}

// describe turns a record into FSx's shape, with the live endpoints: the
// preferred zone's file server address (or, while it is down, the
// other's) as DNSName and RemoteAdministrationEndpoint. Berth runs no
// DNS, so the name is that address.
func (a *API) describe(ctx context.Context, rec *Record) (*FileSystem, error) {
	eps, err := a.Endpoints(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	fs := &FileSystem{OwnerId: a.Account, CreationTime: spec.Timestamp{Time: rec.Created}, FileSystemId: rec.ID, FileSystemType: "WINDOWS",
		StorageCapacity: rec.StorageCapacity, StorageType: rec.StorageType, VpcId: vpc.ID, SubnetIds: rec.SubnetIDs,
		NetworkInterfaceIds: []string{}, KmsKeyId: rec.KmsKeyID, ResourceARN: a.ARN(rec.ID), Tags: rec.Tags, NetworkType: "IPV4"}
	if fs.Tags == nil {
		fs.Tags = []Tag{}
	}
	w := &WindowsConfiguration{ActiveDirectoryId: rec.ActiveDirectoryID, DeploymentType: rec.DeploymentType, PreferredSubnetId: rec.PreferredSubnetID,
		ThroughputCapacity: rec.ThroughputCapacity, MaintenanceOperationsInProgress: []string{}, WeeklyMaintenanceStartTime: rec.Backup.WeeklyMaintStart,
		DailyAutomaticBackupStartTime: rec.Backup.DailyStart, AutomaticBackupRetentionDays: rec.Backup.RetentionDays, CopyTagsToBackups: rec.Backup.CopyTags, Aliases: []Alias{}}
	for _, al := range rec.Aliases {
		w.Aliases = append(w.Aliases, Alias{Name: al, Lifecycle: "AVAILABLE"})
	}
	if sm := rec.SelfManaged; sm != nil {
		w.SelfManagedActiveDirectoryConfiguration = &SelfManagedADAttributes{DomainName: sm.DomainName, OrganizationalUnitDistinguishedName: sm.OrganizationalUnitDistinguishedName,
			FileSystemAdministratorsGroup: sm.FileSystemAdministratorsGroup, UserName: sm.UserName, DnsIps: sm.DnsIps, DomainJoinServiceAccountSecret: sm.DomainJoinServiceAccountSecret}
	}
	zones := rec.Zones()
	var dns string
	for i, z := range zones {
		e, ok := eps[z]
		if !ok || e.Address == "" {
			continue
		}
		fs.NetworkInterfaceIds = append(fs.NetworkInterfaceIds, "eni-"+strings.ReplaceAll(e.Address, ".", "")+strings.TrimPrefix(rec.ID, "fs-")[:4])
		if i == 0 {
			w.PreferredFileServerIp = e.Address
		}
		if e.Ready && dns == "" {
			dns = e.Address
		}
	}
	fs.DNSName, w.RemoteAdministrationEndpoint = dns, dns
	switch {
	case rec.Deleting:
		fs.Lifecycle = "DELETING"
	case rec.Available:
		fs.Lifecycle = "AVAILABLE"
	default:
		fs.Lifecycle = "CREATING"
	}
	fs.WindowsConfiguration = w
	return fs, nil
}

// DescribeFileSystemsInput is DescribeFileSystems' request.
type DescribeFileSystemsInput struct {
	FileSystemIds []string
	MaxResults    *int32
	NextToken     string
}

// DescribeFileSystemsOutput is DescribeFileSystems' response.
type DescribeFileSystemsOutput struct {
	FileSystems []*FileSystem
	NextToken   string `json:",omitempty"`
}

func (a *API) DescribeFileSystems(ctx context.Context, in *DescribeFileSystemsInput) (*DescribeFileSystemsOutput, error) {
	limit := 2147483647
	if in.MaxResults != nil {
		if *in.MaxResults < 1 {
			return nil, validation("1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1")
		}
		limit = int(*in.MaxResults)
	}
	if len(in.FileSystemIds) > 50 {
		return nil, validation("1 validation error detected: Value at 'fileSystemIds' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	all, err := a.list(ctx)
	if err != nil {
		return nil, err
	}
	a.finishDeletes(ctx, all)
	byID := map[string]*Record{}
	for _, r := range all {
		byID[r.ID] = r
	}
	var recs []*Record
	if len(in.FileSystemIds) > 0 {
		for _, id := range in.FileSystemIds {
			r, ok := byID[id]
			if !ok {
				return nil, notFound(id)
			}
			recs = append(recs, r)
		}
	} else {
		recs = all
		sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	}
	out := &DescribeFileSystemsOutput{FileSystems: []*FileSystem{}}
	for _, r := range recs {
		if in.NextToken != "" && r.ID < in.NextToken {
			continue
		}
		if len(out.FileSystems) == limit {
			out.NextToken = r.ID
			break
		}
		fs, err := a.describe(ctx, r)
		if err != nil {
			return nil, err
		}
		out.FileSystems = append(out.FileSystems, fs)
	}
	return out, nil
}

// UpdateFileSystemInput is UpdateFileSystem's request.
type UpdateFileSystemInput struct {
	FileSystemId         string
	ClientRequestToken   string
	StorageCapacity      *int32
	WindowsConfiguration *struct {
		WeeklyMaintenanceStartTime              string
		DailyAutomaticBackupStartTime           string
		AutomaticBackupRetentionDays            *int32
		ThroughputCapacity                      *int32
		SelfManagedActiveDirectoryConfiguration *struct {
			UserName                            string
			Password                            *string
			DnsIps                              []string
			DomainName                          string
			OrganizationalUnitDistinguishedName string
			FileSystemAdministratorsGroup       string
			DomainJoinServiceAccountSecret      string
		}
		AuditLogConfiguration json.RawMessage
		DiskIopsConfiguration json.RawMessage
		FsrmConfiguration     json.RawMessage
	}
	LustreConfiguration  json.RawMessage
	OntapConfiguration   json.RawMessage
	OpenZFSConfiguration json.RawMessage
	StorageType          string
}

// UpdateFileSystemOutput is UpdateFileSystem's response.
type UpdateFileSystemOutput struct{ FileSystem *FileSystem }

func (a *API) UpdateFileSystem(ctx context.Context, in *UpdateFileSystemInput) (*UpdateFileSystemOutput, error) {
	if in.LustreConfiguration != nil || in.OntapConfiguration != nil || in.OpenZFSConfiguration != nil {
		return nil, incompatible("FileSystemType", "Only a WindowsConfiguration can be updated on a WINDOWS file system.")
	}
	if in.StorageCapacity == nil && in.WindowsConfiguration == nil && in.StorageType == "" {
		return nil, badRequest("Specify StorageCapacity, StorageType or WindowsConfiguration to update.")
	}
	rec, err := a.update(ctx, in.FileSystemId, func(rec *Record) error {
		if rec.Deleting {
			return badRequest("File system %s is being deleted.", rec.ID)
		}
		if c := in.StorageCapacity; c != nil {
			if *c < rec.StorageCapacity*11/10 {
				return badRequest("The new storage capacity must be at least 10 percent larger than the current storage capacity (%d GiB).", rec.StorageCapacity)
			}
			if *c > 65536 {
				return badRequest("Storage capacity %d GiB is invalid: at most 65,536 GiB.", *c)
			}
			rec.StorageCapacity = *c
		}
		if in.StorageType != "" && in.StorageType != rec.StorageType {
			if in.StorageType != "SSD" || rec.StorageType != "HDD" {
				return badRequest("Storage type can be changed only from HDD to SSD.")
			}
			rec.StorageType = "SSD"
		}
		w := in.WindowsConfiguration
		if w == nil {
			return nil
		}
		if t := w.ThroughputCapacity; t != nil {
			if err := checkThroughput(*t, rec.DeploymentType); err != nil {
				return err
			}
			rec.ThroughputCapacity = *t
		}
		if w.AutomaticBackupRetentionDays != nil {
			if *w.AutomaticBackupRetentionDays < 0 || *w.AutomaticBackupRetentionDays > 90 {
				return badRequest("AutomaticBackupRetentionDays must be 0 to 90.")
			}
			rec.Backup.RetentionDays = *w.AutomaticBackupRetentionDays
		}
		if w.DailyAutomaticBackupStartTime != "" {
			if !hhmmRE.MatchString(w.DailyAutomaticBackupStartTime) {
				return badRequest("DailyAutomaticBackupStartTime must be HH:MM.")
			}
			rec.Backup.DailyStart = w.DailyAutomaticBackupStartTime
		}
		if w.WeeklyMaintenanceStartTime != "" {
			if !weeklyRE.MatchString(w.WeeklyMaintenanceStartTime) {
				return badRequest("WeeklyMaintenanceStartTime must be D:HH:MM, D from 1 (Monday) to 7.")
			}
			rec.Backup.WeeklyMaintStart = w.WeeklyMaintenanceStartTime
		}
		if sm := w.SelfManagedActiveDirectoryConfiguration; sm != nil {
			if rec.SelfManaged == nil {
				return incompatible("SelfManagedActiveDirectoryConfiguration", "File system %s is joined to an AWS Managed Microsoft AD.", rec.ID)
			}
			if sm.DomainName != "" && !strings.EqualFold(sm.DomainName, rec.SelfManaged.DomainName) {
				return incompatible("DomainName", "A file system's domain cannot change.")
			}
			if len(sm.DnsIps) > 0 {
				for _, ip := range sm.DnsIps {
					if addr, err := netip.ParseAddr(ip); err != nil || !addr.Is4() {
						return badRequest("DNS IP address %q is not an IPv4 address.", ip)
					}
				}
				rec.SelfManaged.DnsIps = sm.DnsIps
			}
			if sm.DomainJoinServiceAccountSecret != "" {
				rec.SelfManaged.DomainJoinServiceAccountSecret = sm.DomainJoinServiceAccountSecret
				rec.SelfManaged.UserName = ""
				rec.Users = slices.DeleteFunc(rec.Users, func(u User) bool { return true })
			}
			if sm.UserName != "" || sm.Password != nil {
				if sm.UserName == "" || sm.Password == nil || *sm.Password == "" {
					return badRequest("UserName and Password are updated together.")
				}
				if !userNameRE.MatchString(sm.UserName) || strings.Contains(sm.UserName, " ") {
					return badRequest("UserName %q is not a valid Active Directory user name.", sm.UserName)
				}
				old := rec.SelfManaged.UserName
				rec.Users = slices.DeleteFunc(rec.Users, func(u User) bool { return strings.EqualFold(u.Name, old) || strings.EqualFold(u.Name, sm.UserName) })
				rec.SelfManaged.UserName = sm.UserName
				rec.SelfManaged.DomainJoinServiceAccountSecret = ""
				rec.Users = append(rec.Users, User{Name: sm.UserName, Sealed: a.Keys.Seal(userContext(rec.ID, sm.UserName), []byte(*sm.Password))})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := a.FS.UpdateFS(ctx, rec.ID, func(f *fsmeta.FileSystem) error { f.Provisioned = float64(rec.ThroughputCapacity); return nil }); err != nil {
		a.Log.Warn("recording an FSx file system's throughput on its Berth file system", "fs", rec.ID, "err", err)
	}
	fs, err := a.describe(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &UpdateFileSystemOutput{FileSystem: fs}, nil
}

// DeleteFileSystemInput is DeleteFileSystem's request.
type DeleteFileSystemInput struct {
	FileSystemId         string
	ClientRequestToken   string
	WindowsConfiguration *struct {
		SkipFinalBackup bool
		FinalBackupTags []Tag
	}
}

// DeleteFileSystemOutput is DeleteFileSystem's response.
type DeleteFileSystemOutput struct {
	FileSystemId    string
	Lifecycle       string
	WindowsResponse struct {
		FinalBackupId   string `json:",omitempty"`
		FinalBackupTags []Tag  `json:",omitempty"`
	}
}

// DeleteFileSystem marks the file system DELETING: its SMB endpoints stop
// and its agents unmount it; the file system and its data go once no
// mount holds it (finishDeletes). Berth takes no backups, so the final
// backup FSx would take is not taken; the response says none.
func (a *API) DeleteFileSystem(ctx context.Context, in *DeleteFileSystemInput) (*DeleteFileSystemOutput, error) {
	rec, err := a.update(ctx, in.FileSystemId, func(rec *Record) error {
		rec.Deleting = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := a.Client.Delete(ctx, state.FSxEndpointPrefix(rec.ID), clientv3.WithPrefix()); err != nil {
		return nil, err
	}
	a.finishDeletes(ctx, []*Record{rec})
	return &DeleteFileSystemOutput{FileSystemId: rec.ID, Lifecycle: "DELETING"}, nil
}

// finishDeletes removes file systems marked DELETING that no mount holds
// any more: the backing file system (and so its data) and the record.
func (a *API) finishDeletes(ctx context.Context, recs []*Record) {
	for _, r := range recs {
		if !r.Deleting {
			continue
		}
		if n, err := a.FS.Sessions(ctx, r.ID); err != nil || n > 0 {
			continue
		}
		err := a.FS.DeleteFS(ctx, r.ID, "", nil, []clientv3.Op{clientv3.OpDelete(state.FSxKey(r.ID)), clientv3.OpDelete(state.FSxEndpointPrefix(r.ID), clientv3.WithPrefix()),
			clientv3.OpDelete(state.FSxHolderPrefix(r.ID), clientv3.WithPrefix())})
		if errors.Is(err, fsmeta.ErrNoFS) {
			a.Client.Txn(ctx).Then(clientv3.OpDelete(state.FSxKey(r.ID)), clientv3.OpDelete(state.FSxHolderPrefix(r.ID), clientv3.WithPrefix())).Commit()
		} else if err != nil {
			a.Log.Debug("FSx file system not deleted yet", "fs", r.ID, "err", err)
		}
	}
}

// TagResourceInput is TagResource's request.
type TagResourceInput struct {
	ResourceARN string
	Tags        []Tag
}

// UntagResourceInput is UntagResource's request.
type UntagResourceInput struct {
	ResourceARN string
	TagKeys     []string
}

// ListTagsForResourceInput is ListTagsForResource's request.
type ListTagsForResourceInput struct {
	ResourceARN string
	MaxResults  *int32
	NextToken   string
}

// ListTagsForResourceOutput is ListTagsForResource's response.
type ListTagsForResourceOutput struct {
	Tags      []Tag
	NextToken string `json:",omitempty"`
}

// Empty is an empty response.
type Empty struct{}

func (a *API) resource(arn string) (string, error) {
	id, ok := strings.CutPrefix(arn, fmt.Sprintf("arn:aws:fsx:%s:%s:file-system/", a.Region, a.Account))
	if !ok {
		if strings.HasPrefix(arn, "arn:aws:fsx:") {
			return "", &awsjson.Error{Code: "ResourceDoesNotSupportTagging", Message: fmt.Sprintf("Resource %s does not support tagging.", arn), Fields: map[string]string{"ResourceARN": arn}}
		}
		return "", &awsjson.Error{Code: "NotServiceResourceError", Message: fmt.Sprintf("Resource %s is not an FSx resource.", arn), Fields: map[string]string{"ResourceARN": arn}}
	}
	return id, nil
}

func (a *API) tagged(ctx context.Context, arn string, fn func(*Record) error) error {
	id, err := a.resource(arn)
	if err != nil {
		return err
	}
	_, err = a.update(ctx, id, fn)
	var ae *awsjson.Error
	if errors.As(err, &ae) && ae.Code == "FileSystemNotFound" {
		return &awsjson.Error{Code: "ResourceNotFound", Message: fmt.Sprintf("Resource %s does not exist.", arn), Fields: map[string]string{"ResourceARN": arn}}
	}
	return err
}

func (a *API) TagResource(ctx context.Context, in *TagResourceInput) (*Empty, error) {
	if len(in.Tags) == 0 {
		return nil, validation("1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	return &Empty{}, a.tagged(ctx, in.ResourceARN, func(r *Record) error {
		for _, t := range in.Tags {
			if i := slices.IndexFunc(r.Tags, func(o Tag) bool { return o.Key == t.Key }); i >= 0 {
				r.Tags[i] = t
			} else {
				r.Tags = append(r.Tags, t)
			}
		}
		return checkTags(r.Tags)
	})
}

func (a *API) UntagResource(ctx context.Context, in *UntagResourceInput) (*Empty, error) {
	return &Empty{}, a.tagged(ctx, in.ResourceARN, func(r *Record) error {
		r.Tags = slices.DeleteFunc(r.Tags, func(t Tag) bool { return slices.Contains(in.TagKeys, t.Key) })
		return nil
	})
}

func (a *API) ListTagsForResource(ctx context.Context, in *ListTagsForResourceInput) (*ListTagsForResourceOutput, error) {
	var tags []Tag
	err := a.tagged(ctx, in.ResourceARN, func(r *Record) error {
		tags = r.Tags
		return errIdempotent // read only: nothing to write
	})
	if err != nil && !errors.Is(err, errIdempotent) {
		return nil, err
	}
	if tags == nil {
		tags = []Tag{}
	}
	return &ListTagsForResourceOutput{Tags: tags}, nil
}
