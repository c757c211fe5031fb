package ecs

import (
	"context"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// tagTarget resolves an ECS ARN to the key of the record holding its tags.
func (a *API) tagTarget(arn string) (key string, kind string, err error) {
	kind, path, ok := a.resourceOf(arn)
	if !ok {
		return "", "", spec.InvalidParam("Invalid resource ARN '%s'.", arn)
	}
	switch kind {
	case "cluster":
		return state.ClusterKey(path), kind, nil
	case "task-definition":
		family, rev, _ := strings.Cut(path, ":")
		n, err := strconv.Atoi(rev)
		if err != nil || !spec.ValidName(family) {
			return "", "", spec.InvalidParam("Invalid resource ARN '%s'.", arn)
		}
		return state.TaskDefKey(family, n), kind, nil
	case "container-instance":
		c, id, ok := strings.Cut(path, "/")
		if ok {
			return state.InstanceKey(c, id), kind, nil
		}
	case "task":
		c, id, ok := strings.Cut(path, "/")
		if ok {
			return state.TaskKey(c, id), kind, nil
		}
	}
	return "", "", spec.InvalidParam("Invalid resource ARN '%s'.", arn)
}

func notFoundResource() error {
	return spec.Exception("ResourceNotFoundException", "The specified resource could not be found.")
}

// withTags applies fn to the tags of the record at key.
func withTags(ctx context.Context, s *state.Store, key, kind string, fn func([]spec.Tag) ([]spec.Tag, error)) ([]spec.Tag, error) {
	var out []spec.Tag
	var err error
	switch kind {
	case "cluster":
		_, err = state.Update(ctx, s, key, func(r *state.ClusterRecord) error {
			r.Tags, err = fn(r.Tags)
			out = r.Tags
			return err
		})
	case "task-definition":
		_, err = state.Update(ctx, s, key, func(r *state.TaskDefRecord) error {
			r.Tags, err = fn(r.Tags)
			out = r.Tags
			return err
		})
	case "container-instance":
		_, err = state.Update(ctx, s, key, func(r *state.InstanceRecord) error {
			r.Tags, err = fn(r.Tags)
			out = r.Tags
			return err
		})
	case "task":
		_, err = state.Update(ctx, s, key, func(r *state.TaskRecord) error {
			r.Tags, err = fn(r.Tags)
			out = r.Tags
			return err
		})
	}
	if isNotFound(err) {
		return nil, notFoundResource()
	}
	return out, err
}

// TagResource adds or replaces tags.
func (a *API) TagResource(ctx context.Context, r *spec.TagResourceRequest) (*spec.TagResourceResponse, error) {
	key, kind, err := a.tagTarget(spec.Val(r.ResourceArn))
	if err != nil {
		return nil, err
	}
	if len(r.Tags) == 0 {
		return nil, spec.InvalidParam("tags must not be empty.")
	}
	if err := spec.ValidateTags(r.Tags); err != nil {
		return nil, err
	}
	_, err = withTags(ctx, a.Store, key, kind, func(old []spec.Tag) ([]spec.Tag, error) {
		merged := append([]spec.Tag(nil), old...)
		for _, t := range r.Tags {
			replaced := false
			for i := range merged {
				if spec.Val(merged[i].Key) == spec.Val(t.Key) {
					merged[i] = t
					replaced = true
				}
			}
			if !replaced {
				merged = append(merged, t)
			}
		}
		if err := spec.ValidateTags(merged); err != nil {
			return nil, err
		}
		return merged, nil
	})
	if err != nil {
		return nil, err
	}
	return &spec.TagResourceResponse{}, nil
}

// UntagResource removes tags by key.
func (a *API) UntagResource(ctx context.Context, r *spec.UntagResourceRequest) (*spec.UntagResourceResponse, error) {
	key, kind, err := a.tagTarget(spec.Val(r.ResourceArn))
	if err != nil {
		return nil, err
	}
	if len(r.TagKeys) == 0 {
		return nil, spec.InvalidParam("tagKeys must not be empty.")
	}
	_, err = withTags(ctx, a.Store, key, kind, func(old []spec.Tag) ([]spec.Tag, error) {
		var kept []spec.Tag
		for _, t := range old {
			if !containsStr(r.TagKeys, spec.Val(t.Key)) {
				kept = append(kept, t)
			}
		}
		return kept, nil
	})
	if err != nil {
		return nil, err
	}
	return &spec.UntagResourceResponse{}, nil
}

// ListTagsForResource returns a resource's tags.
func (a *API) ListTagsForResource(ctx context.Context, r *spec.ListTagsForResourceRequest) (*spec.ListTagsForResourceResponse, error) {
	key, kind, err := a.tagTarget(spec.Val(r.ResourceArn))
	if err != nil {
		return nil, err
	}
	var tags []spec.Tag
	switch kind {
	case "cluster":
		rec := &state.ClusterRecord{}
		_, err = a.Store.Get(ctx, key, rec)
		tags = rec.Tags
	case "task-definition":
		rec := &state.TaskDefRecord{}
		_, err = a.Store.Get(ctx, key, rec)
		tags = rec.Tags
	case "container-instance":
		rec := &state.InstanceRecord{}
		_, err = a.Store.Get(ctx, key, rec)
		tags = rec.Tags
	case "task":
		rec := &state.TaskRecord{}
		_, err = a.Store.Get(ctx, key, rec)
		tags = rec.Tags
	}
	if isNotFound(err) {
		return nil, notFoundResource()
	} else if err != nil {
		return nil, err
	}
	if tags == nil {
		tags = []spec.Tag{}
	}
	return &spec.ListTagsForResourceResponse{Tags: tags}, nil
}
