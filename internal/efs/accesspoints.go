package efs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/state"
)

var permRE = regexp.MustCompile(`^[0-7]{3,4}$`)

func checkAccessPoint(p *PosixUser, rd *RootDirectory) error {
	if p != nil {
		if p.Uid == nil || p.Gid == nil || *p.Uid < 0 || *p.Gid < 0 || *p.Uid > 4294967295 || *p.Gid > 4294967295 {
			return badRequest("PosixUser needs a Uid and a Gid between 0 and 4294967295.")
		}
		if len(p.SecondaryGids) > 16 {
			return badRequest("PosixUser has at most 16 secondary gids.")
		}
	}
	if rd != nil {
		if rd.Path == "" {
			rd.Path = "/"
		}
		if !strings.HasPrefix(rd.Path, "/") || len(rd.Path) > 100 {
			return badRequest("RootDirectory Path must be absolute and at most 100 characters.")
		}
		for _, part := range strings.Split(rd.Path, "/") {
			if part == ".." || part == "." {
				return badRequest("RootDirectory Path may not contain '.' or '..'.")
			}
		}
		if c := rd.CreationInfo; c != nil {
			if c.OwnerUid == nil || c.OwnerGid == nil || !permRE.MatchString(c.Permissions) {
				return badRequest("CreationInfo needs OwnerUid, OwnerGid and octal Permissions.")
			}
		}
	}
	return nil
}

func (a *API) createAccessPoint(ctx context.Context, r *http.Request) (any, error) {
	var in struct {
		ClientToken   string
		Tags          []fsmeta.Tag
		FileSystemId  string
		PosixUser     *PosixUser
		RootDirectory *RootDirectory
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if !tokenRE.MatchString(in.ClientToken) {
		return nil, badRequest("ClientToken must be 1 to 64 characters.")
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	if err := checkAccessPoint(in.PosixUser, in.RootDirectory); err != nil {
		return nil, err
	}
	if in.RootDirectory == nil {
		in.RootDirectory = &RootDirectory{Path: "/"}
	}
	if _, err := a.getFS(ctx, in.FileSystemId); err != nil {
		return nil, err
	}
	ap := &AccessPoint{ClientToken: in.ClientToken, Name: nameOf(in.Tags), Tags: in.Tags, FileSystemId: in.FileSystemId,
		PosixUser: in.PosixUser, RootDirectory: in.RootDirectory, OwnerId: a.Account, LifeCycleState: "available"}
	if ap.Tags == nil {
		ap.Tags = []fsmeta.Tag{}
	}
	ap.AccessPointId = "fsap-" + newHex(17)
	ap.AccessPointArn = a.ARN("access-point", ap.AccessPointId)
	count, err := a.FS.Client.Get(ctx, state.EFSAccessPointPrefix(in.FileSystemId), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	if count.Count >= 1000 {
		return nil, &Error{Status: 403, Code: "AccessPointLimitExceeded", Msg: "A file system has at most 1000 access points."}
	}
	tk := state.EFSAccessPointTokenKey(in.ClientToken)
	resp, err := a.FS.Client.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(state.FSKey(in.FileSystemId)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(tk), "=", 0),
	).Then(
		clientv3.OpPut(state.EFSAccessPointKey(in.FileSystemId, ap.AccessPointId), marshal(ap)),
		clientv3.OpPut(state.EFSAccessPointIDKey(ap.AccessPointId), in.FileSystemId),
		clientv3.OpPut(tk, ap.AccessPointId),
	).Else(clientv3.OpGet(tk)).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, fsNotFound(in.FileSystemId)
		}
		old, err := a.AccessPoint(ctx, string(kvs[0].Value))
		if err != nil {
			return nil, err
		}
		// A retry of the same call (same token, same request) gets the same
		// access point; another request with that token is refused.
		if old.FileSystemId == ap.FileSystemId && reflect.DeepEqual(old.PosixUser, ap.PosixUser) &&
			reflect.DeepEqual(old.RootDirectory, ap.RootDirectory) && reflect.DeepEqual(old.Tags, ap.Tags) {
			return old, nil
		}
		return nil, &Error{Status: 409, Code: "AccessPointAlreadyExists", Msg: fmt.Sprintf("Access point '%s' already exists with client token '%s'.", old.AccessPointId, in.ClientToken),
			Extra: map[string]string{"AccessPointId": old.AccessPointId}}
	}
	return ap, nil
}

// AccessPoint reads one access point.
func (a *API) AccessPoint(ctx context.Context, id string) (*AccessPoint, error) {
	resp, err := a.FS.Client.Get(ctx, state.EFSAccessPointIDKey(id))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, notFound("AccessPointNotFound", "Access point '%s' does not exist.", id)
	}
	r, err := a.FS.Client.Get(ctx, state.EFSAccessPointKey(string(resp.Kvs[0].Value), id))
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return nil, notFound("AccessPointNotFound", "Access point '%s' does not exist.", id)
	}
	ap := &AccessPoint{}
	return ap, json.Unmarshal(r.Kvs[0].Value, ap)
}

func (a *API) describeAccessPoints(ctx context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := maxItems(r, "MaxResults", 100, 1000)
	if err != nil {
		return nil, err
	}
	var aps []*AccessPoint
	switch {
	case q.Get("AccessPointId") != "" && q.Get("FileSystemId") != "":
		return nil, badRequest("Give AccessPointId or FileSystemId, not both.")
	case q.Get("AccessPointId") != "":
		ap, err := a.AccessPoint(ctx, q.Get("AccessPointId"))
		if err != nil {
			return nil, err
		}
		aps = append(aps, ap)
	default:
		prefix := fsmetaPrefixAll
		if fs := q.Get("FileSystemId"); fs != "" {
			if _, err := a.getFS(ctx, fs); err != nil {
				return nil, err
			}
			prefix = state.EFSAccessPointPrefix(fs)
		}
		resp, err := a.FS.Client.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		for _, kv := range resp.Kvs {
			ap := &AccessPoint{}
			if json.Unmarshal(kv.Value, ap) == nil {
				aps = append(aps, ap)
			}
		}
	}
	sort.Slice(aps, func(i, j int) bool { return aps[i].AccessPointId < aps[j].AccessPointId })
	out := struct {
		AccessPoints []*AccessPoint `json:"AccessPoints"`
		NextToken    string         `json:"NextToken,omitempty"`
	}{AccessPoints: []*AccessPoint{}}
	next := q.Get("NextToken")
	for _, ap := range aps {
		if next != "" && ap.AccessPointId < next {
			continue
		}
		if len(out.AccessPoints) == limit {
			out.NextToken = ap.AccessPointId
			break
		}
		out.AccessPoints = append(out.AccessPoints, ap)
	}
	return out, nil
}

var fsmetaPrefixAll = state.EFSAccessPointsPrefix() // every file system's access points

func (a *API) deleteAccessPoint(ctx context.Context, r *http.Request) (any, error) {
	ap, err := a.AccessPoint(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	_, err = a.FS.Client.Txn(ctx).Then(clientv3.OpDelete(state.EFSAccessPointKey(ap.FileSystemId, ap.AccessPointId)),
		clientv3.OpDelete(state.EFSAccessPointIDKey(ap.AccessPointId)), clientv3.OpDelete(state.EFSAccessPointTokenKey(ap.ClientToken))).Commit()
	return nil, err
}

// tag resources: file systems (fs-…) and access points (fsap-…).
func (a *API) tagResource(ctx context.Context, r *http.Request) (any, error) {
	var in struct{ Tags []fsmeta.Tag }
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	return nil, a.changeTags(ctx, r.PathValue("id"), func(tags []fsmeta.Tag) []fsmeta.Tag {
		for _, t := range in.Tags {
			found := false
			for i := range tags {
				if tags[i].Key == t.Key {
					tags[i].Value, found = t.Value, true
				}
			}
			if !found {
				tags = append(tags, t)
			}
		}
		return tags
	})
}

func (a *API) untagResource(ctx context.Context, r *http.Request) (any, error) {
	keys := r.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return nil, badRequest("tagKeys is required.")
	}
	return nil, a.changeTags(ctx, r.PathValue("id"), func(tags []fsmeta.Tag) []fsmeta.Tag {
		var out []fsmeta.Tag
		for _, t := range tags {
			drop := false
			for _, k := range keys {
				drop = drop || t.Key == k
			}
			if !drop {
				out = append(out, t)
			}
		}
		return out
	})
}

func (a *API) changeTags(ctx context.Context, id string, fn func([]fsmeta.Tag) []fsmeta.Tag) error {
	switch {
	case strings.HasPrefix(id, "fsap-"):
		for i := 0; i < 20; i++ {
			ap, err := a.AccessPoint(ctx, id)
			if err != nil {
				return err
			}
			k := state.EFSAccessPointKey(ap.FileSystemId, id)
			cur, err := a.FS.Client.Get(ctx, k)
			if err != nil || len(cur.Kvs) == 0 {
				return err
			}
			ap.Tags = fn(ap.Tags)
			if len(ap.Tags) > 50 {
				return badRequest("A resource can have at most 50 tags.")
			}
			if ap.Tags == nil {
				ap.Tags = []fsmeta.Tag{}
			}
			ap.Name = nameOf(ap.Tags)
			resp, err := a.FS.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", cur.Kvs[0].ModRevision)).
				Then(clientv3.OpPut(k, marshal(ap))).Commit()
			if err != nil || resp.Succeeded {
				return err
			}
		}
		return fmt.Errorf("tagging %s: too much contention", id)
	case strings.HasPrefix(id, "fs-"):
		_, err := a.update(ctx, id, func(f *fsmeta.FileSystem) error {
			f.Tags = fn(f.Tags)
			if len(f.Tags) > 50 {
				return badRequest("A resource can have at most 50 tags.")
			}
			f.Name = nameOf(f.Tags)
			return nil
		})
		return err
	}
	return badRequest("Unknown resource id %q.", id)
}

func (a *API) listTags(ctx context.Context, r *http.Request) (any, error) {
	id := r.PathValue("id")
	var tags []fsmeta.Tag
	switch {
	case strings.HasPrefix(id, "fsap-"):
		ap, err := a.AccessPoint(ctx, id)
		if err != nil {
			return nil, err
		}
		tags = ap.Tags
	case strings.HasPrefix(id, "fs-"):
		f, err := a.getFS(ctx, id)
		if err != nil {
			return nil, err
		}
		tags = f.Tags
	default:
		return nil, badRequest("Unknown resource id %q.", id)
	}
	if tags == nil {
		tags = []fsmeta.Tag{}
	}
	return map[string]any{"Tags": tags}, nil
}

// AccessPointDeletes returns the guarded deletes of a file system's access
// points, for the transaction that deletes the file system
// (fsmeta.Engine.DeleteFS): an access point made meanwhile fails the guard.
func AccessPointDeletes(ctx context.Context, cli *clientv3.Client, fs string) ([]clientv3.Cmp, []clientv3.Op, error) {
	aps, err := cli.Get(ctx, state.EFSAccessPointPrefix(fs), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	ops := []clientv3.Op{clientv3.OpDelete(state.EFSAccessPointPrefix(fs), clientv3.WithPrefix())}
	for _, kv := range aps.Kvs {
		var ap struct{ AccessPointId, ClientToken string }
		if err := json.Unmarshal(kv.Value, &ap); err != nil {
			return nil, nil, fmt.Errorf("access point %s: %w", kv.Key, err)
		}
		ops = append(ops, clientv3.OpDelete(state.EFSAccessPointIDKey(ap.AccessPointId)))
		if ap.ClientToken != "" {
			ops = append(ops, clientv3.OpDelete(state.EFSAccessPointTokenKey(ap.ClientToken)))
		}
	}
	guard := clientv3.Compare(clientv3.ModRevision(state.EFSAccessPointPrefix(fs)), "<", aps.Header.Revision+1).WithPrefix()
	return []clientv3.Cmp{guard}, ops, nil
}

// MountTargetZones returns the zones in which a file system has a mount
// target: the only zones where a task can mount it.
func MountTargetZones(ctx context.Context, cli *clientv3.Client, fs string) (map[string]bool, error) {
	resp, err := cli.Get(ctx, state.EFSMountTargetPrefix(fs), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	zones := map[string]bool{}
	for _, kv := range resp.Kvs {
		zones[strings.TrimPrefix(string(kv.Key), state.EFSMountTargetPrefix(fs))] = true
	}
	return zones, nil
}
