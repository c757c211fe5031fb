package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/jointoken"
	"github.com/berth-project/berth/internal/secrets"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Several servers, each with an embedded etcd member, form one cluster.
// The first server started with --etcd-peer-listen makes the members'
// peer CA (kept in its data dir and in etcd) and a single-member cluster
// whose peers talk TLS with certificates that CA signed, client
// certificates required. An operator makes a single-use member token
// (`berth server members add`); a new server started with --join URL and
// that token pins the cluster CA by the token's fingerprint, sends a
// certificate request for its peer address, and receives its certificate
// and the cluster's member list; the server it asked adds it as a learner
// and promotes it to a voting member once it has caught up. A dead
// member is removed with `berth server members remove NAME` and a new one
// joins in its place.

// peerDir holds, under a data dir, the member's peer TLS files.
const peerDir = "etcd-peer"

// memberFile records, under a data dir, how the member was made: its name,
// peer URL and client port, and at its first start the cluster to join.
const memberFile = "etcd-member.json"

type memberConfig struct {
	Name           string `json:"name"`
	PeerURL        string `json:"peerURL"`
	ClientPort     int    `json:"clientPort"`
	InitialCluster string `json:"initialCluster,omitempty"` // read at the first start only
	Joined         bool   `json:"joined,omitempty"`         // it joined an existing cluster
}

func peerPaths(dir string) (ca, cert, key string) {
	d := filepath.Join(dir, peerDir)
	return filepath.Join(d, "ca.pem"), filepath.Join(d, "member.pem"), filepath.Join(d, "member-key.pem")
}

// peerTLSInfo is etcd's view of the member's peer TLS.
func peerTLSInfo(dir string) transport.TLSInfo {
	ca, cert, key := peerPaths(dir)
	return transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca, ClientCertAuth: true}
}

// memberTokenTTL is how long a member token can be used.
const memberTokenTTL = time.Hour

// peerHost is the host of a peer URL, checked.
func peerHost(peerURL string) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil || u.Scheme != "https" || u.Port() == "" || u.Hostname() == "" || u.Path != "" {
		return "", fmt.Errorf("peer URL %q is not https://HOST:PORT", peerURL)
	}
	return u.Hostname(), nil
}

// signPeerCert signs a member's peer certificate for host, valid as a
// server (it listens) and as a client (it dials the others).
func signPeerCert(caPEM []byte, pub any, host string) ([]byte, error) {
	cb, rest := pem.Decode(caPEM)
	kb, _ := pem.Decode(rest)
	if cb == nil || kb == nil {
		return nil, errors.New("the peer CA is not PEM")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	caKey, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "berth-etcd-peer"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().AddDate(5, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writePeerFiles keeps the member's key, its certificate and the CA's
// certificate (not its key) in the data dir.
func writePeerFiles(dir string, caCertPEM, certPEM []byte, key *ecdsa.PrivateKey) error {
	caPath, certPath, keyPath := peerPaths(dir)
	if err := os.MkdirAll(filepath.Dir(caPath), 0o700); err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{caPath, caCertPEM}, {certPath, certPEM}, {keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}} {
		if err := os.WriteFile(f.path, f.b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// firstPeerFiles makes the peer CA and the first member's certificate. It
// returns the CA (certificate and key, PEM), which goes into etcd once
// the member runs.
func firstPeerFiles(dir, host string) ([]byte, error) {
	certPEM, keyPEM, err := newCA()
	if err != nil {
		return nil, err
	}
	ca := append(append([]byte{}, certPEM...), keyPEM...)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := signPeerCert(ca, &key.PublicKey, host)
	if err != nil {
		return nil, err
	}
	if err := writePeerFiles(dir, certPEM, cert, key); err != nil {
		return nil, err
	}
	return ca, os.WriteFile(filepath.Join(dir, peerDir, "ca-key.pem"), keyPEM, 0o600)
}

// storePeerCA puts the peer CA this member made into etcd, so any server
// can sign joining members' certificates, and forgets its local key.
func (s *Server) storePeerCA(ctx context.Context) error {
	if s.etcd == nil || s.cfg.DataDir == "" {
		return nil
	}
	keyPath := filepath.Join(s.cfg.DataDir, peerDir, "ca-key.pem")
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	caPath, _, _ := peerPaths(s.cfg.DataDir)
	certPEM, err := os.ReadFile(caPath)
	if err != nil {
		return err
	}
	if _, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(state.PeerCAKey()), "=", 0)).
		Then(clientv3.OpPut(state.PeerCAKey(), string(certPEM)+string(keyPEM))).Commit(); err != nil {
		return err
	}
	return os.Remove(keyPath)
}

// MemberTokenResponse is a new member token and how to use it.
type MemberTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CreateMemberToken makes a single-use token a new server joins with.
func (s *Server) CreateMemberToken(ctx context.Context) (*MemberTokenResponse, error) {
	if s.etcd == nil {
		return nil, spec.InvalidParam("This server uses an external etcd (--etcd-endpoints): add servers by pointing them at it; members are managed with etcd's own tools.")
	}
	if got, err := s.client.Get(ctx, state.PeerCAKey()); err != nil {
		return nil, err
	} else if len(got.Kvs) == 0 {
		return nil, spec.InvalidParam("This cluster's etcd member listens for peers on loopback only: restart its server with --etcd-peer-listen HOST:PORT (an address the new server reaches) first.")
	}
	tok := jointoken.New(s.caFingerprint())
	now := time.Now().UTC()
	rec := &state.MemberTokenRecord{ID: tok.ID, SecretSHA256: tok.SecretSHA256(), CreatedAt: now, ExpiresAt: now.Add(memberTokenTTL)}
	key := state.MemberTokenKey(tok.ID)
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, state.Marshal(rec))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, errors.New("a member token with that id exists; try again")
	}
	return &MemberTokenResponse{Token: tok.String(), ExpiresAt: rec.ExpiresAt}, nil
}

// MemberJoinRequest is a new server's request to add its etcd member.
type MemberJoinRequest struct {
	Token   string `json:"token"`
	Name    string `json:"name"`
	PeerURL string `json:"peerURL"`
	CSR     string `json:"csr"` // PEM certificate request for the member's peer key
}

// MemberJoinResponse gives the new member what it starts with.
type MemberJoinResponse struct {
	Name           string `json:"name"`
	InitialCluster string `json:"initialCluster"`
	PeerCA         string `json:"peerCA"`
	Cert           string `json:"cert"`
	// SecretsKey is the cluster's secrets key (hex), which the new server
	// keeps in its data directory: secrets are sealed with it.
	SecretsKey string `json:"secretsKey,omitempty"`
}

var errBadMemberToken = &spec.Error{Code: "AccessDeniedException", Message: "The member token is not valid (unknown, used or expired)."}

// memberJoin serves POST /berth/v1/members/join: the token is the
// credential, and off loopback it must arrive over TLS.
func (s *Server) memberJoin(w http.ResponseWriter, r *http.Request) {
	if tokenInTheClear(w, r) {
		return
	}
	jsonHandler(s.addMember).ServeHTTP(w, r)
}

func (s *Server) addMember(ctx context.Context, req *MemberJoinRequest) (*MemberJoinResponse, error) {
	tok, err := jointoken.ParseCredential(req.Token)
	if err != nil {
		return nil, errBadMemberToken
	}
	if s.etcd == nil {
		return nil, spec.InvalidParam("This server uses an external etcd: it adds no members.")
	}
	host, err := peerHost(req.PeerURL)
	if err != nil {
		return nil, spec.InvalidParam("%v", err)
	}
	if !validMemberName(req.Name) {
		return nil, spec.InvalidParam("A member name is 1 to 63 letters, digits, '-', '_' or '.'.")
	}
	cb, _ := pem.Decode([]byte(req.CSR))
	if cb == nil || cb.Type != "CERTIFICATE REQUEST" {
		return nil, spec.InvalidParam("csr is not a PEM certificate request.")
	}
	csr, err := x509.ParseCertificateRequest(cb.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		return nil, spec.InvalidParam("csr is not a valid certificate request.")
	}
	key := state.MemberTokenKey(tok.ID)
	got, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(got.Kvs) == 0 {
		return nil, errBadMemberToken
	}
	rec := &state.MemberTokenRecord{}
	if err := json.Unmarshal(got.Kvs[0].Value, rec); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(rec.SecretSHA256), []byte(tok.SecretSHA256())) != 1 || time.Now().After(rec.ExpiresAt) {
		return nil, errBadMemberToken
	}
	ca, err := s.client.Get(ctx, state.PeerCAKey())
	if err != nil {
		return nil, err
	}
	if len(ca.Kvs) == 0 {
		return nil, spec.InvalidParam("This cluster has no peer CA: its first server listens for peers on loopback only.")
	}
	members, err := s.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range members.Members {
		if m.Name == req.Name {
			return nil, spec.InvalidParam("A member named %s exists; remove it first (berth server members remove %s).", req.Name, req.Name)
		}
		for _, u := range m.PeerURLs {
			if u == req.PeerURL {
				return nil, spec.InvalidParam("Member %s already has peer URL %s.", m.Name, u)
			}
		}
	}
	cert, err := signPeerCert(ca.Kvs[0].Value, csr.PublicKey, host)
	if err != nil {
		return nil, err
	}
	// The token is spent before the member is added (a second join with
	// it fails, whatever happens to this one), and only once the request
	// is known to be good: a name already taken leaves it usable.
	spent, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", got.Kvs[0].ModRevision)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return nil, err
	}
	if !spent.Succeeded {
		return nil, errBadMemberToken
	}
	// etcd refuses to add a member until every member has been connected
	// for a few seconds (one just promoted, say): wait that out.
	var added *clientv3.MemberAddResponse
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		added, err = s.client.MemberAddAsLearner(ctx, []string{req.PeerURL})
		if err == nil {
			break
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) && !errors.Is(err, rpctypes.ErrGRPCUnhealthy) || time.Since(start) > 30*time.Second {
			s.cfg.Log.Warn("adding an etcd member failed", "name", req.Name, "err", err)
			return nil, &spec.Error{Code: "ServerException", Message: fmt.Sprintf("Adding member %s failed: %v", req.Name, err)}
		}
	}
	var cluster []string
	for _, m := range added.Members {
		name := m.Name
		if m.ID == added.Member.ID {
			name = req.Name
		}
		for _, u := range m.PeerURLs {
			cluster = append(cluster, name+"="+u)
		}
	}
	s.cfg.Log.Info("added an etcd member as a learner", "name", req.Name, "peerURL", req.PeerURL, "id", fmt.Sprintf("%x", added.Member.ID))
	go s.promote(added.Member.ID, req.Name)
	caCert, _ := pem.Decode(ca.Kvs[0].Value)
	out := &MemberJoinResponse{Name: req.Name, InitialCluster: strings.Join(cluster, ","),
		PeerCA: string(pem.EncodeToMemory(caCert)), Cert: string(cert)}
	if key, err := secrets.ReadKeyFile(s.secretsKeyPath()); err == nil {
		out.SecretsKey = hex.EncodeToString(key)
	}
	return out, nil
}

// promote makes a learner a voting member once it has caught up (etcd
// refuses before), trying for a while.
func (s *Server) promote(id uint64, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for {
		_, err := s.client.MemberPromote(ctx, id)
		if err == nil {
			s.cfg.Log.Info("promoted an etcd member to voting", "name", name)
			return
		}
		if strings.Contains(err.Error(), "not a learner") {
			return
		}
		select {
		case <-ctx.Done():
			s.cfg.Log.Warn("an etcd learner was not promoted; `berth server members list` shows it, remove it and join again", "name", name, "err", err)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func validMemberName(n string) bool {
	if len(n) == 0 || len(n) > 63 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Member is one etcd member as `berth server members list` shows it.
type Member struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	PeerURLs  []string `json:"peerURLs"`
	Learner   bool     `json:"learner"`
	Leader    bool     `json:"leader"`
	Reachable bool     `json:"reachable"` // its peer port takes a connection from this server
}

// MembersRequest names a member to remove (by name or hex id).
type MembersRequest struct {
	Member string `json:"member,omitempty"`
}

// MembersResponse lists the members.
type MembersResponse struct {
	Members []Member `json:"members"`
}

func (s *Server) memberList(ctx context.Context, _ *MembersRequest) (*MembersResponse, error) {
	if s.etcd == nil {
		return nil, spec.InvalidParam("This server uses an external etcd: list its members with etcdctl.")
	}
	// From this member's own view: the list is wanted most when there is
	// no quorum to answer a linearizable one.
	resp, err := s.client.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	leader := s.etcd.Server.Leader()
	out := &MembersResponse{Members: []Member{}}
	for _, m := range resp.Members {
		out.Members = append(out.Members, Member{ID: fmt.Sprintf("%x", m.ID), Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner,
			Leader: uint64(leader) == m.ID, Reachable: reachable(m)})
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Name < out.Members[j].Name })
	return out, nil
}

func reachable(m *etcdserverpb.Member) bool {
	for _, u := range m.PeerURLs {
		pu, err := url.Parse(u)
		if err != nil {
			continue
		}
		if c, err := net.DialTimeout("tcp", pu.Host, time.Second); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

func (s *Server) memberRemove(ctx context.Context, r *MembersRequest) (*MembersResponse, error) {
	if s.etcd == nil {
		return nil, spec.InvalidParam("This server uses an external etcd: remove its members with etcdctl.")
	}
	resp, err := s.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var found *etcdserverpb.Member
	for _, m := range resp.Members {
		if m.Name == r.Member || fmt.Sprintf("%x", m.ID) == r.Member {
			found = m
		}
	}
	if found == nil {
		return nil, spec.InvalidParam("No member is named %q.", r.Member)
	}
	if len(resp.Members) == 1 {
		return nil, spec.InvalidParam("%s is the cluster's only member.", found.Name)
	}
	if found.ID == uint64(s.etcd.Server.MemberID()) {
		return nil, spec.InvalidParam("%s is this server's own member: ask another server to remove it.", found.Name)
	}
	if _, err := s.client.MemberRemove(ctx, found.ID); err != nil {
		return nil, fmt.Errorf("remove member %s: %w", found.Name, err)
	}
	s.cfg.Log.Info("removed an etcd member", "name", found.Name, "id", fmt.Sprintf("%x", found.ID))
	return s.memberList(ctx, nil)
}

// joinCluster asks a running server (one of urls) to add this server's
// member, with a member token; it writes the peer files and the member's
// record, and returns the record.
func joinCluster(ctx context.Context, dir string, urls []string, token, name, peerURL string) (*memberConfig, error) {
	tok, err := jointoken.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	host, err := peerHost(peerURL)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}}, key)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(&MemberJoinRequest{Token: tok.Credential(), Name: name, PeerURL: peerURL,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	var errs []error
	for _, u := range urls {
		u = strings.TrimSuffix(u, "/")
		hc := http.DefaultClient
		if strings.HasPrefix(u, "https://") {
			ca, err := jointoken.FetchCA(ctx, u, tok.CAFingerprint)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		} else if !loopbackURL(u) {
			return nil, fmt.Errorf("join %s over https: a member token must not cross the network in the clear", u)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/berth/v1/members/join", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue // another server may answer
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(b, &e) != nil || e.Message == "" {
				e.Message = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("join through %s: %s", u, e.Message)
		}
		out := &MemberJoinResponse{}
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("join through %s: %w", u, err)
		}
		if err := writePeerFiles(dir, []byte(out.PeerCA), []byte(out.Cert), key); err != nil {
			return nil, err
		}
		if out.SecretsKey != "" {
			sk, err := hex.DecodeString(out.SecretsKey)
			if err != nil {
				return nil, fmt.Errorf("join through %s: the secrets key is malformed", u)
			}
			if err := secrets.WriteKeyFile(filepath.Join(dir, secrets.KeyFile), sk); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
		}
		return &memberConfig{Name: out.Name, PeerURL: peerURL, InitialCluster: out.InitialCluster, Joined: true}, nil
	}
	return nil, fmt.Errorf("join the cluster: no server answered: %w", errors.Join(errs...))
}

func loopbackURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	if pu.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(pu.Hostname())
	return ip != nil && ip.IsLoopback()
}
