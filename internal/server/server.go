// Package server wires the control plane: etcd (embedded or external), the
// state cache, the plan applier and the HTTP listener that serves the ECS
// API, Berth's agent endpoint and /metrics. It holds no state of its own:
// everything lives in etcd, so a restarted server loses nothing.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/berth-project/berth/internal/agentsrv"
	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/blob/backend"
	"github.com/berth-project/berth/internal/blob/fschunk"
	"github.com/berth-project/berth/internal/ecs"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/fsx"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/secrets"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/volume"
)

// DefaultLeaseTTL is an agent's lease: an instance whose agent has not
// renewed it for this long is lost, and its service tasks start elsewhere.
// Agents renew it every second and fence their block volumes at 60 % of
// it; an etcd leader election (a few seconds) extends every lease.
const DefaultLeaseTTL = 7 * time.Second

// Config is the control plane's configuration.
type Config struct {
	DataDir       string
	Listen        string     // host:port; default 127.0.0.1:7440
	EtcdEndpoints []string   // empty: run an embedded member under DataDir
	Etcd          EtcdMember // the embedded member as one of several
	Region        string
	Account       string
	LeaseTTL      time.Duration // agent lease; agentConnected turns false after it
	// Credentials maps access key ids to secret keys. Requests must be
	// SigV4-signed with one of them when RequireAuth is set.
	Credentials map[string]string
	// AgentCredentials are keys for agents only: their own endpoints and
	// the ECS calls an agent makes; anything else is refused.
	AgentCredentials map[string]string
	RequireAuth      bool
	Log              *slog.Logger
	// StoppedTaskRetention is how long a stopped task stays describable.
	StoppedTaskRetention time.Duration
	// LostInstanceGrace is how long an instance may be without its agent,
	// once its lease expired, before the service controller replaces its
	// tasks elsewhere (default none: the lease is the grace).
	LostInstanceGrace time.Duration
	// FSSessionTTL is a shared file system mount's session lease: a crashed
	// mount's locks are released this long after it stopped.
	FSSessionTTL time.Duration
	// FSChunkGrace: shared file system chunks younger than this are never
	// collected (uploads not yet committed).
	FSChunkGrace time.Duration
	// FSOrphanGrace: an unlinked file's data is freed this long after its
	// last link went, once no mount holds it open.
	FSOrphanGrace time.Duration
	// BodyTimeout is how long a request's body may take to arrive after
	// its headers (default 60 s).
	BodyTimeout time.Duration
	// MaxConnsPerIP bounds the connections one address may hold open
	// (default 4096: a host's mounts and agent share one address).
	MaxConnsPerIP int
	// BlobStore is where snapshots and shared file systems' data live
	// (blob/backend URL). Without it, both stay under DataDir (blobs/ and
	// fs-chunks/): one copy on this server's disk. Blobs, when set, is the
	// store itself (embedding, tests).
	BlobStore string
	Blobs     blob.Objects
	// SecretsKeyFile holds the cluster's secrets key (default
	// DATA-DIR/secrets.key), made by the cluster's first server.
	SecretsKeyFile string
}

// Server is a running control plane.
type Server struct {
	// blobMu is held shared while a blob request finds or puts a chunk
	// (which makes the chunk new) and exclusive while the chunk collector
	// checks a chunk's age and deletes it, so a chunk just found or put
	// is never deleted.
	blobMu sync.RWMutex

	closeOnce sync.Once
	agentKeys agentKeys
	cfg       Config
	chunks    blob.Chunks // snapshot chunks; nil Objects when there is no store
	etcd      *embed.Etcd
	client    *clientv3.Client
	API       *ecs.API
	agents    *agentsrv.API
	volumes   *volume.API
	fs        *fsmeta.Engine
	efs       *efs.API
	secrets   *secrets.API
	fsx       *fsx.API
	noKey     string // why this server has no secrets key, when it has none
	caPEM     []byte
	epoch     leaderEpoch
	closing   chan struct{} // closed when the server begins to shut down
	http      *http.Server
	ln        net.Listener
	cancel    context.CancelFunc
	done      chan struct{}
}

// Start brings up etcd, the cache and the listener. It returns once the
// server accepts requests.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7440"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StoppedTaskRetention == 0 {
		cfg.StoppedTaskRetention = 3 * time.Hour
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 60 * time.Second
	}
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = 4096
	}
	s := &Server{cfg: cfg, done: make(chan struct{}), closing: make(chan struct{})}
	// With a blob store of its own choosing the operator puts all data
	// there; by default snapshots go to DATA_DIR/blobs and file system
	// chunks to DATA_DIR/fs-chunks, as data dirs always had them.
	chosenStore := cfg.Blobs != nil || cfg.BlobStore != ""
	if cfg.BlobStore == "" && cfg.DataDir != "" {
		cfg.BlobStore = filepath.Join(cfg.DataDir, "blobs")
		s.cfg.BlobStore = cfg.BlobStore
	}
	if cfg.Blobs != nil {
		s.chunks = blob.Chunks{Objects: cfg.Blobs}
	} else if cfg.BlobStore != "" {
		bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
		objs, err := backend.Open(bctx, cfg.BlobStore)
		bcancel()
		if err != nil {
			return nil, err
		}
		s.chunks = blob.Chunks{Objects: objs}
	}
	endpoints := cfg.EtcdEndpoints
	if len(endpoints) == 0 {
		e, ep, err := startEmbedded(cfg.DataDir, cfg.Etcd, cfg.Log)
		if err != nil {
			return nil, err
		}
		s.etcd = e
		endpoints = []string{ep}
	}
	var cli *clientv3.Client
	if s.etcd != nil {
		// The embedded member is called in process, not through gRPC over
		// loopback: an engine read costs tens of microseconds, not
		// hundreds.
		cli = v3client.New(s.etcd.Server)
	} else {
		var err error
		cli, err = clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: quietZap()})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("etcd client: %w", err)
		}
	}
	s.client = cli
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cli.Get(sctx, "health-check"); err != nil {
		s.Close()
		return nil, fmt.Errorf("etcd at %v: %w", endpoints, err)
	}
	if err := s.settleMember(sctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("etcd member: %w", err)
	}
	store := state.New(cli)
	if n, err := placement.RepairCounts(sctx, store); err != nil {
		s.Close()
		return nil, fmt.Errorf("repair task counts: %w", err)
	} else if n > 0 {
		cfg.Log.Info("corrected instances' running and pending task counts", "instances", n)
	}
	cache := state.NewCache(cli, cfg.Log)
	if err := cache.Load(sctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("load state: %w", err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	s.cancel = rcancel
	go func() { cache.Run(rctx); close(s.done) }()
	go s.gcLoop(rctx)
	var chunks fschunk.Store = fschunk.Dir{}
	switch {
	case chosenStore:
		chunks = fschunk.Objects{Objects: s.chunks.Objects}
	case cfg.DataDir != "":
		chunks = fschunk.Dir{Path: filepath.Join(cfg.DataDir, "fs-chunks")}
	}
	s.fs = fsmeta.NewEngine(cli, chunks, cfg.Log)
	if err := s.fs.LoadChunkKey(sctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.FSSessionTTL > 0 {
		s.fs.SessionTTL = int64(cfg.FSSessionTTL / time.Second)
	}
	if cfg.FSChunkGrace > 0 {
		s.fs.ChunkGrace = cfg.FSChunkGrace
	}
	if cfg.FSOrphanGrace > 0 {
		s.fs.OrphanGrace = cfg.FSOrphanGrace
	}
	go s.fs.Maintain(rctx, 2*time.Second)
	s.efs = &efs.API{FS: s.fs, Region: cfg.Region, Account: cfg.Account, Log: cfg.Log}
	s.secrets = &secrets.API{Client: cli, Region: cfg.Region, Account: cfg.Account, Log: cfg.Log}
	if path := s.secretsKeyPath(); path != "" {
		k, err := secrets.LoadKeyring(sctx, cli, path)
		var missing *secrets.MissingKeyError
		switch {
		case errors.As(err, &missing):
			// Everything else works without it; these calls say why not.
			cfg.Log.Error("Secrets Manager, SSM and FSx are off on this server", "err", err)
			s.noKey = err.Error()
		case err != nil:
			s.Close()
			return nil, err
		default:
			s.secrets.Keys = k
			s.fsx = &fsx.API{Client: cli, FS: s.fs, Keys: k, Secrets: s.secrets, Region: cfg.Region, Account: cfg.Account, Log: cfg.Log}
		}
	}
	s.API = ecs.New(&ecs.API{Store: store, Cache: cache, Applier: placement.New(store, cache, time.Now().UnixNano()),
		Region: cfg.Region, Account: cfg.Account, LeaseTTL: int64(cfg.LeaseTTL / time.Second), Log: cfg.Log})
	s.agents = &agentsrv.API{Store: store, Resolver: s.API}
	if s.secrets.Keys != nil {
		s.agents.Secrets = s.secrets
	}
	s.volumes = &volume.API{Store: store, Cache: cache, Applier: s.API.Applier, Resolver: s.API, Now: s.API.Now}
	s.API.Applier.Stopped = func(ctx context.Context, t *state.TaskRecord) {
		// The task's slot may start elsewhere as soon as this returns: its
		// mounts must not write any more, whatever the caller's context.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for attempt := 0; ; attempt++ {
			err := s.fs.RevokeTaskSessions(rctx, spec.Val(t.TaskArn))
			if err == nil {
				return
			}
			cfg.Log.Warn("ending a stopped task's file system sessions", "task", spec.Val(t.TaskArn), "attempt", attempt, "err", err)
			select {
			case <-rctx.Done():
				return
			case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
			}
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	tlsCfg, caPEM, err := serverTLS(sctx, cli, ln.Addr().String())
	if err != nil {
		ln.Close()
		s.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	s.caPEM = caPEM
	if err := s.ensureJoinToken(sctx); err != nil {
		ln.Close()
		s.Close()
		return nil, fmt.Errorf("join token: %w", err)
	}
	s.efs.Address, _, _ = net.SplitHostPort(ln.Addr().String())
	ln = newSniffListener(ln, tlsCfg, newConnLimiter(cfg.MaxConnsPerIP))
	s.ln = ln
	go s.watchLeader(rctx)
	s.http = &http.Server{Handler: s.bodyDeadline(s.requireQuorum(s.leaderBound(s.handler()))), ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: 5 * time.Minute}
	s.http.RegisterOnShutdown(func() { close(s.closing) }) // streams end at once: their clients go to another server
	go s.http.Serve(ln)
	go s.runController(rctx)
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Endpoint is the API's base URL.
func (s *Server) Endpoint() string { return "http://" + s.Addr() }

// DataStore says where snapshots and file data live, and whether that is a
// single copy on this server's disk.
func (s *Server) DataStore() (where string, singleCopy bool) {
	if s.chunks.Objects == nil {
		return "nowhere (no --data-dir or --blob-store)", true
	}
	where = s.chunks.Objects.String()
	return where, strings.HasPrefix(where, "file://")
}

// Client is the server's etcd client.
func (s *Server) Client() *clientv3.Client { return s.client }

// Close stops the listener, the cache and etcd.
func (s *Server) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Server) close() {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.http.Shutdown(ctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.client != nil {
		s.client.Close()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(c int) { r.code = c; r.ResponseWriter.WriteHeader(c) }

// Flush, ReadFrom and Unwrap keep what the writer underneath can do:
// streams flush, chunk reads go out with sendfile(2).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(r.ResponseWriter, src)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	s.metricsRoutes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.noLeader() {
			http.Error(w, "no etcd leader: this server cannot reach a majority of the members", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("POST /berth/v1/join", s.join)
	mux.HandleFunc("POST /berth/v1/members/join", s.memberJoin)
	mux.Handle("POST /berth/v1/members/token", s.auth(jsonHandler(func(ctx context.Context, _ *MembersRequest) (*MemberTokenResponse, error) {
		return s.CreateMemberToken(ctx)
	})))
	mux.Handle("POST /berth/v1/members/list", s.auth(jsonHandler(s.memberList)))
	mux.Handle("POST /berth/v1/members/remove", s.auth(jsonHandler(s.memberRemove)))
	mux.Handle("POST /berth/v1/tokens/create", s.auth(jsonHandler(s.tokenCreate)))
	mux.Handle("POST /berth/v1/tokens/list", s.auth(jsonHandler(s.tokenList)))
	mux.Handle("POST /berth/v1/tokens/delete", s.auth(jsonHandler(s.tokenDelete)))
	mux.Handle("POST /berth/v1/agent/heartbeat", s.auth(http.HandlerFunc(s.heartbeat)))
	mux.Handle("POST /berth/v1/agent/tasks", s.auth(jsonHandler(s.agents.AgentTasks)))
	mux.Handle("POST /berth/v1/agent/residency", s.auth(jsonHandler(s.agents.ReportResidency)))
	mux.Handle("POST /berth/v1/agent/secrets", s.auth(jsonHandler(s.agents.TaskSecrets)))
	mux.Handle("POST /berth/v1/agent/smb", s.auth(jsonHandler(s.agentSMB)))
	mux.Handle("POST /berth/v1/agent/fsx-mount", s.auth(jsonHandler(s.fsxMount)))
	mux.Handle("POST /berth/v1/fsx/list", s.auth(jsonHandler(s.fsxList)))
	mux.Handle("POST /berth/v1/fsx/users/put", s.auth(jsonHandler(s.fsxUserPut)))
	mux.Handle("POST /berth/v1/fsx/users/delete", s.auth(jsonHandler(s.fsxUserDelete)))
	mux.Handle("POST /berth/v1/agent/network", s.auth(jsonHandler(s.agents.Network)))
	mux.Handle("POST /berth/v1/agent/routes", s.auth(jsonHandler(s.agents.Routes)))
	mux.Handle("POST /berth/v1/network/list", s.auth(jsonHandler(s.networkList)))
	mux.Handle("POST /berth/v1/tasks/wait", s.auth(jsonHandler(s.taskWait)))
	mux.Handle("POST /berth/v1/agent/volume-event", s.auth(jsonHandler(s.volumes.VolumeEvent)))
	mux.Handle("POST /berth/v1/agent/snapshot-done", s.auth(jsonHandler(s.volumes.SnapshotDone)))
	mux.Handle("POST /berth/v1/volumes/create", s.auth(jsonHandler(s.volumes.CreateVolume)))
	mux.Handle("POST /berth/v1/volumes/describe", s.auth(jsonHandler(s.volumes.DescribeVolumes)))
	mux.Handle("POST /berth/v1/volumes/delete", s.auth(jsonHandler(s.volumes.DeleteVolume)))
	mux.Handle("POST /berth/v1/volumes/detach", s.auth(jsonHandler(s.volumes.DetachVolume)))
	mux.Handle("POST /berth/v1/snapshots/create", s.auth(jsonHandler(s.volumes.CreateSnapshot)))
	mux.Handle("POST /berth/v1/snapshots/describe", s.auth(jsonHandler(s.volumes.DescribeSnapshots)))
	mux.Handle("POST /berth/v1/snapshots/delete", s.auth(jsonHandler(s.volumes.DeleteSnapshot)))
	mux.Handle("/berth/v1/blobs/{key}", s.auth(http.HandlerFunc(s.blobs)))
	s.fsRoutes(mux)
	s.consoleRoutes(mux)
	mux.Handle("POST /{$}", s.auth(s.awsJSON()))
	return s.instrument(s.hostCheck(mux))
}

// secretsKeyPath is where this server keeps the secrets key ("" when it
// has no data directory and none was given).
func (s *Server) secretsKeyPath() string {
	if s.cfg.SecretsKeyFile != "" {
		return s.cfg.SecretsKeyFile
	}
	if s.cfg.DataDir != "" {
		return filepath.Join(s.cfg.DataDir, secrets.KeyFile)
	}
	return ""
}

// awsJSON sends an awsJson1.1 call to its service by its X-Amz-Target:
// ECS, Secrets Manager, SSM or FSx.
func (s *Server) awsJSON() http.Handler {
	var sm, ssm, fx http.Handler = noSecretsKey{"InternalServiceError", s.noKey}, noSecretsKey{"InternalServerError", s.noKey}, noSecretsKey{"InternalServerError", s.noKey}
	if s.secrets.Keys != nil {
		sm, ssm, fx = s.secrets.SecretsManager(), s.secrets.SSM(), s.fsx.Service()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		switch {
		case strings.HasPrefix(target, "secretsmanager."):
			sm.ServeHTTP(w, r)
		case strings.HasPrefix(target, "AmazonSSM."):
			ssm.ServeHTTP(w, r)
		case strings.HasPrefix(target, fsx.TargetPrefix):
			fx.ServeHTTP(w, r)
		default:
			s.API.ServeHTTP(w, r)
		}
	})
}

// noSecretsKey answers Secrets Manager, SSM and FSx calls on a server
// without the cluster's secrets key.
type noSecretsKey struct{ code, why string }

func (n noSecretsKey) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	msg := "This server has no secrets key: start it with --data-dir or --secrets-key-file."
	if n.why != "" {
		msg = "This server cannot open secrets: " + n.why + "."
	}
	awsjson.WriteError(w, &spec.Error{Code: n.code, Message: msg})
}

// hostCheck keeps a server that takes unsigned requests (open on
// loopback) from answering a web page whose own name was made to resolve
// to it (DNS rebinding): such a server answers requests addressed to an IP
// address or localhost only, never to another name.
func (s *Server) hostCheck(next http.Handler) http.Handler {
	if s.cfg.RequireAuth {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if _, err := netip.ParseAddr(host); err != nil && !strings.EqualFold(host, "localhost") && host != "" {
			http.Error(w, "this server takes unsigned requests: it answers requests addressed to an IP address or localhost only", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// jsonHandler serves one of Berth's own JSON endpoints.
func jsonHandler[Req, Resp any](f func(context.Context, *Req) (*Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		body, e := spec.ReadBody(r.Body, 8<<20)
		if e != nil {
			ecs.WriteError(w, e)
			return
		}
		if err := json.Unmarshal(body, req); err != nil {
			ecs.WriteError(w, &spec.Error{Code: "SerializationException", Message: "Unable to parse request body"})
			return
		}
		resp, err := f(r.Context(), req)
		if err != nil {
			var se *spec.Error
			if !errors.As(err, &se) {
				se = &spec.Error{Code: "ServerException", Message: "Internal server error."}
				if m := state.QuorumMessage(err); m != "" {
					se.Message = m
				}
			}
			ecs.WriteError(w, se)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

// blobs serves the chunk store to agents: HEAD, GET and PUT of
// content-addressed chunks.
func (s *Server) blobs(w http.ResponseWriter, r *http.Request) {
	if s.chunks.Objects == nil {
		http.Error(w, "this server has no blob store (no --data-dir or --blob-store)", http.StatusServiceUnavailable)
		return
	}
	store := s.chunks
	key := r.PathValue("key")
	if !blob.ValidKey(key) {
		http.Error(w, "invalid blob key", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodHead:
		// A snapshot that finds a chunk will reference it; it must
		// outlive the collector's grace period.
		s.blobMu.RLock()
		ok, err := store.Touch(r.Context(), key)
		s.blobMu.RUnlock()
		switch {
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
		case !ok:
			w.WriteHeader(http.StatusNotFound)
		}
	case http.MethodGet:
		if url, ok, err := store.PresignGet(r.Context(), key, 15*time.Minute); ok {
			// Restores read the store itself (the agent checks every
			// chunk's bytes against its key); the URL is in Location and,
			// for the agent's client, the body.
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			redirectBlob(w, r, url)
			return
		}
		blobRequests.WithLabelValues(r.Method, "proxied").Inc()
		b, err := store.Get(r.Context(), key)
		if errors.Is(err, blob.ErrNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		} else if err != nil {
			chunkErrors.WithLabelValues("snapshot", "get").Inc()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
		chunkBytes.WithLabelValues("snapshot", "out").Add(float64(len(b)))
	case http.MethodPut:
		if r.Header.Get("X-Berth-Put") == "direct" {
			// The agent puts the chunk in the store itself, by a URL that
			// takes only the bytes whose SHA-256 is the key.
			size, err := strconv.ParseInt(r.Header.Get("X-Berth-Size"), 10, 64)
			if err != nil || size < 0 || size > maxBody {
				http.Error(w, "X-Berth-Size must be the chunk's length", http.StatusBadRequest)
				return
			}
			url, ok, err := store.PresignPut(r.Context(), key, size, 15*time.Minute)
			switch {
			case !ok:
				blobRequests.WithLabelValues(r.Method, "proxied").Inc()
				http.Error(w, "this server's store takes chunks through the server", http.StatusExpectationFailed)
			case err != nil:
				http.Error(w, err.Error(), http.StatusInternalServerError)
			default:
				redirectBlob(w, r, url)
			}
			return
		}
		blobRequests.WithLabelValues(r.Method, "proxied").Inc()
		b, e := spec.ReadBody(r.Body, maxBody)
		if e != nil {
			http.Error(w, e.Message, http.StatusRequestEntityTooLarge)
			return
		}
		s.blobMu.RLock()
		err := store.Put(r.Context(), key, b)
		s.blobMu.RUnlock()
		if err != nil {
			chunkErrors.WithLabelValues("snapshot", "put").Inc()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		chunkBytes.WithLabelValues("snapshot", "in").Add(float64(len(b)))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Cluster           string `json:"cluster"`
		ContainerInstance string `json:"containerInstance"`
		MissedRenewals    int    `json:"missedRenewals"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		ecs.WriteError(w, &spec.Error{Code: "SerializationException", Message: "Unable to parse request body"})
		return
	}
	if err := s.API.Heartbeat(r.Context(), req.Cluster, req.ContainerInstance); err != nil {
		var se *spec.Error
		if !errors.As(err, &se) {
			se = &spec.Error{Code: "ServerException", Message: "Internal server error."}
		}
		ecs.WriteError(w, se)
		return
	}
	if n := req.MissedRenewals; n > 0 && n < 1<<20 {
		missedRenewals.Add(float64(n))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"acknowledgment":"ACK","leaseTtlSeconds":%d}`, int(s.cfg.LeaseTTL/time.Second))
}

// redirectBlob sends an agent to the store: the signed URL is in Location
// and, for the agent's client, the body.
func redirectBlob(w http.ResponseWriter, r *http.Request, url string) {
	blobRequests.WithLabelValues(r.Method, "redirected").Inc()
	w.Header().Set("Location", url)
	w.WriteHeader(http.StatusTemporaryRedirect)
	w.Write([]byte(url))
}

var blobRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "berth_blob_requests_total",
	Help: "Snapshot chunk reads and writes: proxied (the bytes pass through this server) or redirected (the agent moves them to or from the blob store itself, by a URL this server signed).",
}, []string{"method", "path"})
