package fsx

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/state"
)

// Endpoint is one zone's SMB endpoint of a file system: the instance
// serving it (its claim lives on that instance's connection lease) and the
// address it serves at.
type Endpoint struct {
	Cluster  string `json:"cluster"`
	Instance string `json:"instance"`
	Address  string `json:"address,omitempty"`
	Ready    bool   `json:"ready,omitempty"`
}

// Endpoints returns a file system's endpoints by zone.
func (a *API) Endpoints(ctx context.Context, id string) (map[string]Endpoint, error) {
	resp, err := a.Client.Get(ctx, state.FSxEndpointPrefix(id), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]Endpoint{}
	for _, kv := range resp.Kvs {
		var e Endpoint
		if json.Unmarshal(kv.Value, &e) == nil {
			out[strings.TrimPrefix(string(kv.Key), state.FSxEndpointPrefix(id))] = e
		}
	}
	return out, nil
}

// SessionTask names the Berth mount of a zone's SMB endpoint as served by
// one instance: its mount session is registered under it, so the session
// can be ended (fsmeta.Engine.RevokeTaskSessions) when another instance
// takes the zone over.
func SessionTask(id, zone, cluster, inst string) string {
	return "fsx-smb/" + id + "-" + zone + "-" + cluster + "-" + inst
}

// Serve is an agent's poll: the agent of instance inst (cluster), in
// zone, whose connection lives on lease, serves its zone's endpoint of
// every file system there whose endpoint no other connected agent holds.
// It records the addresses the agent reports and returns the file systems
// it is to serve, and the mounts of the instances it took endpoints over
// from (SessionTask), to end: an agent gone for good may have left its
// Samba running, with the users it had. An agent that cannot serve SMB
// gives its claims up.
func (a *API) Serve(ctx context.Context, cluster, inst, zone string, lease clientv3.LeaseID, capable bool, serving []agentapi.SMBEndpoint) ([]*Record, []string, error) {
	all, err := a.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	var revoke []string
	a.finishDeletes(ctx, all)
	reported := map[string]agentapi.SMBEndpoint{}
	for _, e := range serving {
		reported[e.FileSystemID] = e
	}
	var mine []*Record
	for _, rec := range all {
		if rec.Deleting || !slices.Contains(rec.Zones(), zone) {
			continue
		}
		key := state.FSxEndpointKey(rec.ID, zone)
		resp, err := a.Client.Get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		want := Endpoint{Cluster: cluster, Instance: inst}
		if r, ok := reported[rec.ID]; ok {
			want.Address, want.Ready = r.Address, r.Ready
		}
		b, _ := json.Marshal(want)
		var cmp clientv3.Cmp
		switch {
		case len(resp.Kvs) == 0:
			if !capable {
				continue
			}
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		default:
			var cur Endpoint
			json.Unmarshal(resp.Kvs[0].Value, &cur)
			if cur.Cluster != cluster || cur.Instance != inst {
				continue // another agent of the zone serves it
			}
			if !capable {
				a.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).Then(clientv3.OpDelete(key)).Commit()
				continue
			}
			if cur == want && clientv3.LeaseID(resp.Kvs[0].Lease) == lease {
				mine = append(mine, rec)
				a.markAvailable(ctx, rec, want)
				continue
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		holder := state.FSxHolderKey(rec.ID, zone)
		tr, err := a.Client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(b), clientv3.WithLease(lease)), clientv3.OpGet(holder),
			clientv3.OpPut(holder, string(b))).Commit()
		if err != nil {
			return nil, nil, err
		}
		if tr.Succeeded {
			mine = append(mine, rec)
			a.markAvailable(ctx, rec, want)
			if kvs := tr.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
				var prev Endpoint
				if json.Unmarshal(kvs[0].Value, &prev) == nil && (prev.Cluster != cluster || prev.Instance != inst) {
					revoke = append(revoke, SessionTask(rec.ID, zone, prev.Cluster, prev.Instance))
				}
			}
		}
	}
	return mine, revoke, nil
}

// markAvailable turns a file system AVAILABLE the first time one of its
// endpoints serves.
func (a *API) markAvailable(ctx context.Context, rec *Record, e Endpoint) {
	if rec.Available || !e.Ready {
		return
	}
	if _, err := a.update(ctx, rec.ID, func(r *Record) error {
		r.Available = true
		return nil
	}); err != nil {
		a.Log.Warn("marking an FSx file system available", "fs", rec.ID, "err", err)
	}
}

// Users returns the share's users and their passwords: the self-managed
// directory's service account (given directly, or in the secret
// DomainJoinServiceAccountSecret names).
func (a *API) Users(ctx context.Context, rec *Record) ([]agentapi.SMBUser, error) {
	var out []agentapi.SMBUser
	for _, u := range rec.Users {
		pw, err := a.Keys.Open(userContext(rec.ID, u.Name), u.Sealed)
		if err != nil {
			return nil, fmt.Errorf("file system %s: user %s: the password does not open with this cluster's secrets key", rec.ID, u.Name)
		}
		out = append(out, agentapi.SMBUser{Name: u.Name, Password: string(pw)})
	}
	if sm := rec.SelfManaged; sm != nil && sm.DomainJoinServiceAccountSecret != "" {
		if a.Secrets == nil {
			return nil, errors.New("this server has no secrets key")
		}
		v, err := a.Secrets.Resolve(ctx, sm.DomainJoinServiceAccountSecret)
		if err != nil {
			return nil, err
		}
		var c map[string]string
		if json.Unmarshal([]byte(v), &c) != nil || c["CUSTOMER_MANAGED_ACTIVE_DIRECTORY_USERNAME"] == "" {
			return nil, fmt.Errorf("secret %s does not hold CUSTOMER_MANAGED_ACTIVE_DIRECTORY_USERNAME and CUSTOMER_MANAGED_ACTIVE_DIRECTORY_PASSWORD", sm.DomainJoinServiceAccountSecret)
		}
		out = append(out, agentapi.SMBUser{Name: c["CUSTOMER_MANAGED_ACTIVE_DIRECTORY_USERNAME"], Password: c["CUSTOMER_MANAGED_ACTIVE_DIRECTORY_PASSWORD"]})
	}
	return out, nil
}

// CheckCredentials checks a task's credentials for a share as the SMB
// server would: a user of the share with its password, in the share's
// domain (its DNS name or NetBIOS name, any case).
func (a *API) CheckCredentials(ctx context.Context, rec *Record, domain, user, password string) error {
	if d := rec.Domain(); d != "" && !strings.EqualFold(domain, d) && !strings.EqualFold(domain, NetBIOSDomain(d)) {
		return fmt.Errorf("domain %s is not the domain of file system %s (%s)", domain, rec.ID, d)
	}
	if i := strings.IndexAny(user, `\@`); i >= 0 { // DOMAIN\user or user@domain
		if user[i] == '\\' {
			user = user[i+1:]
		} else {
			user = user[:i]
		}
	}
	users, err := a.Users(ctx, rec)
	if err != nil {
		return err
	}
	for _, u := range users {
		if strings.EqualFold(u.Name, user) && subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1 {
			return nil
		}
	}
	return fmt.Errorf("logon failure: unknown user name or bad password for file system %s", rec.ID)
}

// NetBIOSDomain is a domain's NetBIOS name: its first label, upper case,
// at most 15 characters.
func NetBIOSDomain(domain string) string {
	first, _, _ := strings.Cut(domain, ".")
	first = strings.ToUpper(first)
	if len(first) > 15 {
		first = first[:15]
	}
	return first
}

// Zones returns the zones a file system serves (for placement), or a
// not-found error.
func Zones(ctx context.Context, cli *clientv3.Client, id string) (map[string]bool, error) {
	a := &API{Client: cli}
	rec, _, err := a.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, z := range rec.Zones() {
		out[z] = true
	}
	return out, nil
}

// SetUser adds a user of the share, or gives one a new password: how an
// operator gives users to a file system joined to an AWS Managed AD, whose
// directory Berth cannot read.
func (a *API) SetUser(ctx context.Context, id, name, password string) error {
	if !userNameRE.MatchString(name) || strings.ContainsAny(name, " :") {
		return badRequest("%q is not a user name a share can have.", name)
	}
	if password == "" {
		return badRequest("A user needs a password.")
	}
	_, err := a.update(ctx, id, func(r *Record) error {
		if r.Deleting {
			return badRequest("File system %s is being deleted.", id)
		}
		r.Users = slices.DeleteFunc(r.Users, func(u User) bool { return strings.EqualFold(u.Name, name) })
		r.Users = append(r.Users, User{Name: name, Sealed: a.Keys.Seal(userContext(id, name), []byte(password))})
		return nil
	})
	return err
}

// DeleteUser removes a user of the share.
func (a *API) DeleteUser(ctx context.Context, id, name string) error {
	_, err := a.update(ctx, id, func(r *Record) error {
		n := len(r.Users)
		r.Users = slices.DeleteFunc(r.Users, func(u User) bool { return strings.EqualFold(u.Name, name) })
		if len(r.Users) == n {
			return badRequest("File system %s has no user %s.", id, name)
		}
		if r.SelfManaged != nil && strings.EqualFold(r.SelfManaged.UserName, name) {
			r.SelfManaged.UserName = ""
		}
		return nil
	})
	return err
}

// Summary is what `berth fsx ls` shows of a file system.
type Summary struct {
	ID         string              `json:"fileSystemId"`
	Lifecycle  string              `json:"lifecycle"`
	Deployment string              `json:"deploymentType"`
	Domain     string              `json:"domain,omitempty"`
	Zones      []string            `json:"zones"`
	Endpoints  map[string]Endpoint `json:"endpoints"`
	Users      []string            `json:"users"`
}

// Summaries lists file systems with their endpoints and user names.
func (a *API) Summaries(ctx context.Context) ([]Summary, error) {
	all, err := a.list(ctx)
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, r := range all {
		d, err := a.describe(ctx, r)
		if err != nil {
			return nil, err
		}
		eps, err := a.Endpoints(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		s := Summary{ID: r.ID, Lifecycle: d.Lifecycle, Deployment: r.DeploymentType, Domain: r.Domain(), Zones: r.Zones(), Endpoints: eps, Users: []string{}}
		for _, u := range r.Users {
			s.Users = append(s.Users, u.Name)
		}
		if sm := r.SelfManaged; sm != nil && sm.DomainJoinServiceAccountSecret != "" {
			s.Users = append(s.Users, "(the user in "+sm.DomainJoinServiceAccountSecret+")")
		}
		out = append(out, s)
	}
	return out, nil
}
