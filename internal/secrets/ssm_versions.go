package secrets

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// A parameter's history, the labels on its versions and its tags.

// ParameterHistory is one version in GetParameterHistory.
type ParameterHistory struct {
	Name             string
	Type             string
	KeyId            string `json:",omitempty"`
	LastModifiedDate spec.Timestamp
	Description      string `json:",omitempty"`
	Value            string
	AllowedPattern   string `json:",omitempty"`
	Version          int64
	Labels           []string
	Tier             string
	Policies         []string
	DataType         string
}

// GetParameterHistoryInput is GetParameterHistory's request.
type GetParameterHistoryInput struct {
	Name           string
	WithDecryption bool
	MaxResults     *int64
	NextToken      string
}

// GetParameterHistoryOutput is GetParameterHistory's response.
type GetParameterHistoryOutput struct {
	Parameters []ParameterHistory
	NextToken  string `json:",omitempty"`
}

// GetParameterHistory lists the versions Berth keeps of a parameter,
// oldest first. Without decryption a SecureString's values are their
// sealed form, as GetParameter gives them.
func (a *API) GetParameterHistory(ctx context.Context, in *GetParameterHistoryInput) (*GetParameterHistoryOutput, error) {
	limit := 50
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 50 {
			return nil, validation("1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50")
		}
		limit = int(*in.MaxResults)
	}
	name, rec, err := a.findParam(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.ParseInt(in.NextToken, 10, 64)
		start = slices.IndexFunc(rec.Versions, func(v paramVersion) bool { return v.Version == n })
		if err != nil || start < 0 {
			return nil, &spec.Error{Code: "InvalidNextToken", Message: "The specified token is not valid."}
		}
	}
	out := &GetParameterHistoryOutput{Parameters: []ParameterHistory{}}
	for _, v := range rec.Versions[start:] {
		if len(out.Parameters) == limit {
			out.NextToken = strconv.FormatInt(v.Version, 10)
			break
		}
		plain, err := a.Keys.Open(sealContext(name, v.Version), v.Sealed)
		if err != nil {
			return nil, &spec.Error{Code: "InvalidKeyId", Message: "The parameter's value cannot be decrypted with this cluster's secrets key."}
		}
		value := string(plain)
		if rec.Type == "SecureString" && !in.WithDecryption {
			value = base64.StdEncoding.EncodeToString(v.Sealed)
		}
		out.Parameters = append(out.Parameters, ParameterHistory{Name: name, Type: rec.Type, KeyId: rec.KeyID, LastModifiedDate: v.Modified,
			Description: rec.Description, Value: value, AllowedPattern: rec.AllowedPattern, Version: v.Version,
			Labels: nonNil(v.Labels), Tier: rec.Tier, Policies: []string{}, DataType: rec.DataType})
	}
	return out, nil
}

// LabelParameterVersionInput is LabelParameterVersion's request.
type LabelParameterVersionInput struct {
	Name             string
	ParameterVersion *int64
	Labels           []string
}

// LabelParameterVersionOutput is LabelParameterVersion's response.
type LabelParameterVersionOutput struct {
	InvalidLabels    []string
	ParameterVersion int64
}

// UnlabelParameterVersionInput is UnlabelParameterVersion's request.
type UnlabelParameterVersionInput struct {
	Name             string
	ParameterVersion *int64
	Labels           []string
}

// UnlabelParameterVersionOutput is UnlabelParameterVersion's response.
type UnlabelParameterVersionOutput struct {
	RemovedLabels []string
	InvalidLabels []string
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,100}$`)

// validLabel is Parameter Store's rule for labels: letters, digits and
// ._- up to 100 characters, not starting with a digit, nor with aws or
// ssm in any case.
func validLabel(l string) bool {
	low := strings.ToLower(l)
	return labelRE.MatchString(l) && (l[0] < '0' || l[0] > '9') && !strings.HasPrefix(low, "aws") && !strings.HasPrefix(low, "ssm")
}

func checkLabels(labels []string) error {
	if len(labels) < 1 || len(labels) > 10 {
		return validation("1 validation error detected: Value at 'labels' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	return nil
}

// findParam reads the parameter a name or ARN names; a missing one is
// ParameterNotFound.
func (a *API) findParam(ctx context.Context, ref string) (string, *paramRecord, error) {
	name, err := a.paramName(ref)
	if err != nil {
		return "", nil, err
	}
	rec, _, err := a.loadParam(ctx, name)
	if err == nil && rec == nil {
		err = paramNotFound(ref)
	}
	return name, rec, err
}

// modifyParam changes a parameter with fn and writes it back, retrying on
// a lost race.
func (a *API) modifyParam(ctx context.Context, ref string, fn func(name string, rec *paramRecord) error) error {
	name, err := a.paramName(ref)
	if err != nil {
		return err
	}
	return retry(func() error {
		rec, rev, err := a.loadParam(ctx, name)
		if err != nil {
			return err
		}
		if rec == nil {
			return paramNotFound(ref)
		}
		if err := fn(name, rec); err != nil {
			return err
		}
		return state.New(a.Client).Put(ctx, state.ParameterKey(name), rec, rev)
	})
}

// findVersion is the index of version n (the latest when n is nil).
func findVersion(name string, rec *paramRecord, n *int64) (int, error) {
	if n == nil {
		return len(rec.Versions) - 1, nil
	}
	i := slices.IndexFunc(rec.Versions, func(v paramVersion) bool { return v.Version == *n })
	if i < 0 {
		return 0, &spec.Error{Code: "ParameterVersionNotFound", Message: fmt.Sprintf("Systems Manager could not find version %d of %s.", *n, name)}
	}
	return i, nil
}

// LabelParameterVersion puts labels on a version (the latest by default),
// moving a label that another version had: a label names one version.
// Labels that break the rules come back as InvalidLabels, the rest apply.
func (a *API) LabelParameterVersion(ctx context.Context, in *LabelParameterVersionInput) (*LabelParameterVersionOutput, error) {
	if err := checkLabels(in.Labels); err != nil {
		return nil, err
	}
	out := &LabelParameterVersionOutput{InvalidLabels: []string{}}
	err := a.modifyParam(ctx, in.Name, func(name string, rec *paramRecord) error {
		i, err := findVersion(name, rec, in.ParameterVersion)
		if err != nil {
			return err
		}
		out.InvalidLabels = []string{}
		var add []string
		for _, l := range in.Labels {
			if !validLabel(l) {
				out.InvalidLabels = append(out.InvalidLabels, l)
			} else if !slices.Contains(add, l) {
				add = append(add, l)
			}
		}
		v := &rec.Versions[i]
		n := len(v.Labels)
		for _, l := range add {
			if !slices.Contains(v.Labels, l) {
				n++
			}
		}
		if n > 10 {
			return &spec.Error{Code: "ParameterVersionLabelLimitExceeded", Message: "A parameter version can have maximum 10 labels. Move one or more labels to another version and try again."}
		}
		for j := range rec.Versions {
			if j != i {
				rec.Versions[j].Labels = slices.DeleteFunc(rec.Versions[j].Labels, func(l string) bool { return slices.Contains(add, l) })
			}
		}
		for _, l := range add {
			if !slices.Contains(v.Labels, l) {
				v.Labels = append(v.Labels, l)
			}
		}
		out.ParameterVersion = v.Version
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UnlabelParameterVersion takes labels off a version; labels the version
// does not have come back as InvalidLabels.
func (a *API) UnlabelParameterVersion(ctx context.Context, in *UnlabelParameterVersionInput) (*UnlabelParameterVersionOutput, error) {
	if in.ParameterVersion == nil {
		return nil, validation("1 validation error detected: Value null at 'parameterVersion' failed to satisfy constraint: Member must not be null")
	}
	if err := checkLabels(in.Labels); err != nil {
		return nil, err
	}
	out := &UnlabelParameterVersionOutput{}
	err := a.modifyParam(ctx, in.Name, func(name string, rec *paramRecord) error {
		i, err := findVersion(name, rec, in.ParameterVersion)
		if err != nil {
			return err
		}
		out.RemovedLabels, out.InvalidLabels = []string{}, []string{}
		v := &rec.Versions[i]
		for _, l := range in.Labels {
			if k := slices.Index(v.Labels, l); k >= 0 {
				v.Labels = slices.Delete(v.Labels, k, k+1)
				out.RemovedLabels = append(out.RemovedLabels, l)
			} else if !slices.Contains(out.RemovedLabels, l) {
				out.InvalidLabels = append(out.InvalidLabels, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddTagsToResourceInput is AddTagsToResource's request.
type AddTagsToResourceInput struct {
	ResourceType string
	ResourceId   string
	Tags         []ssmTag
}

// RemoveTagsFromResourceInput is RemoveTagsFromResource's request.
type RemoveTagsFromResourceInput struct {
	ResourceType string
	ResourceId   string
	TagKeys      []string
}

// ListTagsForResourceInput is ListTagsForResource's request.
type ListTagsForResourceInput struct {
	ResourceType string
	ResourceId   string
}

// ListTagsForResourceOutput is ListTagsForResource's response.
type ListTagsForResourceOutput struct{ TagList []ssmTag }

// tagTarget checks that a tag request names a parameter, the only kind
// of SSM resource Berth has.
func tagTarget(typ, id string) error {
	switch typ {
	case "Parameter":
	case "Document", "ManagedInstance", "MaintenanceWindow", "PatchBaseline", "OpsItem", "OpsMetadata", "Automation", "Association":
		return &spec.Error{Code: "InvalidResourceType", Message: "The resource type " + typ + " is not supported by Berth: only parameters can be tagged."}
	default:
		return validation("1 validation error detected: Value '%s' at 'resourceType' failed to satisfy constraint: Member must satisfy enum value set: [Document, ManagedInstance, MaintenanceWindow, Parameter, PatchBaseline, OpsItem, OpsMetadata, Automation, Association]", typ)
	}
	if id == "" {
		return validation("1 validation error detected: Value at 'resourceId' failed to satisfy constraint: Member must not be null")
	}
	return nil
}

func invalidResource(err error) error {
	if e, ok := err.(*spec.Error); ok && e.Code == "ParameterNotFound" {
		return &spec.Error{Code: "InvalidResourceId", Message: "The resource ID is not valid. Verify that you entered the correct ID and try again."}
	}
	return err
}

// AddTagsToResource adds tags to a parameter or changes their values; a
// parameter holds at most 50.
func (a *API) AddTagsToResource(ctx context.Context, in *AddTagsToResourceInput) (*Empty, error) {
	if err := tagTarget(in.ResourceType, in.ResourceId); err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 || len(in.Tags) > 1000 {
		return nil, validation("1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length between 1 and 1000")
	}
	for _, t := range in.Tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return nil, validation("A tag key must have 1 to 128 characters and a value at most 256.")
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, validation("Tag keys beginning with aws: are reserved.")
		}
	}
	return a.changeTags(ctx, in.ResourceType, in.ResourceId, func(rec *paramRecord) error {
		for _, t := range in.Tags {
			if k := slices.IndexFunc(rec.Tags, func(o ssmTag) bool { return o.Key == t.Key }); k >= 0 {
				rec.Tags[k].Value = t.Value
			} else {
				rec.Tags = append(rec.Tags, t)
			}
		}
		if len(rec.Tags) > 50 {
			return &spec.Error{Code: "TooManyTagsError", Message: "The Targets parameter includes too many tags. Remove one or more tags and try the command again."}
		}
		return nil
	})
}

// RemoveTagsFromResource removes tags from a parameter by key.
func (a *API) RemoveTagsFromResource(ctx context.Context, in *RemoveTagsFromResourceInput) (*Empty, error) {
	return a.changeTags(ctx, in.ResourceType, in.ResourceId, func(rec *paramRecord) error {
		rec.Tags = slices.DeleteFunc(rec.Tags, func(t ssmTag) bool { return slices.Contains(in.TagKeys, t.Key) })
		return nil
	})
}

// changeTags applies fn to the tags of the parameter a tag request names.
func (a *API) changeTags(ctx context.Context, typ, id string, fn func(*paramRecord) error) (*Empty, error) {
	if err := tagTarget(typ, id); err != nil {
		return nil, err
	}
	if err := a.modifyParam(ctx, id, func(_ string, rec *paramRecord) error { return fn(rec) }); err != nil {
		return nil, invalidResource(err)
	}
	return &Empty{}, nil
}

// ListTagsForResource lists a parameter's tags.
func (a *API) ListTagsForResource(ctx context.Context, in *ListTagsForResourceInput) (*ListTagsForResourceOutput, error) {
	if err := tagTarget(in.ResourceType, in.ResourceId); err != nil {
		return nil, err
	}
	_, rec, err := a.findParam(ctx, in.ResourceId)
	if err != nil {
		return nil, invalidResource(err)
	}
	out := &ListTagsForResourceOutput{TagList: []ssmTag{}}
	out.TagList = append(out.TagList, rec.Tags...)
	return out, nil
}
