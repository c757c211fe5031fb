// Package ecs is the ECS API edge: awsJson1.1 decoding, request validation,
// the operations, and translation of errors into ECS exceptions. Placement
// goes through package placement; storage through package state. Nothing
// here is written before a request has been fully validated.
package ecs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/placement"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// MaxBody bounds an ECS request body. It is well above ECS's own limits
// (64 KiB task definitions, 8,192 characters of overrides), so a request
// over those gets ECS's exception for them, not a truncated body.
const MaxBody = 4 << 20

// TargetPrefix is the X-Amz-Target prefix of ECS operations.
const TargetPrefix = "AmazonEC2ContainerServiceV20141113."

// API serves the ECS operations.
type API struct {
	Store    *state.Store
	Cache    *state.Cache
	Applier  *placement.Applier
	Region   string
	Account  string
	LeaseTTL int64 // seconds an agent stays connected without a heartbeat
	Log      *slog.Logger
	Now      func() time.Time

	ops map[string]opFunc
}

type opFunc = awsjson.Op

// op turns a typed operation into an entry of the table.
func op[Req, Resp any](f func(context.Context, *Req) (*Resp, error)) opFunc { return awsjson.Handle(f) }

// Decode parses an awsJson1.1 request body (awsjson.Decode): an empty
// body is an empty object; malformed JSON or a wrongly typed field is a
// SerializationException.
func Decode(body []byte, v any) error { return awsjson.Decode(body, v) }

// New wires the operation table.
func New(a *API) *API {
	if a.Now == nil {
		a.Now = time.Now
	}
	a.ops = map[string]opFunc{
		"CreateCluster":                 op(a.CreateCluster),
		"DescribeClusters":              op(a.DescribeClusters),
		"ListClusters":                  op(a.ListClusters),
		"UpdateCluster":                 op(a.UpdateCluster),
		"PutClusterCapacityProviders":   op(a.PutClusterCapacityProviders),
		"DescribeCapacityProviders":     op(a.DescribeCapacityProviders),
		"DeleteCluster":                 op(a.DeleteCluster),
		"RegisterTaskDefinition":        op(a.RegisterTaskDefinition),
		"DescribeTaskDefinition":        op(a.DescribeTaskDefinition),
		"ListTaskDefinitions":           op(a.ListTaskDefinitions),
		"ListTaskDefinitionFamilies":    op(a.ListTaskDefinitionFamilies),
		"DeregisterTaskDefinition":      op(a.DeregisterTaskDefinition),
		"DeleteTaskDefinitions":         op(a.DeleteTaskDefinitions),
		"RegisterContainerInstance":     op(a.RegisterContainerInstance),
		"DeregisterContainerInstance":   op(a.DeregisterContainerInstance),
		"DescribeContainerInstances":    op(a.DescribeContainerInstances),
		"ListContainerInstances":        op(a.ListContainerInstances),
		"UpdateContainerInstancesState": op(a.UpdateContainerInstancesState),
		"RunTask":                       op(a.RunTask),
		"StartTask":                     op(a.StartTask),
		"StopTask":                      op(a.StopTask),
		"DescribeTasks":                 op(a.DescribeTasks),
		"ListTasks":                     op(a.ListTasks),
		"SubmitTaskStateChange":         op(a.SubmitTaskStateChange),
		"PutAttributes":                 op(a.PutAttributes),
		"DeleteAttributes":              op(a.DeleteAttributes),
		"ListAttributes":                op(a.ListAttributes),
		"CreateService":                 op(a.CreateService),
		"DescribeServices":              op(a.DescribeServices),
		"ListServices":                  op(a.ListServices),
		"UpdateService":                 op(a.UpdateService),
		"DeleteService":                 op(a.DeleteService),
		"TagResource":                   op(a.TagResource),
		"UntagResource":                 op(a.UntagResource),
		"ListTagsForResource":           op(a.ListTagsForResource),
		"UpdateClusterSettings":         op(a.UpdateClusterSettings),
		"PutAccountSetting":             op(a.PutAccountSetting),
		"PutAccountSettingDefault":      op(a.PutAccountSettingDefault),
		"DeleteAccountSetting":          op(a.DeleteAccountSetting),
		"ListAccountSettings":           op(a.ListAccountSettings),
	}
	return a
}

// Operation returns the handler for an operation name, for tests and fuzzing.
func (a *API) Operation(name string) (func(context.Context, []byte) (any, error), bool) {
	f, ok := a.ops[name]
	return f, ok
}

// ServeHTTP handles POST / with an X-Amz-Target header.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, TargetPrefix)
	if r.Method != http.MethodPost || !ok {
		WriteError(w, &spec.Error{Code: "UnknownOperationException", Message: "Unknown operation " + target})
		return
	}
	f, ok := a.ops[name]
	if !ok {
		WriteError(w, &spec.Error{Code: "UnknownOperationException", Message: "Unknown operation " + name})
		return
	}
	body, e := spec.ReadBody(r.Body, MaxBody)
	if e != nil {
		WriteError(w, e)
		return
	}
	resp, err := f(r.Context(), body)
	if err != nil {
		var se *spec.Error
		if !errors.As(err, &se) {
			a.Log.Error("ecs operation failed", "op", name, "err", err)
			se = &spec.Error{Code: "ServerException", Message: "Internal server error."}
			if m := state.QuorumMessage(err); m != "" {
				se.Message = m
			}
		}
		WriteError(w, se)
		return
	}
	spec.EmptyLists(resp)
	b, err := json.Marshal(resp)
	if err != nil {
		WriteError(w, &spec.Error{Code: "ServerException", Message: "Internal server error."})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newID())
	w.Write(b)
}

// WriteError writes an awsJson1.1 error.
func WriteError(w http.ResponseWriter, e *spec.Error) { awsjson.WriteError(w, e) }

// newID returns 32 random hex digits, the form of ECS task and instance ids.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ARNs.
func (a *API) arn(resource string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:%s", a.Region, a.Account, resource)
}
func (a *API) clusterARN(name string) string { return a.arn("cluster/" + name) }
func (a *API) taskDefARN(family string, rev int) string {
	return a.arn(fmt.Sprintf("task-definition/%s:%d", family, rev))
}
func (a *API) instanceARN(cluster, id string) string {
	return a.arn("container-instance/" + cluster + "/" + id)
}
func (a *API) taskARN(cluster, id string) string { return a.arn("task/" + cluster + "/" + id) }

// resourceOf splits an ECS ARN into its resource type and path.
func (a *API) resourceOf(arn string) (kind, path string, ok bool) {
	prefix := fmt.Sprintf("arn:aws:ecs:%s:%s:", a.Region, a.Account)
	rest, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}

// clusterResource resolves an id (or name) or an ARN of the form
// KIND/CLUSTER/ID of a resource in cluster: kind is container-instance,
// task or service.
func (a *API) clusterResource(cluster, kind, ref string) (string, error) {
	noun := map[string]string{"container-instance": "container instance", "task": "task", "service": "service"}[kind]
	if strings.HasPrefix(ref, "arn:") {
		k, path, ok := a.resourceOf(ref)
		c, id, ok2 := strings.Cut(path, "/")
		if !ok || !ok2 || k != kind || c != cluster {
			return "", spec.InvalidParam("Invalid %s ARN '%s' for cluster '%s'.", noun, ref, cluster)
		}
		return id, nil
	}
	if kind == "service" {
		if !spec.ValidName(ref) {
			return "", spec.InvalidParam("Invalid service name '%s'. Up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.", ref)
		}
		return ref, nil
	}
	if ref == "" || strings.ContainsAny(ref, "/ ") {
		return "", spec.InvalidParam("Invalid %s id '%s'.", noun, ref)
	}
	return ref, nil
}

func (a *API) instanceID(cluster, ref string) (string, error) {
	return a.clusterResource(cluster, "container-instance", ref)
}
func (a *API) taskID(cluster, ref string) (string, error) {
	return a.clusterResource(cluster, "task", ref)
}
func (a *API) serviceName(cluster, ref string) (string, error) {
	return a.clusterResource(cluster, "service", ref)
}

// Pagination tokens are opaque to clients: the last key returned, encoded.
func encodeToken(lastKey string) *string {
	if lastKey == "" {
		return nil
	}
	s := base64.RawURLEncoding.EncodeToString([]byte(lastKey))
	return &s
}

func decodeToken(tok *string, prefix string) (string, error) {
	if tok == nil || *tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*tok)
	if err != nil || !strings.HasPrefix(string(b), prefix) {
		return "", spec.InvalidParam("Invalid nextToken.")
	}
	return string(b), nil
}

// listPage returns one page of the ARNs of the records under prefix that
// keep accepts, in key order after the token, and the next page's token.
func listPage[T any](ctx context.Context, s *state.Store, prefix string, token *string, limit int, keep func(*T) (string, bool)) ([]string, *string, error) {
	after, err := decodeToken(token, prefix)
	if err != nil {
		return nil, nil, err
	}
	arns := []string{}
	var next *string
	var last string
	err = s.Range(ctx, prefix, after, func(key string, val []byte, _ int64) (bool, error) {
		rec := new(T)
		if err := json.Unmarshal(val, rec); err != nil {
			return false, err
		}
		arn, ok := keep(rec)
		if !ok {
			return true, nil
		}
		if len(arns) == limit {
			next = encodeToken(last)
			return false, nil
		}
		arns = append(arns, arn)
		last = key
		return true, nil
	})
	return arns, next, err
}

// anyUnder reports whether some record under prefix satisfies pred.
func anyUnder[T any](ctx context.Context, s *state.Store, prefix string, pred func(*T) bool) (bool, error) {
	found := false
	err := s.Range(ctx, prefix, "", func(_ string, val []byte, _ int64) (bool, error) {
		rec := new(T)
		if err := json.Unmarshal(val, rec); err != nil {
			return false, err
		}
		found = pred(rec)
		return !found, nil
	})
	return found, err
}

func pageSize(max *int32, limit int32) (int, error) {
	if max == nil {
		return int(limit), nil
	}
	if *max < 1 || *max > limit {
		return 0, spec.InvalidParam("maxResults must be between 1 and %d.", limit)
	}
	return int(*max), nil
}

func isNotFound(err error) bool { return errors.Is(err, state.ErrNotFound) }
