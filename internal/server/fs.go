package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	iofs "io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/blob/fschunk"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/fsmeta"
	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/spec"
)

// Shared file systems: the mount API (metadata operations, chunks, change
// events) and Berth's own management endpoints.
func (s *Server) fsRoutes(mux *http.ServeMux) {
	mux.Handle("POST /berth/v1/fs/op", s.fsAuth(http.HandlerFunc(s.fsOp)))
	mux.Handle("/berth/v1/fs/chunks/{fs}/{id}", s.fsAuth(http.HandlerFunc(s.fsChunk)))
	mux.Handle("GET /berth/v1/fs/events", s.fsAuth(http.HandlerFunc(s.fsEvents)))
	mux.Handle("POST /berth/v1/agent/efs-mount", s.auth(jsonHandler(s.efsMount)))
	mux.HandleFunc("GET /berth/v1/ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(s.caPEM)
	})
	s.efs.Routes(mux, s.auth)
	mux.Handle("POST /berth/v1/fs/create", s.auth(jsonHandler(s.fsCreate)))
	mux.Handle("POST /berth/v1/fs/describe", s.auth(jsonHandler(s.fsDescribe)))
	mux.Handle("POST /berth/v1/fs/delete", s.auth(jsonHandler(s.fsDelete)))
	mux.Handle("POST /berth/v1/fs/fsck", s.auth(jsonHandler(s.fsFsck)))
}

func (s *Server) fsOp(w http.ResponseWriter, r *http.Request) {
	req := &fsproto.Request{}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(req); err != nil {
		http.Error(w, "unable to parse request body", http.StatusBadRequest)
		return
	}
	op := "unknown"
	if req.Op.Known() {
		op = string(req.Op)
	}
	fsOps.WithLabelValues(op).Inc()
	var resp *fsproto.Response
	tok := tokenOf(r.Context())
	switch {
	case tok != nil && req.FS != tok.FS:
		resp = &fsproto.Response{Errno: syscall.EACCES, Message: "the mount token is for another file system"}
	case req.Op == fsproto.OpSessionOpen:
		resp = s.openSession(r, req)
	case tok != nil && (req.Session == "" || req.Session != tok.Session):
		// A task's mount acts only within the session its token opened.
		resp = &fsproto.Response{Errno: syscall.EACCES, Message: "the mount token is for another session"}
	default:
		start := time.Now()
		resp = s.fs.Do(r.Context(), req)
		fsSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
		if n := len(resp.Chunks); n > 0 {
			chunkRequests.WithLabelValues(http.MethodPut, "signed").Add(float64(n))
		}
		if n := len(resp.URLs); n > 0 {
			chunkRequests.WithLabelValues(http.MethodGet, "signed").Add(float64(n))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (s *Server) fsChunk(w http.ResponseWriter, r *http.Request) {
	fs, id := r.PathValue("fs"), r.PathValue("id")
	if !fsproto.ValidFSID(fs) || !fsproto.ValidChunkID(id) {
		http.Error(w, "invalid chunk", http.StatusBadRequest)
		return
	}
	if tok := tokenOf(r.Context()); tok != nil && (tok.FS != fs || tok.Session == "") {
		http.Error(w, "the mount token is for another file system", http.StatusForbidden)
		return
	}
	// On a store mounts can reach themselves (S3), the server only
	// authorises: it answers with a short-lived URL of the chunk, and the
	// bytes move between the mount and the store.
	direct, _ := s.fs.Chunks.(fschunk.Objects)
	if direct.Objects != nil && direct.Direct() {
		chunkRequests.WithLabelValues(r.Method, "redirected").Inc()
		s.fsChunkDirect(w, r, direct, fs, id)
		return
	}
	chunkRequests.WithLabelValues(r.Method, "proxied").Inc()
	switch r.Method {
	case http.MethodGet:
		f, size, err := s.fs.Chunks.Open(r.Context(), fs, id)
		if errors.Is(err, iofs.ErrNotExist) {
			http.Error(w, "no such chunk", http.StatusNotFound)
			return
		} else if err != nil {
			chunkErrors.WithLabelValues("fs", "get").Inc()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		n, _ := io.Copy(w, f) // sendfile(2) on a TCP connection
		chunkBytes.WithLabelValues("fs", "out").Add(float64(n))
	case http.MethodPut:
		if r.ContentLength < 0 || r.ContentLength > fsproto.BlockSize {
			http.Error(w, "a chunk needs a Content-Length of at most one block", http.StatusRequestEntityTooLarge)
			return
		}
		bp := chunkBufs.Get().(*[]byte)
		defer chunkBufs.Put(bp)
		b := (*bp)[:r.ContentLength]
		if _, err := io.ReadFull(r.Body, b); err != nil {
			http.Error(w, "short chunk body", http.StatusBadRequest)
			return
		}
		if ok, err := s.fsExists(r.Context(), fs); err != nil || !ok {
			http.Error(w, "no such file system", http.StatusNotFound)
			return
		}
		switch err := s.fs.Chunks.Put(r.Context(), fs, id, b); {
		case errors.Is(err, fschunk.ErrExists):
			http.Error(w, "chunk exists", http.StatusConflict)
		case err != nil:
			chunkErrors.WithLabelValues("fs", "put").Inc()
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			chunkBytes.WithLabelValues("fs", "in").Add(float64(len(b)))
			w.WriteHeader(http.StatusCreated)
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// chunkBufs recycles the buffers chunk uploads are read into: at hundreds
// of MiB/s, fresh 4 MiB buffers cost the server more than the copying.
var chunkBufs = sync.Pool{New: func() any { b := fschunk.AlignedBuffer(fsproto.BlockSize); return &b }}

func (s *Server) fsExists(ctx context.Context, fs string) (bool, error) {
	_, err := s.fs.GetFS(ctx, fs)
	if errors.Is(err, fsmeta.ErrNoFS) {
		return false, nil
	}
	return err == nil, err
}

// fsEvents streams a file system's changes as JSON lines until the client
// goes away, leaving out those the asking session made itself. A blank line every few seconds keeps idle connections alive.
func (s *Server) fsEvents(w http.ResponseWriter, r *http.Request) {
	fs, sess := r.URL.Query().Get("fs"), r.URL.Query().Get("session")
	if tok := tokenOf(r.Context()); tok != nil && (tok.FS != fs || tok.Session != sess) {
		http.Error(w, "the mount token is for another file system", http.StatusForbidden)
		return
	}
	if ok, err := s.fsExists(r.Context(), fs); err != nil || !ok {
		http.Error(w, "no such file system", http.StatusNotFound)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(r.Context()))
	defer cancel()
	// The stream starts after a revision: the one a mount resuming (on
	// this server or another) saw whole, or now. Its first line says which.
	start, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil || start <= 0 {
		now, err := s.client.Get(ctx, fsmeta.WatchPrefix(fs), clientv3.WithCountOnly())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		start = now.Header.Revision
	}
	wch := s.client.Watch(ctx, fsmeta.WatchPrefix(fs), clientv3.WithPrefix(), clientv3.WithRev(start+1))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.Encode(fsproto.Event{Rev: start})
	fl.Flush()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case <-tick.C:
			if _, err := w.Write([]byte("\n")); err != nil {
				return
			}
			fl.Flush()
		case resp, ok := <-wch:
			if ok && resp.CompactRevision != 0 {
				enc.Encode(fsproto.Event{Reset: true}) // the changes asked for are gone
				fl.Flush()
				return
			}
			if !ok || resp.Err() != nil {
				return
			}
			// A deletion names no session, but every change that deletes
			// also writes something that does (the directory's times, an
			// inode) in the same transaction: that is its author.
			events := make([]fsproto.Event, 0, len(resp.Events))
			by := map[int64]string{}
			for _, ev := range resp.Events {
				if e, ok := fsmeta.EventFor(fs, string(ev.Kv.Key), ev.Kv.Value); ok {
					e.Rev = ev.Kv.ModRevision
					if e.By != "" {
						by[e.Rev] = e.By
					}
					events = append(events, e)
				}
			}
			for _, e := range events {
				if e.By == "" {
					e.By = by[e.Rev]
				}
				if e.By == "" || e.By != sess {
					s.fs.PresentEvent(sess, &e)
					if e.Ino == 0 && e.Parent == 0 {
						continue // nothing this session may be told
					}
					if enc.Encode(e) != nil {
						return
					}
				}
			}
			fl.Flush()
		}
	}
}

// FSCreateRequest creates a shared file system.
type FSCreateRequest struct {
	Name          string       `json:"name"`
	CreationToken string       `json:"creationToken,omitempty"`
	Tags          []fsmeta.Tag `json:"tags,omitempty"`
}

// FSDescription is a file system as Berth's API shows it.
type FSDescription struct {
	fsmeta.FileSystem
	SizeInBytes uint64 `json:"sizeInBytes"`
	Inodes      uint64 `json:"inodes"`
	Mounts      int64  `json:"mounts"`
}

// FSList is a list of file systems.
type FSList struct {
	FileSystems []FSDescription `json:"fileSystems"`
}

// FSRef names a file system.
type FSRef struct {
	ID     string `json:"fileSystemId"`
	Repair bool   `json:"repair,omitempty"`
}

func (s *Server) describeFS(ctx context.Context, f *fsmeta.FileSystem) (FSDescription, error) {
	d := FSDescription{FileSystem: *f}
	u, err := s.fs.Usage(ctx, f.ID, 5*time.Second)
	if err != nil {
		return d, err
	}
	d.SizeInBytes, d.Inodes = u.Bytes, u.Files
	d.Mounts, err = s.fs.Sessions(ctx, f.ID)
	return d, err
}

func (s *Server) fsCreate(ctx context.Context, req *FSCreateRequest) (*FSList, error) {
	if req.Name == "" && req.CreationToken == "" {
		return nil, spec.InvalidParam("A file system name is required.")
	}
	token := req.CreationToken
	if token == "" {
		token = req.Name
	}
	f, err := s.fs.CreateFS(ctx, token, &fsmeta.FileSystem{Name: req.Name, CreationToken: token, Tags: req.Tags})
	if errors.Is(err, fsmeta.ErrTokenUsed) {
		return nil, &spec.Error{Code: "FileSystemAlreadyExists", Message: "File system '" + f.ID + "' already exists with creation token '" + token + "'"}
	} else if err != nil {
		return nil, err
	}
	d, err := s.describeFS(ctx, f)
	return &FSList{FileSystems: []FSDescription{d}}, err
}

var errNoFS = func(id string) error {
	return &spec.Error{Code: "FileSystemNotFound", Message: "File system '" + id + "' does not exist."}
}

func (s *Server) fsDescribe(ctx context.Context, req *FSRef) (*FSList, error) {
	var fss []*fsmeta.FileSystem
	if req.ID != "" {
		f, err := s.fs.GetFS(ctx, req.ID)
		if errors.Is(err, fsmeta.ErrNoFS) {
			return nil, errNoFS(req.ID)
		} else if err != nil {
			return nil, err
		}
		fss = append(fss, f)
	} else {
		var err error
		if fss, err = s.fs.ListFS(ctx); err != nil {
			return nil, err
		}
	}
	out := &FSList{FileSystems: []FSDescription{}}
	for _, f := range fss {
		d, err := s.describeFS(ctx, f)
		if err != nil {
			return nil, err
		}
		out.FileSystems = append(out.FileSystems, d)
	}
	return out, nil
}

func (s *Server) fsDelete(ctx context.Context, req *FSRef) (*FSList, error) {
	f, err := s.fs.GetFS(ctx, req.ID)
	if errors.Is(err, fsmeta.ErrNoFS) {
		return nil, errNoFS(req.ID)
	} else if err != nil {
		return nil, err
	}
	guards, ops, err := efs.AccessPointDeletes(ctx, s.client, req.ID)
	if err != nil {
		return nil, err
	}
	switch err := s.fs.DeleteFS(ctx, req.ID, f.CreationToken, guards, ops); {
	case errors.Is(err, fsmeta.ErrFSInUse):
		if zones, zerr := efs.MountTargetZones(ctx, s.client, req.ID); zerr == nil && len(zones) > 0 {
			var names []string
			for z := range zones {
				names = append(names, z)
			}
			sort.Strings(names)
			return nil, &spec.Error{Code: "FileSystemInUse", Message: "File system '" + req.ID + "' has mount targets (in " + strings.Join(names, ", ") +
				"): delete them first (berth fs mount-target rm, or aws efs delete-mount-target)."}
		}
		return nil, &spec.Error{Code: "FileSystemInUse", Message: "File system '" + req.ID + "' is mounted."}
	case errors.Is(err, fsmeta.ErrNoFS):
		return nil, errNoFS(req.ID)
	case err != nil:
		return nil, err
	}
	return &FSList{FileSystems: []FSDescription{}}, nil
}

func (s *Server) fsFsck(ctx context.Context, req *FSRef) (*fsmeta.FsckReport, error) {
	rep, err := s.fs.Fsck(ctx, req.ID, req.Repair)
	if errors.Is(err, fsmeta.ErrNoFS) {
		return nil, errNoFS(req.ID)
	}
	return rep, err
}

// fsChunkDirect redirects a chunk's GET or PUT to the store: 307 with a
// presigned URL (a PUT's for exactly its Content-Length, sent with
// "Expect: 100-continue" so the body is not sent to the server first).
func (s *Server) fsChunkDirect(w http.ResponseWriter, r *http.Request, chunks fschunk.Objects, fs, id string) {
	var url string
	var err error
	switch r.Method {
	case http.MethodGet:
		url, err = chunks.GetURL(r.Context(), fs, id)
	case http.MethodPut:
		if r.ContentLength < 0 || r.ContentLength > fsproto.BlockSize {
			http.Error(w, "a chunk needs a Content-Length of at most one block", http.StatusRequestEntityTooLarge)
			return
		}
		if ok, ferr := s.fsExists(r.Context(), fs); ferr != nil || !ok {
			http.Error(w, "no such file system", http.StatusNotFound)
			return
		}
		// The chunk goes under an id the server issues, whatever the
		// mount proposed: it names no existing chunk, and carries its age.
		id = s.fs.IssueChunkID(fs, time.Now())
		url, err = chunks.PutURL(r.Context(), fs, id, r.ContentLength)
		w.Header().Set("Connection", "close") // the body was never sent
		w.Header().Set("X-Berth-Chunk-Id", id)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	switch {
	case errors.Is(err, fschunk.ErrExists):
		http.Error(w, "chunk exists", http.StatusConflict)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Location", url)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}
}

var chunkRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "berth_fs_chunk_requests_total",
	Help: "Shared file system chunk transfers the server took part in: proxied (the bytes pass through this server), redirected (one request, answered with the blob store's URL) or signed (a URL given in a batch, with block lists or in advance for whole blocks). In the last two the mount moves the bytes to or from the blob store itself.",
}, []string{"method", "path"})

var fsOps = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "berth_fs_ops_total",
	Help: "Shared file system metadata operations mounts sent, by operation.",
}, []string{"op"})
