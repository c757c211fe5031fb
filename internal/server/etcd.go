package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdMember configures the embedded etcd member of a server that is one
// of several (see members.go). The zero value is a single member whose
// peers would listen on loopback only.
type EtcdMember struct {
	// Name is the member's name (default: its peer address).
	Name string
	// PeerListen is HOST:PORT the member listens on for its peers, over
	// TLS; port 0 picks a free one, kept for restarts.
	PeerListen string
	// Join lists servers of the running cluster to join through, with
	// Token (a member token), the first time this server starts.
	Join  []string
	Token string
}

// startEmbedded runs the server's etcd member under dir/etcd. Without a
// peer address it is a single member on loopback ports remembered in
// dir/etcd-ports.json; with one, a member of a cluster whose peers talk
// TLS, described in dir/etcd-member.json.
func startEmbedded(dir string, m EtcdMember, log *slog.Logger) (*embed.Etcd, string, error) {
	if dir == "" {
		return nil, "", errors.New("data dir is required for embedded etcd")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	ports := struct{ Client, Peer int }{}
	pf := filepath.Join(dir, "etcd-ports.json")
	if b, err := os.ReadFile(pf); err == nil {
		json.Unmarshal(b, &ports)
	}
	mc, err := memberOf(dir, m, ports.Client)
	if err != nil {
		return nil, "", err
	}
	if mc == nil && (ports.Client == 0 || !free(ports.Client) || !free(ports.Peer)) {
		ports.Client, ports.Peer = freePort(), freePort()
		b, _ := json.Marshal(ports)
		if err := os.WriteFile(pf, b, 0o600); err != nil {
			return nil, "", err
		}
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.Name = "berth"
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports.Client))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports.Peer))
	if mc != nil {
		cfg.Name = mc.Name
		cu, _ = url.Parse(fmt.Sprintf("http://127.0.0.1:%d", mc.ClientPort))
		pu, _ = url.Parse(mc.PeerURL)
		cfg.PeerTLSInfo = peerTLSInfo(dir)
		cfg.PeerAutoTLS = false
		cfg.InitialCluster = mc.InitialCluster
		if mc.Joined {
			cfg.ClusterState = embed.ClusterStateFlagExisting
		}
	}
	// Clients of this member are this server only: its client URL stays
	// on loopback whatever the peers listen on.
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	if mc == nil {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// NewConfig leaves this at zero (only etcd's flags default it), which
	// makes every request "expensive": etcd would format each one as text
	// for a log line that goes nowhere.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	e, err := embed.StartEtcd(cfg)
	// A lone member's ports are its own choice: ports found free can be
	// taken before etcd binds them, so it chooses again.
	for attempt := 0; err != nil && mc == nil && errors.Is(err, syscall.EADDRINUSE) && attempt < 5; attempt++ {
		ports.Client, ports.Peer = freePort(), freePort()
		b, _ := json.Marshal(ports)
		if werr := os.WriteFile(pf, b, 0o600); werr != nil {
			return nil, "", werr
		}
		cu, _ = url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports.Client))
		pu, _ = url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports.Peer))
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		e, err = embed.StartEtcd(cfg)
	}
	if err != nil {
		return nil, "", fmt.Errorf("start embedded etcd: %w", err)
	}
	// A member of several waits for a quorum of them: the others may be
	// starting too.
	wait := time.Minute
	if mc != nil {
		wait = 10 * time.Minute
	}
	deadline := time.After(wait)
	for ready := false; !ready; {
		select {
		case <-e.Server.ReadyNotify():
			ready = true
		case <-time.After(10 * time.Second):
			log.Info("waiting for the etcd cluster's quorum", "member", cfg.Name, "cluster", cfg.InitialCluster)
		case <-deadline:
			e.Close()
			return nil, "", fmt.Errorf("embedded etcd did not become ready within %s (a member of several needs most of them running)", wait)
		case err := <-e.Err():
			e.Close()
			return nil, "", fmt.Errorf("embedded etcd: %w", err)
		}
	}
	// A member that just joined is a learner until the cluster promotes
	// it; it serves nothing before.
	for start := time.Now(); e.Server.IsLearner(); time.Sleep(200 * time.Millisecond) {
		if time.Since(start) > wait {
			e.Close()
			return nil, "", errors.New("this etcd member was not promoted from learner: see `berth server members list` on another server")
		}
	}
	return e, cu.String(), nil
}

// memberOf reads or makes the member's record: nil for a single member
// on loopback (no peer address, none recorded). A first member makes the
// peer CA; a joining one asks the cluster.
func memberOf(dir string, m EtcdMember, clientPort int) (*memberConfig, error) {
	path := filepath.Join(dir, memberFile)
	if b, err := os.ReadFile(path); err == nil {
		mc := &memberConfig{}
		if err := json.Unmarshal(b, mc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m.PeerListen != "" {
			host, port, _ := net.SplitHostPort(m.PeerListen)
			if want := peerURLOf(host, port); port != "0" && want != mc.PeerURL {
				return nil, fmt.Errorf("--etcd-peer-listen %s: this member's peer URL is %s (kept in %s); a member's peer address does not change", m.PeerListen, mc.PeerURL, path)
			}
		}
		if free(mc.ClientPort) {
			return mc, nil
		}
		mc.ClientPort = freePort() // taken meanwhile: the port is this server's alone
		b, _ := json.MarshalIndent(mc, "", "  ")
		return mc, os.WriteFile(path, b, 0o600)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if m.PeerListen == "" {
		if len(m.Join) > 0 {
			return nil, errors.New("--join needs --etcd-peer-listen HOST:PORT: the address the other members reach this one at")
		}
		return nil, nil
	}
	host, port, err := net.SplitHostPort(m.PeerListen)
	if err != nil || host == "" {
		return nil, fmt.Errorf("--etcd-peer-listen %q is not HOST:PORT", m.PeerListen)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("--etcd-peer-listen %s: give the address the other members reach this one at, not %s", m.PeerListen, host)
	}
	if port == "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("--etcd-peer-listen %s: %w", m.PeerListen, err)
		}
		port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	peerURL := peerURLOf(host, port)
	name := m.Name
	if name == "" {
		name = strings.NewReplacer(":", "-", "[", "", "]", "").Replace(host + "-" + port)
	}
	if !validMemberName(name) {
		return nil, fmt.Errorf("--etcd-name %q: 1 to 63 letters, digits, '-', '_' or '.'", name)
	}
	if clientPort == 0 || !free(clientPort) {
		clientPort = freePort()
	}
	_, statErr := os.Stat(filepath.Join(dir, "etcd", "member"))
	existing := statErr == nil
	var mc *memberConfig
	switch {
	case len(m.Join) > 0 && !existing:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if mc, err = joinCluster(ctx, dir, m.Join, m.Token, name, peerURL); err != nil {
			return nil, err
		}
	case len(m.Join) > 0:
		return nil, fmt.Errorf("--join: %s already holds an etcd member; start it without --join", dir)
	default:
		// The first member of a cluster, or a single member (made before
		// it had a peer address) that is to have others join it.
		if existing {
			name = "berth" // the name a single member was made with
		}
		if _, err := firstPeerFiles(dir, host); err != nil {
			return nil, err
		}
		mc = &memberConfig{Name: name, PeerURL: peerURL, InitialCluster: name + "=" + peerURL}
	}
	mc.ClientPort = clientPort
	b, _ := json.MarshalIndent(mc, "", "  ")
	return mc, os.WriteFile(path, b, 0o600)
}

func peerURLOf(host, port string) string { return "https://" + net.JoinHostPort(host, port) }

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// free reports whether a port can be bound now (a variable for tests:
// the port may be taken right after).
var free = func(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// settleMember finishes what a member's start began once etcd serves: the
// first member's peer CA goes into etcd, and a member made before it had
// a peer address advertises the one it has now.
func (s *Server) settleMember(ctx context.Context) error {
	if s.etcd == nil || s.cfg.DataDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, memberFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	mc := &memberConfig{}
	if err := json.Unmarshal(b, mc); err != nil {
		return err
	}
	if err := s.storePeerCA(ctx); err != nil {
		return err
	}
	id := uint64(s.etcd.Server.MemberID())
	members, err := s.client.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range members.Members {
		if m.ID == id && (len(m.PeerURLs) != 1 || m.PeerURLs[0] != mc.PeerURL) {
			if _, err := s.client.MemberUpdate(ctx, id, []string{mc.PeerURL}); err != nil {
				return fmt.Errorf("advertise peer URL %s: %w", mc.PeerURL, err)
			}
			s.cfg.Log.Info("this etcd member now listens for peers over TLS", "peerURL", mc.PeerURL)
		}
	}
	return nil
}
