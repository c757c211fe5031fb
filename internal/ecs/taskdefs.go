package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// RegisterTaskDefinition validates fully, then writes the next revision of
// the family in one transaction with its revision counter.
func (a *API) RegisterTaskDefinition(ctx context.Context, r *spec.RegisterTaskDefinitionRequest) (*spec.RegisterTaskDefinitionResponse, error) {
	if err := spec.ValidateTaskDefinition(r); err != nil {
		return nil, err
	}
	if err := spec.CheckTaskDefinitionSize(r); err != nil {
		return nil, err
	}
	fargate := fargateCompatible(r)
	// The request and the stored definition share their field names.
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	family := *r.Family
	for attempt := 0; attempt < 50; attempt++ {
		fam := &state.FamilyRecord{}
		frev, err := a.Store.Get(ctx, state.FamilyKey(family), fam)
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		rev := fam.Last + 1
		td := spec.TaskDefinition{}
		if err := json.Unmarshal(raw, &td); err != nil {
			return nil, err
		}
		td.TaskDefinitionArn = spec.Str(a.taskDefARN(family, rev))
		td.Revision = spec.I32(int32(rev))
		td.Status = spec.Str("ACTIVE")
		td.RegisteredAt = spec.TS(a.Now())
		td.RegisteredBy = spec.Str("arn:aws:iam::" + a.Account + ":root")
		td.Compatibilities = compatibilities(&td, fargate)
		td.RequiresAttributes = spec.RequiredAttributes(&td)
		rec := &state.TaskDefRecord{TaskDefinition: td, Tags: r.Tags}
		resp, err := a.Store.Client.Txn(ctx).If(
			modRevIs(state.FamilyKey(family), frev),
		).Then(
			clientv3.OpPut(state.FamilyKey(family), state.Marshal(&state.FamilyRecord{Last: rev})),
			clientv3.OpPut(state.TaskDefKey(family, rev), state.Marshal(rec)),
		).Commit()
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			return &spec.RegisterTaskDefinitionResponse{TaskDefinition: &rec.TaskDefinition, Tags: r.Tags}, nil
		}
	}
	return nil, spec.Exception("ServerException", "Too many concurrent registrations of family %s; try again.", family)
}

// compatibilities lists the launch types a definition can run with, as ECS computes them.
func compatibilities(td *spec.TaskDefinition, fargate bool) []string {
	out := []string{spec.EC2}
	if fargate {
		out = append(out, spec.Fargate)
	}
	for _, c := range td.RequiresCompatibilities {
		if !containsStr(out, c) {
			out = append(out, c)
		}
	}
	if !containsStr(out, spec.External) {
		out = append(out, spec.External)
	}
	return out
}

// taskDefRef parses "family", "family:rev" or a task-definition ARN.
// rev is 0 when the reference names no revision.
func (a *API) taskDefRef(ref string) (family string, rev int, err error) {
	s := ref
	if strings.HasPrefix(s, "arn:") {
		kind, path, ok := a.resourceOf(s)
		if !ok || kind != "task-definition" {
			return "", 0, spec.ClientErr("Invalid task definition ARN '%s'.", ref)
		}
		s = path
	}
	family, revStr, hasRev := strings.Cut(s, ":")
	if !spec.ValidName(family) {
		return "", 0, spec.ClientErr("Invalid revision number. Number: %s", revStr)
	}
	if hasRev {
		n, err := strconv.Atoi(revStr)
		if err != nil || n < 1 {
			return "", 0, spec.ClientErr("Invalid revision number. Number: %s", revStr)
		}
		rev = n
	}
	return family, rev, nil
}

// loadTaskDef resolves a reference; without a revision, the latest ACTIVE one.
func (a *API) loadTaskDef(ctx context.Context, ref string) (*state.TaskDefRecord, int64, error) {
	if ref == "" {
		return nil, 0, spec.ClientErr("taskDefinition is required.")
	}
	family, rev, err := a.taskDefRef(ref)
	if err != nil {
		return nil, 0, err
	}
	rec := &state.TaskDefRecord{}
	if rev > 0 {
		mrev, err := a.Store.Get(ctx, state.TaskDefKey(family, rev), rec)
		if isNotFound(err) {
			return nil, 0, spec.ClientErr("Unable to describe task definition.")
		}
		return rec, mrev, err
	}
	resp, err := a.Store.Client.Get(ctx, state.TaskDefPrefix(family), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, 0, err
	}
	for _, kv := range resp.Kvs {
		if err := json.Unmarshal(kv.Value, rec); err != nil {
			return nil, 0, err
		}
		if spec.Val(rec.TaskDefinition.Status) == "ACTIVE" {
			return rec, kv.ModRevision, nil
		}
	}
	return nil, 0, spec.ClientErr("Unable to describe task definition.")
}

// DescribeTaskDefinition returns one revision (and its tags when asked).
func (a *API) DescribeTaskDefinition(ctx context.Context, r *spec.DescribeTaskDefinitionRequest) (*spec.DescribeTaskDefinitionResponse, error) {
	rec, _, err := a.loadTaskDef(ctx, spec.Val(r.TaskDefinition))
	if err != nil {
		return nil, err
	}
	out := &spec.DescribeTaskDefinitionResponse{TaskDefinition: &rec.TaskDefinition}
	if containsStr(r.Include, "TAGS") {
		out.Tags = rec.Tags
		if out.Tags == nil {
			out.Tags = []spec.Tag{}
		}
	}
	return out, nil
}

// ListTaskDefinitions lists ARNs, by family and status, sorted by family then revision.
func (a *API) ListTaskDefinitions(ctx context.Context, r *spec.ListTaskDefinitionsRequest) (*spec.ListTaskDefinitionsResponse, error) {
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	status := spec.Val(r.Status)
	if status == "" {
		status = "ACTIVE"
	}
	if status != "ACTIVE" && status != "INACTIVE" && status != "DELETE_IN_PROGRESS" {
		return nil, spec.InvalidParam("Invalid status '%s'. Valid values: ACTIVE, INACTIVE, DELETE_IN_PROGRESS.", status)
	}
	order := spec.Val(r.Sort)
	if order == "" {
		order = "ASC"
	}
	if order != "ASC" && order != "DESC" {
		return nil, spec.InvalidParam("Invalid sort '%s'. Valid values: ASC, DESC.", order)
	}
	prefix := state.TaskDefsPrefix()
	if f := spec.Val(r.FamilyPrefix); f != "" {
		prefix = state.TaskDefPrefix(f)
	}
	// Collect matching keys, then page over them in the requested order.
	type item struct{ key, arn string }
	var items []item
	err = a.Store.Range(ctx, prefix, "", func(key string, val []byte, _ int64) (bool, error) {
		rec := &state.TaskDefRecord{}
		if err := json.Unmarshal(val, rec); err != nil {
			return false, err
		}
		if spec.Val(rec.TaskDefinition.Status) == status {
			items = append(items, item{key, spec.Val(rec.TaskDefinition.TaskDefinitionArn)})
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if order == "DESC" {
		sort.SliceStable(items, func(i, j int) bool { return items[i].key > items[j].key })
	}
	after, err := decodeToken(r.NextToken, state.TaskDefsPrefix())
	if err != nil {
		return nil, err
	}
	start := 0
	if after != "" {
		start = len(items)
		for i, it := range items {
			if (order == "ASC" && it.key > after) || (order == "DESC" && it.key < after) {
				start = i
				break
			}
		}
	}
	end := min(start+limit, len(items))
	out := &spec.ListTaskDefinitionsResponse{TaskDefinitionArns: []string{}}
	for _, it := range items[start:end] {
		out.TaskDefinitionArns = append(out.TaskDefinitionArns, it.arn)
	}
	if end < len(items) {
		out.NextToken = encodeToken(items[end-1].key)
	}
	return out, nil
}

// ListTaskDefinitionFamilies lists families; a family is ACTIVE while it has an ACTIVE revision.
func (a *API) ListTaskDefinitionFamilies(ctx context.Context, r *spec.ListTaskDefinitionFamiliesRequest) (*spec.ListTaskDefinitionFamiliesResponse, error) {
	limit, err := pageSize(r.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	status := spec.Val(r.Status)
	if status == "" {
		status = "ACTIVE"
	}
	if status != "ACTIVE" && status != "INACTIVE" && status != "ALL" {
		return nil, spec.InvalidParam("Invalid status '%s'. Valid values: ACTIVE, INACTIVE, ALL.", status)
	}
	active := map[string]bool{}
	var families []string
	root := state.TaskDefsPrefix()
	err = a.Store.Range(ctx, root+spec.Val(r.FamilyPrefix), "", func(key string, val []byte, _ int64) (bool, error) {
		family, _, _ := strings.Cut(strings.TrimPrefix(key, root), "/")
		if len(families) == 0 || families[len(families)-1] != family {
			families = append(families, family)
		}
		rec := &state.TaskDefRecord{}
		if err := json.Unmarshal(val, rec); err != nil {
			return false, err
		}
		if spec.Val(rec.TaskDefinition.Status) == "ACTIVE" {
			active[family] = true
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	after, err := decodeToken(r.NextToken, "family:")
	if err != nil {
		return nil, err
	}
	after = strings.TrimPrefix(after, "family:")
	out := &spec.ListTaskDefinitionFamiliesResponse{Families: []string{}}
	for _, f := range families {
		if after != "" && f <= after {
			continue
		}
		if (status == "ACTIVE" && !active[f]) || (status == "INACTIVE" && active[f]) {
			continue
		}
		if len(out.Families) == limit {
			out.NextToken = encodeToken("family:" + out.Families[limit-1])
			break
		}
		out.Families = append(out.Families, f)
	}
	return out, nil
}

// DeregisterTaskDefinition marks one revision INACTIVE.
func (a *API) DeregisterTaskDefinition(ctx context.Context, r *spec.DeregisterTaskDefinitionRequest) (*spec.DeregisterTaskDefinitionResponse, error) {
	ref := spec.Val(r.TaskDefinition)
	if ref == "" {
		return nil, spec.ClientErr("taskDefinition is required.")
	}
	family, rev, err := a.taskDefRef(ref)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		return nil, spec.ClientErr("A revision must be specified to deregister a task definition: '%s'.", ref)
	}
	rec, err := state.Update(ctx, a.Store, state.TaskDefKey(family, rev), func(t *state.TaskDefRecord) error {
		if spec.Val(t.TaskDefinition.Status) == "DELETE_IN_PROGRESS" {
			return spec.ClientErr("The specified task definition is being deleted.")
		}
		if spec.Val(t.TaskDefinition.Status) == "ACTIVE" {
			t.TaskDefinition.Status = spec.Str("INACTIVE")
			t.TaskDefinition.DeregisteredAt = spec.TS(a.Now())
		}
		return nil
	})
	if isNotFound(err) {
		return nil, spec.ClientErr("The specified task definition does not exist.")
	} else if err != nil {
		return nil, err
	}
	return &spec.DeregisterTaskDefinitionResponse{TaskDefinition: &rec.TaskDefinition}, nil
}

// DeleteTaskDefinitions moves INACTIVE revisions to DELETE_IN_PROGRESS.
func (a *API) DeleteTaskDefinitions(ctx context.Context, r *spec.DeleteTaskDefinitionsRequest) (*spec.DeleteTaskDefinitionsResponse, error) {
	if len(r.TaskDefinitions) == 0 || len(r.TaskDefinitions) > 10 {
		return nil, spec.InvalidParam("taskDefinitions must have between 1 and 10 items.")
	}
	type target struct {
		family string
		rev    int
		ref    string
	}
	var targets []target
	for _, ref := range r.TaskDefinitions {
		family, rev, err := a.taskDefRef(ref)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			return nil, spec.InvalidParam("The specified task definition '%s' does not include a revision.", ref)
		}
		targets = append(targets, target{family, rev, ref})
	}
	out := &spec.DeleteTaskDefinitionsResponse{TaskDefinitions: []spec.TaskDefinition{}, Failures: []spec.Failure{}}
	for _, t := range targets {
		arn := a.taskDefARN(t.family, t.rev)
		rec, err := state.Update(ctx, a.Store, state.TaskDefKey(t.family, t.rev), func(td *state.TaskDefRecord) error {
			if spec.Val(td.TaskDefinition.Status) == "ACTIVE" {
				return spec.ClientErr("The specified task definition is still in ACTIVE status. Please deregister the target and try again.")
			}
			td.TaskDefinition.Status = spec.Str("DELETE_IN_PROGRESS")
			td.TaskDefinition.DeleteRequestedAt = spec.TS(a.Now())
			return nil
		})
		var se *spec.Error
		switch {
		case isNotFound(err):
			out.Failures = append(out.Failures, spec.Failure{Arn: &arn, Reason: spec.Str("The specified task definition does not exist. Specify a valid account, family, revision and try again.")})
		case errors.As(err, &se):
			out.Failures = append(out.Failures, spec.Failure{Arn: &arn, Reason: &se.Message})
		case err != nil:
			return nil, err
		default:
			out.TaskDefinitions = append(out.TaskDefinitions, rec.TaskDefinition)
		}
	}
	return out, nil
}

// fargateCompatible reports whether a valid definition also passes
// Fargate's rules, as ECS lists FARGATE among the compatibilities of a
// definition that does without requiring it.
func fargateCompatible(r *spec.RegisterTaskDefinitionRequest) bool {
	raw, err := json.Marshal(r)
	if err != nil {
		return false
	}
	var cp spec.RegisterTaskDefinitionRequest
	if json.Unmarshal(raw, &cp) != nil {
		return false
	}
	if !containsStr(cp.RequiresCompatibilities, spec.Fargate) {
		cp.RequiresCompatibilities = append(cp.RequiresCompatibilities, spec.Fargate)
	}
	return spec.ValidateTaskDefinition(&cp) == nil
}
