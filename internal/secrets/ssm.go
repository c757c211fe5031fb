package secrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// The stored form of a parameter; every version's value is sealed,
// whatever its type.
type paramRecord struct {
	Name           string         `json:"name"`
	Type           string         `json:"type"`
	Description    string         `json:"description,omitempty"`
	AllowedPattern string         `json:"allowedPattern,omitempty"`
	Tier           string         `json:"tier"`
	DataType       string         `json:"dataType"`
	KeyID          string         `json:"keyId,omitempty"`
	Tags           []ssmTag       `json:"tags,omitempty"`
	Versions       []paramVersion `json:"versions"`
}

type paramVersion struct {
	Version  int64          `json:"version"`
	Sealed   []byte         `json:"sealed"`
	Modified spec.Timestamp `json:"modified"`
	Labels   []string       `json:"labels,omitempty"`
}

type ssmTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// maxParamVersions is how many versions of a parameter Berth keeps
// (Parameter Store keeps 100).
const maxParamVersions = 20

// SSM returns the Parameter Store part of the SSM service.
func (a *API) SSM() *awsjson.Service {
	return &awsjson.Service{Prefix: "AmazonSSM.", InternalError: "InternalServerError", Log: a.Log, MaxBody: 1 << 20,
		Ops: map[string]awsjson.Op{
			"PutParameter":        awsjson.Handle(a.PutParameter),
			"GetParameter":        awsjson.Handle(a.GetParameter),
			"GetParameters":       awsjson.Handle(a.GetParameters),
			"GetParametersByPath": awsjson.Handle(a.GetParametersByPath),
			"DeleteParameter":     awsjson.Handle(a.DeleteParameter),
			"DeleteParameters":    awsjson.Handle(a.DeleteParameters),
			"DescribeParameters":  awsjson.Handle(a.DescribeParameters),

			"GetParameterHistory":     awsjson.Handle(a.GetParameterHistory),
			"LabelParameterVersion":   awsjson.Handle(a.LabelParameterVersion),
			"UnlabelParameterVersion": awsjson.Handle(a.UnlabelParameterVersion),
			"AddTagsToResource":       awsjson.Handle(a.AddTagsToResource),
			"RemoveTagsFromResource":  awsjson.Handle(a.RemoveTagsFromResource),
			"ListTagsForResource":     awsjson.Handle(a.ListTagsForResource),
		}}
}

var paramNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)

func validation(format string, args ...any) *spec.Error {
	return &spec.Error{Code: "ValidationException", Message: fmt.Sprintf(format, args...)}
}

func paramNotFound(name string) *spec.Error {
	return &spec.Error{Code: "ParameterNotFound", Message: "Parameter " + name + " not found."}
}

// paramName turns a parameter name or ARN into a name, checking it as
// Parameter Store does.
func (a *API) paramName(ref string) (string, error) {
	name := ref
	if rest, ok := strings.CutPrefix(ref, fmt.Sprintf("arn:aws:ssm:%s:%s:parameter", a.Region, a.Account)); ok {
		name = rest
		if strings.Count(name, "/") == 1 {
			name = name[1:] // arn:…:parameter/NAME names NAME; arn:…:parameter/A/B names /A/B
		}
	} else if strings.HasPrefix(ref, "arn:") {
		return "", validation("Parameter ARN %s is not of this account and Region (%s, %s).", ref, a.Account, a.Region)
	}
	if name == "" || len(name) > 2048 || !paramNameRE.MatchString(name) {
		return "", validation("Parameter name: can't be empty and can contain only letters, numbers, and the symbols .-_/ (got %q).", ref)
	}
	if strings.Contains(name, "/") && !strings.HasPrefix(name, "/") {
		return "", validation("Parameter name must be a fully qualified name.")
	}
	if strings.Count(name, "/") > 15 {
		return "", &spec.Error{Code: "HierarchyLevelLimitExceededException", Message: "A hierarchy can have a maximum of 15 levels."}
	}
	first := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return "", validation("No access to reserved parameter name: %s. Parameter names can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).", name)
	}
	return name, nil
}

func (a *API) paramARN(name string) string {
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", a.Region, a.Account, strings.TrimPrefix(name, "/"))
}

func (a *API) loadParam(ctx context.Context, name string) (*paramRecord, int64, error) {
	resp, err := a.Client.Get(ctx, state.ParameterKey(name))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	rec := &paramRecord{}
	if err := json.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
		return nil, 0, err
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

func sealContext(name string, version int64) string {
	return state.ParameterKey(name) + "\x00" + strconv.FormatInt(version, 10)
}

// PutParameterInput is PutParameter's request.
type PutParameterInput struct {
	Name           string
	Description    *string
	Value          *string
	Type           string
	KeyId          string
	Overwrite      bool
	AllowedPattern *string
	Tags           []ssmTag
	Tier           string
	Policies       string
	DataType       string
}

// PutParameterOutput is PutParameter's response.
type PutParameterOutput struct {
	Version int64
	Tier    string
}

func (a *API) PutParameter(ctx context.Context, in *PutParameterInput) (*PutParameterOutput, error) {
	name, err := a.paramName(in.Name)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(in.Name, "arn:") {
		return nil, validation("PutParameter takes a parameter name, not an ARN.")
	}
	if in.Value == nil || *in.Value == "" {
		return nil, validation("1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	switch in.Type {
	case "", "String", "StringList", "SecureString":
	default:
		return nil, validation("1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}
	switch in.Tier {
	case "", "Standard", "Advanced", "Intelligent-Tiering":
	default:
		return nil, validation("1 validation error detected: Value '%s' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Advanced, Intelligent-Tiering, Standard]", in.Tier)
	}
	if in.DataType != "" && in.DataType != "text" {
		return nil, validation("The following data type is not supported: %s (supported data types: text)", in.DataType)
	}
	if in.KeyId != "" && in.Type != "SecureString" {
		return nil, validation("KeyId is required for SecureString type parameter only.")
	}
	if in.Overwrite && len(in.Tags) > 0 {
		return nil, validation("Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.")
	}
	if in.Description != nil && len(*in.Description) > 1024 {
		return nil, validation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1024")
	}
	var out *PutParameterOutput
	err = retry(func() error {
		rec, rev, err := a.loadParam(ctx, name)
		if err != nil {
			return err
		}
		if rec != nil && !in.Overwrite {
			return &spec.Error{Code: "ParameterAlreadyExists", Message: "The parameter already exists. To overwrite this value, set the overwrite option in the request to true."}
		}
		if rec == nil {
			if in.Type == "" {
				return validation("A parameter type is required when you create a parameter.")
			}
			rec = &paramRecord{Name: name, Tier: "Standard", DataType: "text", Tags: in.Tags}
		}
		if in.Type != "" {
			rec.Type = in.Type
		}
		if in.Description != nil {
			rec.Description = *in.Description
		}
		if in.AllowedPattern != nil {
			rec.AllowedPattern = *in.AllowedPattern
		}
		if in.KeyId != "" {
			rec.KeyID = in.KeyId
		}
		if in.Tier == "Advanced" {
			rec.Tier = "Advanced"
		}
		limit := 4096
		if rec.Tier == "Advanced" {
			limit = 8192
		}
		if len(*in.Value) > limit {
			return validation("Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier.")
		}
		if rec.AllowedPattern != "" {
			re, err := regexp.Compile(rec.AllowedPattern)
			if err != nil {
				return validation("The allowed pattern %s is not a valid regular expression.", rec.AllowedPattern)
			}
			if !re.MatchString(*in.Value) {
				return &spec.Error{Code: "ParameterPatternMismatchException", Message: "Parameter value, cannot be validated against allowedPattern: " + rec.AllowedPattern}
			}
		}
		version := int64(1)
		if n := len(rec.Versions); n > 0 {
			version = rec.Versions[n-1].Version + 1
		}
		rec.Versions = append(rec.Versions, paramVersion{Version: version, Modified: spec.Timestamp{Time: a.now()},
			Sealed: a.Keys.Seal(sealContext(name, version), []byte(*in.Value))})
		if len(rec.Versions) > maxParamVersions {
			rec.Versions = rec.Versions[len(rec.Versions)-maxParamVersions:]
		}
		if err := state.New(a.Client).Put(ctx, state.ParameterKey(name), rec, rev); err != nil {
			return err
		}
		out = &PutParameterOutput{Version: version, Tier: rec.Tier}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Parameter is a parameter as GetParameter returns it.
type Parameter struct {
	Name             string
	Type             string
	Value            string
	Version          int64
	Selector         string `json:",omitempty"`
	LastModifiedDate spec.Timestamp
	ARN              string
	DataType         string
}

// getParam reads one parameter: NAME, NAME:VERSION or NAME:LABEL, or an
// ARN of one. Without decryption a SecureString's value is its sealed
// form, as Parameter Store returns ciphertext.
func (a *API) getParam(ctx context.Context, ref string, decrypt bool) (*Parameter, error) {
	base, selector := ref, ""
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.HasPrefix(ref[i:], ":parameter") {
		base, selector = ref[:i], ref[i+1:]
	}
	name, err := a.paramName(base)
	if err != nil {
		return nil, err
	}
	rec, _, err := a.loadParam(ctx, name)
	if err != nil {
		return nil, err
	}
	if rec == nil || len(rec.Versions) == 0 {
		return nil, paramNotFound(ref)
	}
	v := &rec.Versions[len(rec.Versions)-1]
	if selector != "" {
		v = nil
		n, nerr := strconv.ParseInt(selector, 10, 64)
		for i := range rec.Versions {
			if (nerr == nil && rec.Versions[i].Version == n) || (nerr != nil && slices.Contains(rec.Versions[i].Labels, selector)) {
				v = &rec.Versions[i]
			}
		}
		if v == nil {
			return nil, &spec.Error{Code: "ParameterVersionNotFound", Message: fmt.Sprintf("Systems Manager could not find version %s of %s.", selector, name)}
		}
	}
	plain, err := a.Keys.Open(sealContext(name, v.Version), v.Sealed)
	if err != nil {
		return nil, &spec.Error{Code: "InvalidKeyId", Message: "The parameter's value cannot be decrypted with this cluster's secrets key."}
	}
	value := string(plain)
	if rec.Type == "SecureString" && !decrypt {
		value = base64.StdEncoding.EncodeToString(v.Sealed)
	}
	p := &Parameter{Name: name, Type: rec.Type, Value: value, Version: v.Version, LastModifiedDate: v.Modified, ARN: a.paramARN(name), DataType: rec.DataType}
	if selector != "" {
		p.Selector = ":" + selector
	}
	return p, nil
}

// GetParameterInput is GetParameter's request.
type GetParameterInput struct {
	Name           string
	WithDecryption bool
}

// GetParameterOutput is GetParameter's response.
type GetParameterOutput struct{ Parameter *Parameter }

func (a *API) GetParameter(ctx context.Context, in *GetParameterInput) (*GetParameterOutput, error) {
	p, err := a.getParam(ctx, in.Name, in.WithDecryption)
	if err != nil {
		return nil, err
	}
	return &GetParameterOutput{Parameter: p}, nil
}

// GetParametersInput is GetParameters' request.
type GetParametersInput struct {
	Names          []string
	WithDecryption bool
}

// GetParametersOutput is GetParameters' response.
type GetParametersOutput struct {
	Parameters        []*Parameter
	InvalidParameters []string
}

func (a *API) GetParameters(ctx context.Context, in *GetParametersInput) (*GetParametersOutput, error) {
	if len(in.Names) < 1 || len(in.Names) > 10 {
		return nil, validation("1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10 and greater than or equal to 1")
	}
	out := &GetParametersOutput{Parameters: []*Parameter{}, InvalidParameters: []string{}}
	for _, n := range in.Names {
		p, err := a.getParam(ctx, n, in.WithDecryption)
		if se, ok := err.(*spec.Error); ok && (se.Code == "ParameterNotFound" || se.Code == "ParameterVersionNotFound" || se.Code == "ValidationException") {
			out.InvalidParameters = append(out.InvalidParameters, n)
			continue
		}
		if err != nil {
			return nil, err
		}
		out.Parameters = append(out.Parameters, p)
	}
	return out, nil
}

// GetParametersByPathInput is GetParametersByPath's request.
type GetParametersByPathInput struct {
	Path           string
	Recursive      bool
	WithDecryption bool
	MaxResults     *int32
	NextToken      string
}

// GetParametersByPathOutput is GetParametersByPath's response.
type GetParametersByPathOutput struct {
	Parameters []*Parameter
	NextToken  string `json:",omitempty"`
}

func (a *API) GetParametersByPath(ctx context.Context, in *GetParametersByPathInput) (*GetParametersByPathOutput, error) {
	if !strings.HasPrefix(in.Path, "/") || !paramNameRE.MatchString(in.Path) {
		return nil, validation("The parameter path must begin with a forward slash (/) and contain only letters, numbers, and the symbols .-_/.")
	}
	limit := 10
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 10 {
			return nil, validation("1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10")
		}
		limit = int(*in.MaxResults)
	}
	prefix := strings.TrimSuffix(in.Path, "/") + "/"
	from := state.ParameterKey(prefix)
	if in.NextToken != "" {
		if !strings.HasPrefix(in.NextToken, prefix) {
			return nil, &spec.Error{Code: "InvalidNextToken", Message: "The specified token is not valid."}
		}
		from = state.ParameterKey(in.NextToken)
	}
	resp, err := a.Client.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(state.ParameterKey(prefix))))
	if err != nil {
		return nil, err
	}
	out := &GetParametersByPathOutput{Parameters: []*Parameter{}}
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), state.ParametersPrefix())
		if !in.Recursive && strings.Contains(strings.TrimPrefix(name, prefix), "/") {
			continue
		}
		if len(out.Parameters) == limit {
			out.NextToken = name
			break
		}
		p, err := a.getParam(ctx, name, in.WithDecryption)
		if err != nil {
			continue
		}
		out.Parameters = append(out.Parameters, p)
	}
	return out, nil
}

// DeleteParameterInput is DeleteParameter's request.
type DeleteParameterInput struct{ Name string }

func (a *API) DeleteParameter(ctx context.Context, in *DeleteParameterInput) (*Empty, error) {
	name, err := a.paramName(in.Name)
	if err != nil {
		return nil, err
	}
	resp, err := a.Client.Delete(ctx, state.ParameterKey(name))
	if err != nil {
		return nil, err
	}
	if resp.Deleted == 0 {
		return nil, paramNotFound(in.Name)
	}
	return &Empty{}, nil
}

// DeleteParametersInput is DeleteParameters' request.
type DeleteParametersInput struct{ Names []string }

// DeleteParametersOutput is DeleteParameters' response.
type DeleteParametersOutput struct {
	DeletedParameters []string
	InvalidParameters []string
}

func (a *API) DeleteParameters(ctx context.Context, in *DeleteParametersInput) (*DeleteParametersOutput, error) {
	if len(in.Names) < 1 || len(in.Names) > 10 {
		return nil, validation("1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10 and greater than or equal to 1")
	}
	out := &DeleteParametersOutput{DeletedParameters: []string{}, InvalidParameters: []string{}}
	for _, n := range in.Names {
		if _, err := a.DeleteParameter(ctx, &DeleteParameterInput{Name: n}); err != nil {
			if _, ok := err.(*spec.Error); !ok {
				return nil, err
			}
			out.InvalidParameters = append(out.InvalidParameters, n)
			continue
		}
		out.DeletedParameters = append(out.DeletedParameters, n)
	}
	return out, nil
}

// ParameterMetadata is what DescribeParameters says of a parameter (no
// value).
type ParameterMetadata struct {
	Name             string
	ARN              string
	Type             string
	KeyId            string `json:",omitempty"`
	LastModifiedDate spec.Timestamp
	Description      string `json:",omitempty"`
	AllowedPattern   string `json:",omitempty"`
	Version          int64
	Tier             string
	Policies         []string
	DataType         string
}

// DescribeParametersInput is DescribeParameters' request.
type DescribeParametersInput struct {
	Filters []struct {
		Key    string
		Values []string
	}
	ParameterFilters []struct {
		Key    string
		Option string
		Values []string
	}
	MaxResults *int32
	NextToken  string
}

// DescribeParametersOutput is DescribeParameters' response.
type DescribeParametersOutput struct {
	Parameters []*ParameterMetadata
	NextToken  string `json:",omitempty"`
}

// DescribeParameters lists parameters' metadata, filtered by name (Equals
// or BeginsWith), type, key id, tier, data type or path.
func (a *API) DescribeParameters(ctx context.Context, in *DescribeParametersInput) (*DescribeParametersOutput, error) {
	limit := 50
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 50 {
			return nil, validation("1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50")
		}
		limit = int(*in.MaxResults)
	}
	type filter struct {
		key, option string
		values      []string
	}
	var filters []filter
	for _, f := range in.Filters {
		filters = append(filters, filter{f.Key, "Equals", f.Values})
	}
	for _, f := range in.ParameterFilters {
		opt := f.Option
		if opt == "" {
			opt = "Equals"
		}
		switch f.Key {
		case "Name", "Type", "KeyId", "Tier", "DataType", "Path":
		default:
			return nil, &spec.Error{Code: "InvalidFilterKey", Message: "The specified filter key is not valid: " + f.Key}
		}
		switch opt {
		case "Equals", "BeginsWith", "Recursive", "OneLevel":
		default:
			return nil, &spec.Error{Code: "InvalidFilterOption", Message: "The specified filter option is not valid: " + opt}
		}
		filters = append(filters, filter{f.Key, opt, f.Values})
	}
	resp, err := a.Client.Get(ctx, state.ParametersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := &DescribeParametersOutput{Parameters: []*ParameterMetadata{}}
	for _, kv := range resp.Kvs {
		rec := &paramRecord{}
		if json.Unmarshal(kv.Value, rec) != nil || len(rec.Versions) == 0 {
			continue
		}
		if in.NextToken != "" && rec.Name <= in.NextToken {
			continue
		}
		fields := map[string]string{"Name": rec.Name, "Type": rec.Type, "KeyId": rec.KeyID, "Tier": rec.Tier, "DataType": rec.DataType}
		ok := true
		for _, f := range filters {
			match := false
			for _, v := range f.values {
				switch {
				case f.key == "Path":
					rest, in := strings.CutPrefix(rec.Name, strings.TrimSuffix(v, "/")+"/")
					match = match || in && (f.option == "Recursive" || !strings.Contains(rest, "/"))
				case f.option == "BeginsWith":
					match = match || strings.HasPrefix(fields[f.key], v)
				default:
					match = match || fields[f.key] == v
				}
			}
			ok = ok && match
		}
		if !ok {
			continue
		}
		if len(out.Parameters) == limit {
			out.NextToken = out.Parameters[limit-1].Name
			break
		}
		v := rec.Versions[len(rec.Versions)-1]
		out.Parameters = append(out.Parameters, &ParameterMetadata{Name: rec.Name, ARN: a.paramARN(rec.Name), Type: rec.Type, KeyId: rec.KeyID,
			LastModifiedDate: v.Modified, Description: rec.Description, AllowedPattern: rec.AllowedPattern, Version: v.Version, Tier: rec.Tier,
			Policies: []string{}, DataType: rec.DataType})
	}
	return out, nil
}
