package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/ecs"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/state"
	"github.com/berth-project/berth/internal/volume"
)

// Berth's own metrics are served at /metrics from a registry of their
// own, with the Go runtime's and the process's; the embedded etcd
// member's (and gRPC's) stay in the default registry, at /metrics/etcd.

var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_api_requests_total",
		Help: "API requests by service (ecs, efs, berth, agent, fs, console), operation and HTTP status."}, []string{"service", "operation", "code"})
	apiSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_api_request_duration_seconds",
		Help: "API request latency by service and operation (long polls included).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}, []string{"service", "operation"})
	fsSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_fs_op_duration_seconds",
		Help: "Shared file system metadata operation latency on the server, by operation.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)}, []string{"op"})
	chunkBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_chunk_store_bytes_total",
		Help: "Bytes of chunks that passed through this server to or from its store, by kind (snapshot, fs) and direction (in: stored, out: read)."}, []string{"kind", "direction"})
	missedRenewals = prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_agent_lease_renewals_missed_total",
		Help: "Agent lease renewals (heartbeats) that failed, as the agents report them with their next renewal that went through."})
	chunkErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_chunk_store_errors_total",
		Help: "Chunk store calls that failed, by kind and operation."}, []string{"kind", "op"})
)

func newRegistry(s *Server) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		apiRequests, apiSeconds, fsSeconds, chunkBytes, chunkErrors, missedRenewals, chunkRequests, fsOps, blobRequests, &stateCollector{s: s})
	r.MustRegister(placement.Collectors()...)
	r.MustRegister(volume.Collectors()...)
	return r
}

func (s *Server) metricsRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(newRegistry(s), promhttp.HandlerOpts{}))
	mux.Handle("GET /metrics/etcd", promhttp.Handler())
}

// instrument counts and times every request by service and operation.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		service, op := s.operationOf(r)
		if service == "" {
			return
		}
		apiRequests.WithLabelValues(service, op, strconv.Itoa(rec.code)).Inc()
		apiSeconds.WithLabelValues(service, op).Observe(time.Since(start).Seconds())
	})
}

// operationOf names a request's service and operation; "" for what is
// not an API call (metrics, health, static files).
func (s *Server) operationOf(r *http.Request) (service, op string) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == "/":
		op = strings.TrimPrefix(r.Header.Get("X-Amz-Target"), ecs.TargetPrefix)
		if _, ok := s.API.Operation(op); !ok {
			op = "unknown"
		}
		return "ecs", op
	case strings.HasPrefix(p, efs.PathPrefix):
		return "efs", patternOr(r)
	case strings.HasPrefix(p, "/berth/v1/agent/"):
		return "agent", patternOr(r)
	case strings.HasPrefix(p, "/berth/v1/fs/"):
		return "fs", patternOr(r)
	case strings.HasPrefix(p, "/berth/v1/"):
		return "berth", patternOr(r)
	case p == "/" || strings.HasPrefix(p, "/console/") && !strings.HasPrefix(p, "/console/static/"):
		return "console", patternOr(r)
	}
	return "", ""
}

// patternOr is the route the request matched (set by the mux), so that
// ids in paths make no labels of their own.
func patternOr(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// stateCollector reports, at each scrape, what etcd and the cache hold:
// instances and connected agents, running and pending tasks, block
// volumes by state, file system mount sessions, lost agent leases.
type stateCollector struct{ s *Server }

var (
	instancesDesc = prometheus.NewDesc("berth_container_instances", "Registered container instances.", []string{"cluster"}, nil)
	connectedDesc = prometheus.NewDesc("berth_agents_connected", "Container instances whose agent holds its lease.", []string{"cluster"}, nil)
	tasksDesc     = prometheus.NewDesc("berth_tasks", "Tasks placed on instances, by last status (RUNNING, PENDING).", []string{"cluster", "state"}, nil)
	volumesDesc   = prometheus.NewDesc("berth_block_volumes", "Block volumes by state.", []string{"cluster", "state"}, nil)
	sessionsDesc  = prometheus.NewDesc("berth_fs_mount_sessions", "Open shared file system sessions (mounts), by file system.", []string{"file_system"}, nil)
	leasesDesc    = prometheus.NewDesc("berth_agent_leases_lost_total", "Agent leases that ended (expired, revoked or deregistered) as this server saw them.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{instancesDesc, connectedDesc, tasksDesc, volumesDesc, sessionsDesc, leasesDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if s.API == nil || s.API.Cache == nil {
		return
	}
	for cluster, sum := range s.API.Cache.Summaries() {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(sum.Instances), cluster)
		ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, float64(sum.Connected), cluster)
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(sum.Running), cluster, "RUNNING")
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(sum.Pending), cluster, "PENDING")
	}
	ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.CounterValue, float64(s.API.Cache.LeasesLost()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := s.client.Get(ctx, state.Prefix+"volumes/", clientv3.WithPrefix(), clientv3.WithSerializable()); err == nil {
		count := map[[2]string]int{}
		for _, kv := range resp.Kvs {
			var v agentapi.Volume
			if json.Unmarshal(kv.Value, &v) == nil {
				count[[2]string{v.Cluster, v.State}]++
			}
		}
		for k, n := range count {
			ch <- prometheus.MustNewConstMetric(volumesDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
	if s.fs != nil {
		if fss, err := s.fs.ListFS(ctx); err == nil {
			for _, f := range fss {
				resp, err := s.client.Get(ctx, state.FSMetaPrefix(f.ID)+"s/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
				if err == nil {
					ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(resp.Count), f.ID)
				}
			}
		}
	}
}
