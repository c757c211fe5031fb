package efs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/vpc"
)

// API serves the EFS operations.
type API struct {
	FS      *fsmeta.Engine
	Region  string
	Account string
	// Address is shown as the mount targets' IP address: where mounts
	// reach the server.
	Address string
	Log     *slog.Logger
}

// Error is an EFS error: HTTP status, ErrorCode and Message.
type Error struct {
	Status int
	Code   string
	Msg    string
	Extra  map[string]string
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

func badRequest(format string, a ...any) *Error {
	return &Error{Status: 400, Code: "BadRequest", Msg: fmt.Sprintf(format, a...)}
}

func notFound(code, format string, a ...any) *Error {
	return &Error{Status: 404, Code: code, Msg: fmt.Sprintf(format, a...)}
}

func fsNotFound(id string) *Error {
	return notFound("FileSystemNotFound", "File system '%s' does not exist.", id)
}

func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]string{"ErrorCode": e.Code, "Message": e.Msg}
	for k, v := range e.Extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(body)
}

func (a *API) handle(status int, fn func(ctx context.Context, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := fn(r.Context(), r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				a.Log.Warn("EFS operation failed", "path", r.URL.Path, "err", err)
				e = &Error{Status: 500, Code: "InternalServerError", Msg: "Internal server error."}
				if m := state.QuorumMessage(err); m != "" {
					e.Msg = m
				}
			}
			writeError(w, e)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if out != nil {
			json.NewEncoder(w).Encode(out)
		}
	}
}

func decode(r *http.Request, v any) error {
	body, e := spec.ReadBody(r.Body, 1<<20)
	if e != nil {
		return badRequest("%s", e.Message)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("Unable to parse the request body: %v", err)
	}
	return nil
}

// Routes registers the EFS API on mux (wrapped by auth).
func (a *API) Routes(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	h := func(pattern string, status int, fn func(ctx context.Context, r *http.Request) (any, error)) {
		mux.Handle(pattern, auth(a.handle(status, fn)))
	}
	const v = "/2015-02-01"
	h("POST "+v+"/file-systems", 201, a.createFileSystem)
	h("GET "+v+"/file-systems", 200, a.describeFileSystems)
	h("PUT "+v+"/file-systems/{id}", 202, a.updateFileSystem)
	h("DELETE "+v+"/file-systems/{id}", 204, a.deleteFileSystem)
	h("PUT "+v+"/file-systems/{id}/policy", 200, a.putPolicy)
	h("GET "+v+"/file-systems/{id}/policy", 200, a.describePolicy)
	h("DELETE "+v+"/file-systems/{id}/policy", 200, a.deletePolicy)
	h("POST "+v+"/mount-targets", 200, a.createMountTarget)
	h("GET "+v+"/mount-targets", 200, a.describeMountTargets)
	h("DELETE "+v+"/mount-targets/{id}", 204, a.deleteMountTarget)
	h("POST "+v+"/access-points", 200, a.createAccessPoint)
	h("GET "+v+"/access-points", 200, a.describeAccessPoints)
	h("DELETE "+v+"/access-points/{id}", 204, a.deleteAccessPoint)
	h("POST "+v+"/resource-tags/{id}", 200, a.tagResource)
	h("DELETE "+v+"/resource-tags/{id}", 200, a.untagResource)
	h("GET "+v+"/resource-tags/{id}", 200, a.listTags)
	h("GET "+v+"/file-systems/{id}/lifecycle-configuration", 200, a.describeLifecycle)
	h("PUT "+v+"/file-systems/{id}/lifecycle-configuration", 200, a.putLifecycle)
	h("GET "+v+"/file-systems/{id}/backup-policy", 200, a.describeBackupPolicy)
	h("PUT "+v+"/file-systems/{id}/backup-policy", 200, a.putBackupPolicy)
	h("GET "+v+"/account-preferences", 200, a.describeAccountPreferences)
	h("PUT "+v+"/account-preferences", 200, a.putAccountPreferences)
	// Anything else under the API's root is an unknown operation, in
	// EFS's error shape rather than the mux's plain 404 or 405.
	mux.Handle(PathPrefix, auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: 404, Code: "UnknownOperationException", Msg: "Unknown operation " + r.Method + " " + r.URL.Path + "."})
	})))
}

// PathPrefix is the root of the EFS API's paths.
const PathPrefix = "/2015-02-01/"

// WriteAuthError answers a request that failed authentication as EFS
// does: 403 with the error's code.
func WriteAuthError(w http.ResponseWriter, code, msg string) {
	writeError(w, &Error{Status: 403, Code: code, Msg: msg})
}

func (a *API) ARN(kind, id string) string {
	return fmt.Sprintf("arn:aws:elasticfilesystem:%s:%s:%s/%s", a.Region, a.Account, kind, id)
}

var tokenRE = regexp.MustCompile(`^.{1,64}$`)

func checkTags(tags []fsmeta.Tag) error {
	if len(tags) > 50 {
		return badRequest("A resource can have at most 50 tags.")
	}
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 || strings.HasPrefix(t.Key, "aws:") {
			return badRequest("Invalid tag key or value: %q", t.Key)
		}
	}
	return nil
}

func nameOf(tags []fsmeta.Tag) string {
	for _, t := range tags {
		if t.Key == "Name" {
			return t.Value
		}
	}
	return ""
}

func (a *API) describe(ctx context.Context, f *fsmeta.FileSystem, lifecycle string) (*FileSystemDescription, error) {
	u, err := a.FS.Usage(ctx, f.ID, 5*time.Second)
	if err != nil {
		return nil, err
	}
	mts, err := a.FS.Client.Get(ctx, state.EFSMountTargetPrefix(f.ID), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	d := &FileSystemDescription{OwnerId: a.Account, CreationToken: f.CreationToken, FileSystemId: f.ID, FileSystemArn: a.ARN("file-system", f.ID),
		CreationTime: epoch(f.CreatedAt), LifeCycleState: lifecycle, Name: nameOf(f.Tags), NumberOfMountTargets: int(mts.Count),
		SizeInBytes:     FileSystemSize{Value: int64(u.Bytes), ValueInStandard: int64(u.Bytes), Timestamp: nowEpoch()},
		PerformanceMode: f.PerformanceMode, Encrypted: f.Encrypted, KmsKeyId: f.KmsKeyID, ThroughputMode: f.ThroughputMode,
		AvailabilityZoneName: f.Zone, Tags: f.Tags, FileSystemProtection: map[string]any{"ReplicationOverwriteProtection": "ENABLED"}}
	if d.Tags == nil {
		d.Tags = []fsmeta.Tag{}
	}
	if f.Zone != "" {
		d.AvailabilityZoneId = f.Zone
	}
	if f.ThroughputMode == "provisioned" {
		p := f.Provisioned
		d.ProvisionedThroughputInMibps = &p
	}
	return d, nil
}

func (a *API) createFileSystem(ctx context.Context, r *http.Request) (any, error) {
	var in struct {
		CreationToken                string
		PerformanceMode              string
		Encrypted                    bool
		KmsKeyId                     string
		ThroughputMode               string
		ProvisionedThroughputInMibps *float64
		AvailabilityZoneName         string
		Backup                       bool
		Tags                         []fsmeta.Tag
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if !tokenRE.MatchString(in.CreationToken) {
		return nil, badRequest("CreationToken must be 1 to 64 characters.")
	}
	if in.PerformanceMode == "" {
		in.PerformanceMode = "generalPurpose"
	}
	if in.ThroughputMode == "" {
		in.ThroughputMode = "bursting"
	}
	switch {
	case in.PerformanceMode != "generalPurpose" && in.PerformanceMode != "maxIO":
		return nil, badRequest("Invalid PerformanceMode %q.", in.PerformanceMode)
	case in.ThroughputMode != "bursting" && in.ThroughputMode != "provisioned" && in.ThroughputMode != "elastic":
		return nil, badRequest("Invalid ThroughputMode %q.", in.ThroughputMode)
	case in.ThroughputMode == "provisioned" && (in.ProvisionedThroughputInMibps == nil || *in.ProvisionedThroughputInMibps < 1):
		return nil, badRequest("ProvisionedThroughputInMibps is required with ThroughputMode provisioned.")
	case in.ThroughputMode != "provisioned" && in.ProvisionedThroughputInMibps != nil:
		return nil, badRequest("ProvisionedThroughputInMibps can be set only with ThroughputMode provisioned.")
	case in.ThroughputMode == "elastic" && in.PerformanceMode == "maxIO":
		return nil, badRequest("Elastic throughput is supported only with the General Purpose performance mode.")
	case in.AvailabilityZoneName != "" && in.PerformanceMode == "maxIO":
		return nil, badRequest("One Zone file systems support only the General Purpose performance mode.")
	case in.KmsKeyId != "" && !in.Encrypted:
		return nil, badRequest("KmsKeyId can be set only when Encrypted is true.")
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	f := &fsmeta.FileSystem{Name: nameOf(in.Tags), CreationToken: in.CreationToken, Tags: in.Tags, PerformanceMode: in.PerformanceMode,
		ThroughputMode: in.ThroughputMode, Encrypted: in.Encrypted, KmsKeyID: in.KmsKeyId, Zone: in.AvailabilityZoneName, Backup: in.Backup}
	if in.ProvisionedThroughputInMibps != nil {
		f.Provisioned = *in.ProvisionedThroughputInMibps
	}
	if f.Encrypted && f.KmsKeyID == "" {
		f.KmsKeyID = fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/elasticfilesystem", a.Region, a.Account)
	}
	created, err := a.FS.CreateFS(ctx, in.CreationToken, f)
	if errors.Is(err, fsmeta.ErrTokenUsed) {
		return nil, &Error{Status: 409, Code: "FileSystemAlreadyExists", Msg: fmt.Sprintf("File system '%s' already exists with creation token '%s'", created.ID, in.CreationToken),
			Extra: map[string]string{"FileSystemId": created.ID}}
	} else if err != nil {
		return nil, err
	}
	return a.describe(ctx, created, "creating")
}

func maxItems(r *http.Request, name string, def, limit int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > limit {
		return 0, badRequest("%s must be between 1 and %d.", name, limit)
	}
	return n, nil
}

func (a *API) describeFileSystems(ctx context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := maxItems(r, "MaxItems", 100, 100)
	if err != nil {
		return nil, err
	}
	var fss []*fsmeta.FileSystem
	switch {
	case q.Get("FileSystemId") != "":
		f, err := a.FS.GetFS(ctx, q.Get("FileSystemId"))
		if errors.Is(err, fsmeta.ErrNoFS) || err == nil && f.FSx {
			return nil, fsNotFound(q.Get("FileSystemId"))
		} else if err != nil {
			return nil, err
		}
		fss = append(fss, f)
	default:
		all, err := a.FS.ListFS(ctx)
		if err != nil {
			return nil, err
		}
		for _, f := range all {
			if f.FSx {
				continue // an FSx for Windows File Server file system
			}
			if tok := q.Get("CreationToken"); tok == "" || f.CreationToken == tok {
				fss = append(fss, f)
			}
		}
	}
	out := struct {
		Marker      string                   `json:"Marker,omitempty"`
		FileSystems []*FileSystemDescription `json:"FileSystems"`
		NextMarker  string                   `json:"NextMarker,omitempty"`
	}{Marker: q.Get("Marker"), FileSystems: []*FileSystemDescription{}}
	for _, f := range fss {
		if out.Marker != "" && f.ID < out.Marker {
			continue
		}
		if len(out.FileSystems) == limit {
			out.NextMarker = f.ID
			break
		}
		d, err := a.describe(ctx, f, "available")
		if err != nil {
			return nil, err
		}
		out.FileSystems = append(out.FileSystems, d)
	}
	return out, nil
}

func (a *API) getFS(ctx context.Context, id string) (*fsmeta.FileSystem, error) {
	f, err := a.FS.GetFS(ctx, id)
	if errors.Is(err, fsmeta.ErrNoFS) || err == nil && f.FSx {
		return nil, fsNotFound(id)
	}
	return f, err
}

func (a *API) update(ctx context.Context, id string, fn func(*fsmeta.FileSystem) error) (*fsmeta.FileSystem, error) {
	f, err := a.FS.UpdateFS(ctx, id, func(f *fsmeta.FileSystem) error {
		if f.FSx {
			return fsmeta.ErrNoFS // FSx's own, not an EFS file system
		}
		return fn(f)
	})
	if errors.Is(err, fsmeta.ErrNoFS) {
		return nil, fsNotFound(id)
	}
	return f, err
}

func (a *API) updateFileSystem(ctx context.Context, r *http.Request) (any, error) {
	var in struct {
		ThroughputMode               string
		ProvisionedThroughputInMibps *float64
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	f, err := a.update(ctx, r.PathValue("id"), func(f *fsmeta.FileSystem) error {
		mode := in.ThroughputMode
		if mode == "" {
			mode = f.ThroughputMode
		}
		switch {
		case mode != "bursting" && mode != "provisioned" && mode != "elastic":
			return badRequest("Invalid ThroughputMode %q.", mode)
		case mode == "provisioned" && in.ProvisionedThroughputInMibps == nil && f.Provisioned == 0:
			return badRequest("ProvisionedThroughputInMibps is required with ThroughputMode provisioned.")
		case mode != "provisioned" && in.ProvisionedThroughputInMibps != nil:
			return badRequest("ProvisionedThroughputInMibps can be set only with ThroughputMode provisioned.")
		case mode == "elastic" && f.PerformanceMode == "maxIO":
			return badRequest("Elastic throughput is supported only with the General Purpose performance mode.")
		}
		f.ThroughputMode = mode
		if in.ProvisionedThroughputInMibps != nil {
			f.Provisioned = *in.ProvisionedThroughputInMibps
		}
		if mode != "provisioned" {
			f.Provisioned = 0
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a.describe(ctx, f, "updating")
}

func (a *API) deleteFileSystem(ctx context.Context, r *http.Request) (any, error) {
	id := r.PathValue("id")
	f, err := a.getFS(ctx, id)
	if err != nil {
		return nil, err
	}
	guards, ops, err := AccessPointDeletes(ctx, a.FS.Client, id)
	if err != nil {
		return nil, err
	}
	err = a.FS.DeleteFS(ctx, id, f.CreationToken, guards, ops)
	switch {
	case errors.Is(err, fsmeta.ErrFSInUse):
		return nil, &Error{Status: 409, Code: "FileSystemInUse", Msg: fmt.Sprintf("File system '%s' has mount targets or mounts.", id)}
	case errors.Is(err, fsmeta.ErrNoFS):
		return nil, fsNotFound(id)
	}
	return nil, err
}

func (a *API) putPolicy(ctx context.Context, r *http.Request) (any, error) {
	var in struct {
		Policy                         string
		BypassPolicyLockoutSafetyCheck bool
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if _, err := ParsePolicy(in.Policy); err != nil {
		return nil, &Error{Status: 400, Code: "InvalidPolicyException", Msg: err.Error()}
	}
	f, err := a.update(ctx, r.PathValue("id"), func(f *fsmeta.FileSystem) error { f.Policy = in.Policy; return nil })
	if err != nil {
		return nil, err
	}
	return map[string]string{"FileSystemId": f.ID, "Policy": f.Policy}, nil
}

func (a *API) describePolicy(ctx context.Context, r *http.Request) (any, error) {
	f, err := a.getFS(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if f.Policy == "" {
		return nil, notFound("PolicyNotFound", "No policy found for file system '%s'.", f.ID)
	}
	return map[string]string{"FileSystemId": f.ID, "Policy": f.Policy}, nil
}

func (a *API) deletePolicy(ctx context.Context, r *http.Request) (any, error) {
	_, err := a.update(ctx, r.PathValue("id"), func(f *fsmeta.FileSystem) error { f.Policy = ""; return nil })
	return nil, err
}

func (a *API) createMountTarget(ctx context.Context, r *http.Request) (any, error) {
	var in struct {
		FileSystemId   string
		SubnetId       string
		IpAddress      string
		SecurityGroups []string
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	zone, ok := vpc.ZoneOfSubnet(in.SubnetId)
	if !ok {
		return nil, &Error{Status: 400, Code: "SubnetNotFound", Msg: fmt.Sprintf("Subnet '%s' does not exist: Berth's subnets are named subnet-ZONE.", in.SubnetId)}
	}
	f, err := a.getFS(ctx, in.FileSystemId)
	if err != nil {
		return nil, err
	}
	if f.Zone != "" && f.Zone != zone {
		return nil, &Error{Status: 400, Code: "AvailabilityZonesMismatch", Msg: fmt.Sprintf("One Zone file system '%s' is in %s, not %s.", f.ID, f.Zone, zone)}
	}
	mt := &MountTarget{OwnerId: a.Account, MountTargetId: "fsmt-" + newHex(17), FileSystemId: f.ID, SubnetId: in.SubnetId, LifeCycleState: "available",
		IpAddress: a.Address, NetworkInterfaceId: "eni-" + newHex(17), AvailabilityZoneId: zone, AvailabilityZoneName: zone, VpcId: vpc.ID}
	k := state.EFSMountTargetKey(f.ID, zone)
	resp, err := a.FS.Client.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(state.FSKey(f.ID)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
	).Then(clientv3.OpPut(k, marshal(mt)), clientv3.OpPut(state.EFSMountTargetIDKey(mt.MountTargetId), f.ID+"/"+zone)).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		if _, err := a.getFS(ctx, f.ID); err != nil {
			return nil, err
		}
		return nil, &Error{Status: 409, Code: "MountTargetConflict", Msg: fmt.Sprintf("File system '%s' already has a mount target in %s.", f.ID, zone)}
	}
	return mt, nil
}

// MountTargets lists a file system's mount targets.
func (a *API) MountTargets(ctx context.Context, fs string) ([]*MountTarget, error) {
	resp, err := a.FS.Client.Get(ctx, state.EFSMountTargetPrefix(fs), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []*MountTarget
	for _, kv := range resp.Kvs {
		mt := &MountTarget{}
		if json.Unmarshal(kv.Value, mt) == nil {
			out = append(out, mt)
		}
	}
	return out, nil
}

func (a *API) mountTargetByID(ctx context.Context, id string) (*MountTarget, error) {
	resp, err := a.FS.Client.Get(ctx, state.EFSMountTargetIDKey(id))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, notFound("MountTargetNotFound", "Mount target '%s' does not exist.", id)
	}
	fs, zone, _ := strings.Cut(string(resp.Kvs[0].Value), "/")
	r, err := a.FS.Client.Get(ctx, state.EFSMountTargetKey(fs, zone))
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return nil, notFound("MountTargetNotFound", "Mount target '%s' does not exist.", id)
	}
	mt := &MountTarget{}
	return mt, json.Unmarshal(r.Kvs[0].Value, mt)
}

func (a *API) describeMountTargets(ctx context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := maxItems(r, "MaxItems", 10, 100)
	if err != nil {
		return nil, err
	}
	var mts []*MountTarget
	switch {
	case q.Get("MountTargetId") != "":
		mt, err := a.mountTargetByID(ctx, q.Get("MountTargetId"))
		if err != nil {
			return nil, err
		}
		mts = append(mts, mt)
	case q.Get("FileSystemId") != "" || q.Get("AccessPointId") != "":
		fs := q.Get("FileSystemId")
		if ap := q.Get("AccessPointId"); ap != "" {
			p, err := a.AccessPoint(ctx, ap)
			if err != nil {
				return nil, err
			}
			fs = p.FileSystemId
		}
		if _, err := a.getFS(ctx, fs); err != nil {
			return nil, err
		}
		if mts, err = a.MountTargets(ctx, fs); err != nil {
			return nil, err
		}
	default:
		return nil, badRequest("One of FileSystemId, MountTargetId or AccessPointId is required.")
	}
	out := struct {
		Marker       string         `json:"Marker,omitempty"`
		MountTargets []*MountTarget `json:"MountTargets"`
		NextMarker   string         `json:"NextMarker,omitempty"`
	}{Marker: q.Get("Marker"), MountTargets: []*MountTarget{}}
	sort.Slice(mts, func(i, j int) bool { return mts[i].MountTargetId < mts[j].MountTargetId })
	for _, mt := range mts {
		if out.Marker != "" && mt.MountTargetId < out.Marker {
			continue
		}
		if len(out.MountTargets) == limit {
			out.NextMarker = mt.MountTargetId
			break
		}
		out.MountTargets = append(out.MountTargets, mt)
	}
	return out, nil
}

// deleteMountTarget removes a zone's mount target and ends the mounts
// made through it: their sessions are revoked.
func (a *API) deleteMountTarget(ctx context.Context, r *http.Request) (any, error) {
	mt, err := a.mountTargetByID(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if _, err := a.FS.Client.Txn(ctx).Then(clientv3.OpDelete(state.EFSMountTargetKey(mt.FileSystemId, mt.AvailabilityZoneName)),
		clientv3.OpDelete(state.EFSMountTargetIDKey(mt.MountTargetId))).Commit(); err != nil {
		return nil, err
	}
	return nil, a.FS.RevokeZoneSessions(ctx, mt.FileSystemId, mt.AvailabilityZoneName)
}

func newHex(n int) string {
	return strings.TrimPrefix(fsproto.NewChunkID(), "")[:n]
}
