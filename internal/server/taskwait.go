package server

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// TaskWaitRequest asks to be answered once a task's record differs from
// the version the caller has (or after WaitSeconds, at most 60).
type TaskWaitRequest struct {
	Cluster     string `json:"cluster"`
	Task        string `json:"task"`
	Version     int64  `json:"version"`
	WaitSeconds int    `json:"waitSeconds"`
}

// TaskWaitResponse is the task's version now, and how far its image
// pull got while it pulls.
type TaskWaitResponse struct {
	Version      int64  `json:"version"`
	PullProgress string `json:"pullProgress,omitempty"`
}

// taskWait lets a client follow a task without polling: it answers as
// soon as the task changes (berth run uses it).
func (s *Server) taskWait(ctx context.Context, r *TaskWaitRequest) (*TaskWaitResponse, error) {
	cluster, err := s.API.ResolveCluster(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	id, err := s.API.ResolveTask(cluster, r.Task)
	if err != nil {
		return nil, err
	}
	key := state.TaskKey(cluster, id)
	rec := &state.TaskRecord{}
	rev, err := state.New(s.client).Get(ctx, key, rec)
	if err != nil {
		return nil, spec.InvalidParam("The referenced task was not found.")
	}
	if v := spec.Val(rec.Version); v != r.Version {
		return &TaskWaitResponse{Version: v, PullProgress: rec.PullProgress}, nil
	}
	wait := time.Duration(min(max(r.WaitSeconds, 0), 60)) * time.Second
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for wr := range s.client.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(rev+1)) {
		if wr.Err() != nil {
			break
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return &TaskWaitResponse{Version: -1}, nil
			}
			now := &state.TaskRecord{}
			if json.Unmarshal(ev.Kv.Value, now) == nil && spec.Val(now.Version) != r.Version {
				return &TaskWaitResponse{Version: spec.Val(now.Version), PullProgress: now.PullProgress}, nil
			}
		}
	}
	return &TaskWaitResponse{Version: r.Version, PullProgress: rec.PullProgress}, nil
}
