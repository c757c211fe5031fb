package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"syscall"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Mount tokens: a task's EFS mount authenticates with a token the agent of
// its instance obtained for that task and volume. The token names one file
// system and what the mount may do; it expires unused after
// mountTokenTTL, and once a session opens with it, it lives exactly as
// long as that session.
const mountTokenTTL = 600 // seconds

// MountTokenHeader carries a mount token.
const MountTokenHeader = "X-Berth-Mount-Token"

type mountToken struct {
	FS          string `json:"fs"`
	Task        string `json:"task"`
	Zone        string `json:"zone"`
	AccessPoint string `json:"accessPoint,omitempty"`
	RootDir     string `json:"rootDirectory,omitempty"`
	IAM         bool   `json:"iam,omitempty"`
	Role        string `json:"role,omitempty"`
	TLS         bool   `json:"tls,omitempty"`
	SlotDir     string `json:"slotDir,omitempty"`
	Session     string `json:"session,omitempty"`
	// FSx: the file system backs an FSx for Windows File Server file
	// system, reached in Zone (checked when the token was issued) without
	// EFS mount targets.
	FSx bool `json:"fsx,omitempty"`
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return state.EFSMountTokenKey(hex.EncodeToString(sum[:]))
}

func (s *Server) efsMount(ctx context.Context, r *agentapi.EFSMountRequest) (*agentapi.EFSMountResponse, error) {
	g, err := s.agents.EFSMount(ctx, r)
	if err != nil {
		return nil, err
	}
	fs := spec.Val(g.Config.FileSystemId)
	if _, err := s.fs.GetFS(ctx, fs); errors.Is(err, fsmeta.ErrNoFS) {
		return nil, &spec.Error{Code: "ClientException", Message: "EFS file system " + fs + " does not exist."}
	} else if err != nil {
		return nil, err
	}
	mt, err := s.client.Get(ctx, state.EFSMountTargetPrefix(fs)+g.Zone, clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	if mt.Count == 0 {
		return nil, &spec.Error{Code: "ClientException", Message: fmt.Sprintf("EFS file system %s has no mount target in %s.", fs, g.Zone)}
	}
	tok := mountToken{FS: fs, Task: g.TaskArn, Zone: g.Zone, RootDir: spec.Val(g.Config.RootDirectory), TLS: spec.Val(g.Config.TransitEncryption) == "ENABLED",
		SlotDir: g.SlotDir}
	if a := g.Config.AuthorizationConfig; a != nil {
		tok.AccessPoint = spec.Val(a.AccessPointId)
		tok.IAM = spec.Val(a.Iam) == "ENABLED"
	}
	if tok.IAM {
		tok.Role = g.TaskRoleArn
	}
	return s.issueMountToken(ctx, tok)
}

// issueMountToken stores a mount token (on a lease of mountTokenTTL until
// a session opens with it) and returns the grant the agent mounts with.
func (s *Server) issueMountToken(ctx context.Context, tok mountToken) (*agentapi.EFSMountResponse, error) {
	var b [32]byte
	rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	lease, err := s.client.Grant(ctx, mountTokenTTL)
	if err != nil {
		return nil, err
	}
	if _, err := s.client.Put(ctx, tokenKey(secret), mustJSON(tok), clientv3.WithLease(lease.ID)); err != nil {
		return nil, err
	}
	out := &agentapi.EFSMountResponse{Token: secret, FileSystemID: tok.FS, Zone: tok.Zone, TLS: tok.TLS}
	if tok.TLS {
		out.CA = string(s.caPEM)
	}
	return out, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type tokenCtxKey struct{}

// fsAuth lets a request in with a valid mount token, or else as any other
// API call (SigV4 when the server has access keys).
func (s *Server) fsAuth(next http.Handler) http.Handler {
	signed := s.auth(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := r.Header.Get(MountTokenHeader)
		if t == "" {
			signed.ServeHTTP(w, r)
			return
		}
		resp, err := s.client.Get(r.Context(), tokenKey(t))
		if err != nil || len(resp.Kvs) == 0 {
			http.Error(w, "mount credentials are invalid or expired", http.StatusForbidden)
			return
		}
		tok := &mountToken{}
		if err := json.Unmarshal(resp.Kvs[0].Value, tok); err != nil {
			http.Error(w, "mount credentials are invalid or expired", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenCtxKey{}, tok)))
	})
}

func tokenOf(ctx context.Context) *mountToken {
	t, _ := ctx.Value(tokenCtxKey{}).(*mountToken)
	return t
}

// openSession opens a mount session. A token's session gets what the token
// and the file system's policy allow; an operator's may name an access
// point.
func (s *Server) openSession(r *http.Request, req *fsproto.Request) *fsproto.Response {
	ctx := r.Context()
	refuse := func(e syscall.Errno, format string, a ...any) *fsproto.Response {
		return &fsproto.Response{Errno: e, Message: fmt.Sprintf(format, a...)}
	}
	spec := &fsmeta.Session{Host: req.Host, Mount: req.Name, Zone: req.Zone}
	apID, rootPath, slotDir := req.AccessPoint, "", ""
	tok := tokenOf(ctx)
	if tok != nil {
		if tok.Session != "" {
			return refuse(syscall.EACCES, "this mount token is already in use")
		}
		if tok.TLS && r.TLS == nil {
			return refuse(syscall.EACCES, "file system %s must be mounted with transit encryption (TLS)", tok.FS)
		}
		if tok.FSx {
			if s.fsx == nil {
				return refuse(syscall.ENXIO, "this server has no secrets key, so it serves no FSx file systems")
			}
			rec, _, err := s.fsx.Get(ctx, tok.FS)
			if err != nil || rec.Deleting || !slices.Contains(rec.Zones(), tok.Zone) {
				return refuse(syscall.ENXIO, "FSx file system %s is not served in %s", tok.FS, tok.Zone)
			}
		} else {
			mt, err := s.client.Get(ctx, state.EFSMountTargetPrefix(tok.FS)+tok.Zone, clientv3.WithCountOnly())
			if err != nil {
				return refuse(syscall.EIO, "%v", err)
			}
			if mt.Count == 0 {
				return refuse(syscall.ENXIO, "file system %s has no mount target in %s", tok.FS, tok.Zone)
			}
		}
		f, err := s.fs.GetFS(ctx, tok.FS)
		if err != nil {
			return refuse(syscall.ENODEV, "file system %s: %v", tok.FS, err)
		}
		pr := &efs.Request{Principal: tok.Role, SecureTransport: r.TLS != nil, FileSystemArn: s.efs.ARN("file-system", f.ID)}
		if tok.AccessPoint != "" {
			pr.AccessPointArn = s.efs.ARN("access-point", tok.AccessPoint)
		}
		if !efs.Allows(f.Policy, pr, efs.ActionMount) {
			return refuse(syscall.EACCES, "the file system policy of %s does not allow elasticfilesystem:ClientMount", f.ID)
		}
		spec.ReadOnly = !efs.Allows(f.Policy, pr, efs.ActionWrite)
		spec.RootSquash = !efs.Allows(f.Policy, pr, efs.ActionRoot)
		spec.Task, spec.Zone, apID, rootPath, slotDir = tok.Task, tok.Zone, tok.AccessPoint, tok.RootDir, tok.SlotDir
	}
	var create *fsproto.Attr
	if apID != "" {
		ap, err := s.efs.AccessPoint(ctx, apID)
		if err != nil || ap.FileSystemId != req.FS {
			return refuse(syscall.ENOENT, "access point %s of file system %s does not exist", apID, req.FS)
		}
		spec.AccessPoint = apID
		if p := ap.PosixUser; p != nil {
			uid, gid := uint32(*p.Uid), uint32(*p.Gid)
			spec.Uid, spec.Gid = &uid, &gid
			for _, g := range p.SecondaryGids {
				spec.Gids = append(spec.Gids, uint32(g))
			}
		}
		if rd := ap.RootDirectory; rd != nil {
			rootPath = rd.Path
			if c := rd.CreationInfo; c != nil {
				mode, _ := strconv.ParseUint(c.Permissions, 8, 32)
				create = &fsproto.Attr{Uid: uint32(*c.OwnerUid), Gid: uint32(*c.OwnerGid), Mode: uint32(mode)}
			}
		}
	}
	var slotCreate *fsproto.Attr
	if slotDir != "" {
		// A stateful service's slot gets its own directory, made on its
		// first start (as the access point's user when there is one).
		slotCreate = &fsproto.Attr{Mode: 0o755}
		if spec.Uid != nil {
			slotCreate.Uid, slotCreate.Gid = *spec.Uid, *spec.Gid
		}
	}
	resp, err := s.fs.OpenSession(ctx, req.FS, spec, rootPath, create, slotDir, slotCreate)
	if err != nil {
		var fe *fsmeta.Error
		if errors.As(err, &fe) {
			return refuse(fe.Errno, "%s", fe.Msg)
		}
		return refuse(syscall.EIO, "%v", err)
	}
	if tok != nil {
		tok.Session = resp.Session
		if _, err := s.client.Put(ctx, tokenKey(r.Header.Get(MountTokenHeader)), mustJSON(tok), clientv3.WithLease(clientv3.LeaseID(spec.Lease))); err != nil {
			return refuse(syscall.EIO, "%v", err)
		}
	}
	return resp
}
