// Package agentauth binds an agent's credentials to the one container
// instance they registered: every agent endpoint and every ECS call an
// agent makes passes Owns or MayAct before it reads or writes anything of
// an instance.
package agentauth

import (
	"context"
	"errors"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

type keyCtx struct{}

// WithKey marks a request as made with an agent's access key.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// KeyOf is the agent access key a request was made with ("" for an
// operator's key or an unauthenticated loopback server).
func KeyOf(ctx context.Context) string {
	k, _ := ctx.Value(keyCtx{}).(string)
	return k
}

// Owns checks that an instance exists and, for a request made with an
// agent's access key, that this key registered it: an agent acts only for
// its own instance (its tasks, volumes, snapshots, lease and mounts).
func Owns(ctx context.Context, s *state.Store, cluster, id string) error {
	ir := &state.InstanceRecord{}
	if _, err := s.Get(ctx, state.InstanceKey(cluster, id), ir); errors.Is(err, state.ErrNotFound) {
		return spec.InvalidParam("Container instance '%s' is not registered in cluster '%s'.", id, cluster)
	} else if err != nil {
		return err
	}
	if k := KeyOf(ctx); k != "" && k != ir.AgentKey {
		return ErrNotOwner(id)
	}
	return nil
}

// MayAct checks, for a request made with an agent's key, that the key
// registered the instance; an operator may act for any instance, or none.
func MayAct(ctx context.Context, s *state.Store, cluster, id string) error {
	if KeyOf(ctx) == "" {
		return nil
	}
	if err := Owns(ctx, s, cluster, id); err != nil {
		var se *spec.Error
		if errors.As(err, &se) && se.Code == "InvalidParameterException" {
			return ErrNotOwner(id) // an instance gone is no one's to act for
		}
		return err
	}
	return nil
}

// ErrNotOwner refuses an agent acting for another's instance.
func ErrNotOwner(id string) error {
	return &spec.Error{Code: "AccessDeniedException", Message: "Only the agent that registered container instance " + id + " may act for it."}
}

// JoinedKey is the record of the joined agent's key a request was made
// with, or nil for an operator's key or a static agent key.
func JoinedKey(ctx context.Context, s *state.Store) (*state.AgentKeyRecord, int64, error) {
	k := KeyOf(ctx)
	if k == "" {
		return nil, 0, nil
	}
	rec := &state.AgentKeyRecord{}
	rev, err := s.Get(ctx, state.AgentKeyKey(k), rec)
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, nil
	}
	return rec, rev, err
}
