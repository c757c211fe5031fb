package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/ecs"
	"github.com/berth-project/berth/internal/jointoken"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Agents join a cluster in the manner of k3s. A join token
// (jointoken.Token) carries the fingerprint of the cluster CA, so a new
// agent can pin the CA before it trusts anything the server says, and a
// secret, of which etcd keeps only the SHA-256. The agent sends the
// token's id and secret to POST /berth/v1/join, over TLS unless it is on
// loopback, and receives credentials of its own: an access key made for
// it alone, which registers one container instance and acts only for it.
// Tokens are made, listed and revoked by operators; revoking one stops
// new joins, not the agents that joined with it.

// joinTokenFile holds, under a server's data dir, the token made at the
// cluster's first start, so `berth server` and `berth up` can print it.
const joinTokenFile = "join-token"

// ensureJoinToken makes the cluster's first join token when it has none,
// and keeps it in the data dir.
func (s *Server) ensureJoinToken(ctx context.Context) error {
	if s.cfg.DataDir == "" {
		return nil
	}
	path := filepath.Join(s.cfg.DataDir, joinTokenFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	resp, err := s.client.Get(ctx, state.JoinTokenPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if resp.Count > 0 {
		return nil // another server made the first; `berth token create` makes more
	}
	tok, _, err := s.createJoinToken(ctx, "made at the cluster's first start")
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(tok.String()+"\n"), 0o600)
}

// JoinToken is the token this server keeps in its data dir ("" if none).
func (s *Server) JoinToken() string {
	if s.cfg.DataDir == "" {
		return ""
	}
	b, _ := os.ReadFile(filepath.Join(s.cfg.DataDir, joinTokenFile))
	return strings.TrimSpace(string(b))
}

func (s *Server) caFingerprint() string {
	fp, _ := jointoken.Fingerprint(s.caPEM)
	return fp
}

func (s *Server) createJoinToken(ctx context.Context, description string) (jointoken.Token, *state.JoinTokenRecord, error) {
	tok := jointoken.New(s.caFingerprint())
	rec := &state.JoinTokenRecord{ID: tok.ID, SecretSHA256: tok.SecretSHA256(), Description: description, CreatedAt: time.Now().UTC()}
	key := state.JoinTokenKey(tok.ID)
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, state.Marshal(rec))).Commit()
	if err != nil {
		return tok, nil, err
	}
	if !resp.Succeeded {
		return tok, nil, errors.New("a join token with that id exists; try again")
	}
	return tok, rec, nil
}

// TokenRequest names a join token or describes a new one.
type TokenRequest struct {
	ID          string `json:"id,omitempty"`
	Description string `json:"description,omitempty"`
}

// TokenResponse is a new token (the only time its secret is shown) or
// the list of tokens.
type TokenResponse struct {
	Token  string                  `json:"token,omitempty"`
	Tokens []state.JoinTokenRecord `json:"tokens"`
}

func (s *Server) tokenCreate(ctx context.Context, r *TokenRequest) (*TokenResponse, error) {
	if len(r.Description) > 256 {
		return nil, spec.InvalidParam("description must be at most 256 characters.")
	}
	tok, rec, err := s.createJoinToken(ctx, r.Description)
	if err != nil {
		return nil, err
	}
	rec.SecretSHA256 = ""
	return &TokenResponse{Token: tok.String(), Tokens: []state.JoinTokenRecord{*rec}}, nil
}

func (s *Server) tokenList(ctx context.Context, _ *TokenRequest) (*TokenResponse, error) {
	out := &TokenResponse{Tokens: []state.JoinTokenRecord{}}
	err := state.New(s.client).Range(ctx, state.JoinTokenPrefix(), "", func(key string, val []byte, _ int64) (bool, error) {
		rec := state.JoinTokenRecord{}
		if err := json.Unmarshal(val, &rec); err != nil {
			return false, fmt.Errorf("decode %s: %w", key, err)
		}
		rec.SecretSHA256 = ""
		out.Tokens = append(out.Tokens, rec)
		return true, nil
	})
	return out, err
}

func (s *Server) tokenDelete(ctx context.Context, r *TokenRequest) (*TokenResponse, error) {
	resp, err := s.client.Delete(ctx, state.JoinTokenKey(r.ID))
	if err != nil {
		return nil, err
	}
	if resp.Deleted == 0 {
		return nil, spec.InvalidParam("The join token '%s' does not exist.", r.ID)
	}
	return &TokenResponse{Tokens: []state.JoinTokenRecord{}}, nil
}

// JoinRequest is an agent's request to join with a token's id and secret.
type JoinRequest struct {
	Token string `json:"token"`
}

// JoinResponse gives the joining agent its own credentials.
type JoinResponse struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

var errBadToken = &spec.Error{Code: "AccessDeniedException", Message: "The join token is not valid."}

// join serves POST /berth/v1/join. It needs no signature: the token is
// the credential. Off loopback it must arrive over TLS, so the secret
// and the credentials it buys never cross the network in the clear.
func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	if tokenInTheClear(w, r) {
		return
	}
	jsonHandler(func(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
		tok, err := jointoken.ParseCredential(req.Token)
		if err != nil {
			if full, ferr := jointoken.Parse(req.Token); ferr == nil {
				tok, err = full, nil
			}
		}
		if err != nil {
			return nil, errBadToken
		}
		rec := &state.JoinTokenRecord{}
		if _, err := state.New(s.client).Get(ctx, state.JoinTokenKey(tok.ID), rec); errors.Is(err, state.ErrNotFound) {
			return nil, errBadToken
		} else if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(rec.SecretSHA256), []byte(tok.SecretSHA256())) != 1 {
			return nil, errBadToken
		}
		return s.issueAgentKey(ctx, tok.ID)
	}).ServeHTTP(w, r)
}

// issueAgentKey makes credentials for one agent.
func (s *Server) issueAgentKey(ctx context.Context, tokenID string) (*JoinResponse, error) {
	id := make([]byte, 8)
	secret := make([]byte, 20)
	rand.Read(id)
	rand.Read(secret)
	rec := &state.AgentKeyRecord{AccessKeyID: "BAGT" + strings.ToUpper(hex.EncodeToString(id)), Secret: hex.EncodeToString(secret), TokenID: tokenID, CreatedAt: time.Now().UTC()}
	key := state.AgentKeyKey(rec.AccessKeyID)
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, state.Marshal(rec))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, errors.New("an agent key with that id exists; try again")
	}
	return &JoinResponse{AccessKeyID: rec.AccessKeyID, SecretAccessKey: rec.Secret}, nil
}

// tokenInTheClear refuses a join (a token) that came over plain HTTP from
// another machine: the token, and what it buys, must not cross the
// network in the clear.
func tokenInTheClear(w http.ResponseWriter, r *http.Request) bool {
	if r.TLS == nil && !loopbackPeer(r.RemoteAddr) {
		ecs.WriteError(w, &spec.Error{Code: "AccessDeniedException", Message: "Join over HTTPS: the token and what it buys must not cross the network in the clear."})
		return true
	}
	return false
}

func loopbackPeer(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// agentKeys finds the secrets of joined agents' keys, kept for a short
// while so a request costs no etcd read; a key removed from etcd stops
// working within agentKeyTTL.
type agentKeys struct {
	mu   sync.Mutex
	seen map[string]cachedKey
}

type cachedKey struct {
	secret  string
	expires time.Time
}

const agentKeyTTL = 30 * time.Second

func (s *Server) joinedSecret(ctx context.Context, accessKey string) (string, bool) {
	if !strings.HasPrefix(accessKey, "BAGT") || len(accessKey) > 64 {
		return "", false
	}
	s.agentKeys.mu.Lock()
	c, ok := s.agentKeys.seen[accessKey]
	s.agentKeys.mu.Unlock()
	if ok && time.Now().Before(c.expires) {
		return c.secret, true
	}
	rec := &state.AgentKeyRecord{}
	if _, err := state.New(s.client).Get(ctx, state.AgentKeyKey(accessKey), rec); err != nil {
		return "", false
	}
	s.agentKeys.mu.Lock()
	if s.agentKeys.seen == nil || len(s.agentKeys.seen) > 100000 {
		s.agentKeys.seen = map[string]cachedKey{}
	}
	s.agentKeys.seen[accessKey] = cachedKey{secret: rec.Secret, expires: time.Now().Add(agentKeyTTL)}
	s.agentKeys.mu.Unlock()
	return rec.Secret, true
}
