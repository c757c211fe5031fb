package state

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// QuorumMessage says what an etcd error means to a caller, or "" when err
// is not one of etcd's "no quorum" errors. The outcome of a write that
// timed out is unknown: it may still be committed.
func QuorumMessage(err error) string {
	switch {
	case errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrGRPCTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrGRPCTimeoutDueToConnectionLost),
		errors.Is(err, context.DeadlineExceeded):
		return "The control plane did not commit this request in time (etcd: " + err.Error() + "); its outcome is unknown. Retry, on another server if this one keeps failing (RunTask with the same clientToken runs once)."
	case errors.Is(err, context.Canceled):
		return "The control plane's etcd leader changed while this request waited; its outcome is unknown. Retry (RunTask with the same clientToken runs once)."
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrGRPCNoLeader),
		errors.Is(err, rpctypes.ErrLeaderChanged), errors.Is(err, rpctypes.ErrGRPCLeaderChanged):
		return "The control plane is electing a leader (etcd: " + err.Error() + "); retry in a moment."
	}
	return ""
}
