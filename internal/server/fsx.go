package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/fsx"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// agentSMB serves an agent's poll for the SMB shares it is to serve: its
// zone's endpoint of FSx file systems there that no other connected agent
// serves, with their users and, for those it asks, mount grants.
func (s *Server) agentSMB(ctx context.Context, r *agentapi.SMBRequest) (*agentapi.SMBResponse, error) {
	cluster, inst, err := s.API.ResolveInstance(ctx, r.Cluster, r.ContainerInstance)
	if err != nil {
		return nil, err
	}
	zone, err := s.agents.InstanceZone(ctx, cluster, inst)
	if err != nil {
		return nil, err
	}
	conn, err := s.client.Get(ctx, state.ConnKey(cluster, inst))
	if err != nil {
		return nil, err
	}
	out := &agentapi.SMBResponse{Shares: []agentapi.SMBShare{}}
	if len(conn.Kvs) == 0 || conn.Kvs[0].Lease == 0 || s.fsx == nil {
		return out, nil // not connected (yet): it serves nothing
	}
	recs, revoke, err := s.fsx.Serve(ctx, cluster, inst, zone, clientv3.LeaseID(conn.Kvs[0].Lease), r.Capable, r.Serving)
	if err != nil {
		return nil, err
	}
	for _, task := range revoke {
		// The previous holder's Samba, if it still runs, loses its
		// file system: it serves nothing, with its users or any other.
		if err := s.fs.RevokeTaskSessions(ctx, task); err != nil {
			return nil, err
		}
	}
	for _, rec := range recs {
		users, err := s.fsx.Users(ctx, rec)
		if err != nil {
			s.cfg.Log.Warn("FSx file system's users", "fs", rec.ID, "err", err)
			continue
		}
		sh := agentapi.SMBShare{FileSystemID: rec.ID, Domain: rec.Domain(), Users: users, CapacityGiB: rec.StorageCapacity}
		if slices.Contains(r.Mount, rec.ID) {
			if sh.Mount, err = s.issueMountToken(ctx, mountToken{FS: rec.ID, Zone: zone, FSx: true, Task: fsx.SessionTask(rec.ID, zone, cluster, inst)}); err != nil {
				return nil, err
			}
		}
		out.Shares = append(out.Shares, sh)
	}
	return out, nil
}

// fsxMount grants a task's FSx volume on a Linux instance: the backing
// file system mounted directly, after the task's credentials (its
// credentialsParameter) are checked against the share's users and domain,
// confined to the volume's rootDirectory.
func (s *Server) fsxMount(ctx context.Context, r *agentapi.EFSMountRequest) (*agentapi.EFSMountResponse, error) {
	cluster, inst, t, td, err := s.agents.TaskOnInstance(ctx, r.Cluster, r.ContainerInstance, r.Task)
	if err != nil {
		return nil, err
	}
	var cfg *spec.FSxWindowsFileServerVolumeConfiguration
	for _, v := range td.TaskDefinition.Volumes {
		if spec.Val(v.Name) == r.Volume && v.FsxWindowsFileServerVolumeConfiguration != nil {
			cfg = v.FsxWindowsFileServerVolumeConfiguration
		}
	}
	if cfg == nil {
		return nil, &spec.Error{Code: "AccessDeniedException", Message: "Task " + r.Task + " has no FSx volume '" + r.Volume + "'."}
	}
	if s.fsx == nil {
		return nil, &spec.Error{Code: "ClientException", Message: "This server has no secrets key, so it serves no FSx file systems."}
	}
	id := spec.Val(cfg.FileSystemId)
	rec, _, err := s.fsx.Get(ctx, id)
	if err != nil || rec.Deleting {
		return nil, &spec.Error{Code: "ClientException", Message: fmt.Sprintf("FSx file system %s does not exist.", id)}
	}
	zone, err := s.agents.InstanceZone(ctx, cluster, inst)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(rec.Zones(), zone) {
		return nil, &spec.Error{Code: "ClientException", Message: fmt.Sprintf("FSx file system %s has no file server in %s (its zones: %s).", id, zone, strings.Join(rec.Zones(), ", "))}
	}
	root, err := ShareRoot(spec.Val(cfg.RootDirectory))
	if err != nil {
		return nil, &spec.Error{Code: "ClientException", Message: err.Error()}
	}
	ac := cfg.AuthorizationConfig
	user, pass, err := s.secrets.Credentials(ctx, spec.Val(ac.CredentialsParameter))
	if err != nil {
		return nil, &spec.Error{Code: "ClientException", Message: "credentialsParameter: " + err.Error()}
	}
	if err := s.fsx.CheckCredentials(ctx, rec, spec.Val(ac.Domain), user, pass); err != nil {
		return nil, &spec.Error{Code: "AccessDeniedException", Message: err.Error()}
	}
	return s.issueMountToken(ctx, mountToken{FS: id, Task: spec.Val(t.TaskArn), Zone: zone, RootDir: root, FSx: true})
}

// ShareRoot turns an FSx volume's rootDirectory (share, share\dir or
// \share\dir, with either slash) into a path in the backing file system.
// The one share is named share.
func ShareRoot(rootDirectory string) (string, error) {
	parts := strings.FieldsFunc(rootDirectory, func(r rune) bool { return r == '\\' || r == '/' })
	if len(parts) == 0 || !strings.EqualFold(parts[0], fsx.ShareName) {
		return "", fmt.Errorf("rootDirectory %q names no share of the file system: its one share is %q (use %q or %q)", rootDirectory, fsx.ShareName, fsx.ShareName, fsx.ShareName+`\dir`)
	}
	for _, p := range parts[1:] {
		if p == "." || p == ".." {
			return "", fmt.Errorf("rootDirectory %q may not contain the names . and .. (it stays within the share)", rootDirectory)
		}
	}
	return "/" + strings.Join(parts[1:], "/"), nil
}

// FSxUserRequest adds, changes or removes a share's user.
type FSxUserRequest struct {
	FileSystemID string `json:"fileSystemId"`
	UserName     string `json:"userName"`
	Password     string `json:"password,omitempty"`
}

// FSxList is `berth fsx ls`.
type FSxList struct {
	FileSystems []fsx.Summary `json:"fileSystems"`
}

func (s *Server) fsxOrRefuse() (*fsx.API, error) {
	if s.fsx == nil {
		return nil, &spec.Error{Code: "ClientException", Message: "This server has no secrets key, so it serves no FSx file systems."}
	}
	return s.fsx, nil
}

func (s *Server) fsxList(ctx context.Context, _ *struct{}) (*FSxList, error) {
	f, err := s.fsxOrRefuse()
	if err != nil {
		return nil, err
	}
	l, err := f.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	return &FSxList{FileSystems: l}, nil
}

func (s *Server) fsxUserPut(ctx context.Context, r *FSxUserRequest) (*struct{}, error) {
	f, err := s.fsxOrRefuse()
	if err != nil {
		return nil, err
	}
	return &struct{}{}, fsxErr(f.SetUser(ctx, r.FileSystemID, r.UserName, r.Password))
}

func (s *Server) fsxUserDelete(ctx context.Context, r *FSxUserRequest) (*struct{}, error) {
	f, err := s.fsxOrRefuse()
	if err != nil {
		return nil, err
	}
	return &struct{}{}, fsxErr(f.DeleteUser(ctx, r.FileSystemID, r.UserName))
}

// fsxErr turns an FSx exception into the error Berth's own endpoints
// write.
func fsxErr(err error) error {
	var ae *awsjson.Error
	if errors.As(err, &ae) {
		return &spec.Error{Code: ae.Code, Message: ae.Message}
	}
	return err
}
