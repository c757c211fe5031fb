// Package state owns Berth's data in etcd: the key layout, the stored record
// types and a watch-fed cache of container instances for the scheduler. It is
// the only package of the ECS side that talks to etcd; the shared file
// system's engine (internal/fsmeta) and the EFS API keep their own keys.
// It knows nothing of HTTP or ECS wire errors; callers translate
// ErrNotFound and ErrConflict.
//
// Key layout (all under Prefix):
//
//	clusters/NAME                   ClusterRecord
//	families/FAMILY                 FamilyRecord (revision counter)
//	taskdefs/FAMILY/REV(10 digits)  TaskDefRecord
//	instances/CLUSTER/ID            InstanceRecord (remaining resources included)
//	conn/CLUSTER/ID                 "" bound to the agent's lease (agentConnected)
//	tasks/CLUSTER/ID                TaskRecord
//	residency/CLUSTER/KEY           instance id holding instance-local data
//	tokens/CLUSTER/TOKEN            RunTask clientToken -> task ids
//	volumes/CLUSTER/ID              agentapi.Volume (block volume, its attachment and epoch)
//	snapshots/CLUSTER/ID            agentapi.Snapshot
//	services/CLUSTER/NAME           ServiceRecord
//	jointokens/ID                   JoinTokenRecord (agents join with it)
//	agentkeys/ACCESS_KEY            AgentKeyRecord (an agent's credentials, bound to one instance)
//	ca                              the cluster's CA, certificate and key (internal/server)
//	fs-chunk-key                    the key of issued chunk ids (internal/fsmeta)
//	filesystems/, fstokens/, fsm/   shared file systems (internal/fsmeta owns them)
//	efs/                            EFS mount targets, access points, mount tokens (internal/efs, internal/server)
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrNotFound means the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a guarded write lost a race; retry from fresh state.
	ErrConflict = errors.New("conflict")
	// ErrExists means a create found the key already there.
	ErrExists = errors.New("already exists")
)

// Store is typed access to Berth's keys. New does no I/O.
type Store struct {
	Client *clientv3.Client
}

// New wraps an etcd client.
func New(cli *clientv3.Client) *Store { return &Store{Client: cli} }

// Get decodes the value at key into v and returns its mod revision.
func (s *Store) Get(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.Client.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrNotFound
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// Rev returns etcd's current revision (a linearizable read).
func (s *Store) Rev(ctx context.Context) (int64, error) {
	resp, err := s.Client.Get(ctx, Prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Exists reports whether key exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	resp, err := s.Client.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return false, err
	}
	return resp.Count > 0, nil
}

// Count returns how many keys start with prefix.
func (s *Store) Count(ctx context.Context, prefix string) (int64, error) {
	resp, err := s.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// Range calls fn for each key under prefix, in key order, starting after
// `after` (exclusive, "" for the start), reading in pages all at the
// revision of the first, so the caller sees one consistent state. fn
// returns false to stop. Every caller must check the error: a failed read
// is not an empty prefix.
func (s *Store) Range(ctx context.Context, prefix, after string, fn func(key string, val []byte, modRev int64) (bool, error)) error {
	start := prefix
	if after != "" {
		start = after + "\x00"
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(500)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.Client.Get(ctx, start, opts...)
		if err != nil {
			return fmt.Errorf("range %s: %w", prefix, err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			more, err := fn(string(kv.Key), kv.Value, kv.ModRevision)
			if err != nil || !more {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Create writes v at key only if the key does not exist.
func (s *Store) Create(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := s.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	if !resp.Succeeded {
		return ErrExists
	}
	return nil
}

// Put writes v at key if its mod revision is still rev (0: must not exist).
func (s *Store) Put(ctx context.Context, key string, v any, rev int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := s.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// Update reads key into a fresh T, lets fn change it and writes it back,
// retrying on conflict. fn may return an error to abort without writing.
func Update[T any](ctx context.Context, s *Store, key string, fn func(*T) error) (*T, error) {
	for attempt := 0; attempt < 50; attempt++ {
		v := new(T)
		rev, err := s.Get(ctx, key, v)
		if err != nil {
			return nil, err
		}
		if err := fn(v); err != nil {
			return nil, err
		}
		if err := s.Put(ctx, key, v, rev); err == ErrConflict {
			continue
		} else if err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, fmt.Errorf("update %s: %w", key, ErrConflict)
}

// Marshal encodes v for a transaction.
func Marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only our own record types reach here
	}
	return string(b)
}
