package secrets

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/awsjson"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// API serves Secrets Manager and SSM Parameter Store over etcd.
type API struct {
	Client  *clientv3.Client
	Keys    *Keyring
	Region  string
	Account string
	Log     *slog.Logger
	Now     func() time.Time
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Tag is a Secrets Manager tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// The stored form of a secret. Values are sealed; everything else is
// metadata DescribeSecret shows anyway.
type secretRecord struct {
	ARN          string          `json:"arn"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	KmsKeyID     string          `json:"kmsKeyId,omitempty"`
	Tags         []Tag           `json:"tags,omitempty"`
	Created      time.Time       `json:"created"`
	LastChanged  time.Time       `json:"lastChanged"`
	DeletionDate *time.Time      `json:"deletionDate,omitempty"`
	Versions     []secretVersion `json:"versions,omitempty"`
}

type secretVersion struct {
	ID      string    `json:"id"`
	Stages  []string  `json:"stages,omitempty"`
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"`
}

// secretValue is what a version seals.
type secretValue struct {
	String *string `json:"s,omitempty"`
	Binary []byte  `json:"b,omitempty"`
}

// maxOldVersions bounds the versions without a staging label a secret
// keeps (Secrets Manager keeps up to 100; Berth keeps its records small).
const maxOldVersions = 10

const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
	stagePending  = "AWSPENDING"
)

// SecretsManager returns the Secrets Manager service.
func (a *API) SecretsManager() *awsjson.Service {
	return &awsjson.Service{Prefix: "secretsmanager.", InternalError: "InternalServiceError", Log: a.Log, MaxBody: 1 << 20,
		Ops: map[string]awsjson.Op{
			"CreateSecret":   awsjson.Handle(a.CreateSecret),
			"GetSecretValue": awsjson.Handle(a.GetSecretValue),
			"PutSecretValue": awsjson.Handle(a.PutSecretValue),
			"UpdateSecret":   awsjson.Handle(a.UpdateSecret),
			"DescribeSecret": awsjson.Handle(a.DescribeSecret),
			"DeleteSecret":   awsjson.Handle(a.DeleteSecret),
			"RestoreSecret":  awsjson.Handle(a.RestoreSecret),
			"ListSecrets":    awsjson.Handle(a.ListSecrets),
			"TagResource":    awsjson.Handle(a.TagResource),
			"UntagResource":  awsjson.Handle(a.UntagResource),

			"ListSecretVersionIds": awsjson.Handle(a.ListSecretVersionIds),
			"GetRandomPassword":    awsjson.Handle(a.GetRandomPassword),
		}}
}

func smErr(code, format string, args ...any) *spec.Error {
	return &spec.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	errNoSecret     = smErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	errMarkedDelete = smErr("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	secretNameRE    = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
	tokenRE         = regexp.MustCompile(`^[A-Za-z0-9-]{32,64}$`)
)

func (a *API) secretARN(name string) string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", a.Region, a.Account, name, randomSuffix())
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]byte, 6)
	for i := range out {
		out[i] = letters[rand.IntN(len(letters))]
	}
	return string(out)
}

func newVersionID() string {
	h := awsjson.RequestID()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// loadSecret finds a secret by name, full ARN or partial ARN (without
// the six-character suffix). A secret past its deletion date is gone.
func (a *API) loadSecret(ctx context.Context, id string) (*secretRecord, int64, error) {
	if id == "" {
		return nil, 0, smErr("InvalidParameterException", "You must provide a SecretId.")
	}
	var candidates []string
	arnPrefix := fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:", a.Region, a.Account)
	if rest, ok := strings.CutPrefix(id, arnPrefix); ok {
		candidates = append(candidates, rest)
		if i := strings.LastIndexByte(rest, '-'); i > 0 && len(rest)-i == 7 {
			candidates = append(candidates, rest[:i])
		}
	} else if strings.HasPrefix(id, "arn:") {
		return nil, 0, errNoSecret
	} else {
		candidates = []string{id}
	}
	for _, name := range candidates {
		if !secretNameRE.MatchString(name) {
			continue
		}
		resp, err := a.Client.Get(ctx, state.SecretKey(name))
		if err != nil {
			return nil, 0, err
		}
		if len(resp.Kvs) == 0 {
			continue
		}
		rec := &secretRecord{}
		if err := json.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
			return nil, 0, err
		}
		if strings.HasPrefix(id, "arn:") && rec.ARN != id && arnPrefix+rec.Name != id {
			continue
		}
		if rec.DeletionDate != nil && !a.now().Before(*rec.DeletionDate) {
			a.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(state.SecretKey(name)), "=", resp.Kvs[0].ModRevision)).
				Then(clientv3.OpDelete(state.SecretKey(name))).Commit()
			return nil, 0, errNoSecret
		}
		return rec, resp.Kvs[0].ModRevision, nil
	}
	return nil, 0, errNoSecret
}

// modify changes a secret (found by any of its ids) with fn and writes it
// back, retrying on a lost race. A secret marked for deletion is refused
// unless marked is set.
func (a *API) modify(ctx context.Context, id string, marked bool, fn func(*secretRecord) error) (*secretRecord, error) {
	rec, _, err := a.loadSecret(ctx, id)
	if err != nil {
		return nil, err
	}
	out, err := state.Update(ctx, state.New(a.Client), state.SecretKey(rec.Name), func(r *secretRecord) error {
		if r.ARN != rec.ARN {
			return errNoSecret // deleted and made again meanwhile
		}
		if r.DeletionDate != nil && !marked {
			return errMarkedDelete
		}
		return fn(r)
	})
	if errors.Is(err, state.ErrNotFound) {
		return nil, errNoSecret
	}
	return out, err
}

func (a *API) sealVersion(name, id string, v secretValue) []byte {
	b, _ := json.Marshal(v)
	return a.Keys.Seal(state.SecretKey(name)+"\x00"+id, b)
}

func (a *API) openVersion(name string, v *secretVersion) (*secretValue, error) {
	b, err := a.Keys.Open(state.SecretKey(name)+"\x00"+v.ID, v.Sealed)
	if err != nil {
		return nil, smErr("DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key.")
	}
	out := &secretValue{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkValue(s *string, b []byte, required bool) error {
	if s != nil && b != nil {
		return smErr("InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if required && s == nil && b == nil {
		return smErr("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
	}
	if (s != nil && len(*s) > 65536) || len(b) > 65536 {
		return smErr("InvalidParameterException", "The secret value is larger than 65,536 bytes.")
	}
	return nil
}

func checkToken(tok string) error {
	if tok != "" && !tokenRE.MatchString(tok) {
		return smErr("ValidationException", "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length between 32 and 64 and contain only letters, digits and hyphens")
	}
	return nil
}

// addVersion makes a new version carrying stages (AWSCURRENT when none
// are given), moves those stages off other versions, keeps AWSPREVIOUS on
// the version that lost AWSCURRENT, and trims unlabelled versions. An
// existing version id with the same value is an idempotent retry.
func (a *API) addVersion(rec *secretRecord, id string, v secretValue, stages []string) (*secretVersion, error) {
	if id == "" {
		id = newVersionID()
	}
	for i := range rec.Versions {
		if rec.Versions[i].ID != id {
			continue
		}
		old, err := a.openVersion(rec.Name, &rec.Versions[i])
		if err != nil {
			return nil, err
		}
		oj, _ := json.Marshal(old)
		nj, _ := json.Marshal(v)
		if string(oj) == string(nj) {
			return &rec.Versions[i], nil
		}
		return nil, smErr("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
	}
	if len(stages) == 0 {
		stages = []string{stageCurrent}
	}
	now := a.now()
	nv := secretVersion{ID: id, Stages: slices.Clone(stages), Created: now, Sealed: a.sealVersion(rec.Name, id, v)}
	current := slices.Contains(stages, stageCurrent)
	for i := range rec.Versions {
		ov := &rec.Versions[i]
		wasCurrent := slices.Contains(ov.Stages, stageCurrent)
		ov.Stages = slices.DeleteFunc(ov.Stages, func(s string) bool {
			return slices.Contains(stages, s) || (current && s == stagePrevious)
		})
		if current && wasCurrent {
			ov.Stages = append(ov.Stages, stagePrevious)
		}
	}
	rec.Versions = append(rec.Versions, nv)
	old := 0
	for i := len(rec.Versions) - 1; i >= 0; i-- {
		if len(rec.Versions[i].Stages) == 0 {
			old++
			if old > maxOldVersions {
				rec.Versions = slices.Delete(rec.Versions, i, i+1)
			}
		}
	}
	rec.LastChanged = now
	return &rec.Versions[len(rec.Versions)-1], nil
}

// CreateSecretInput is CreateSecret's request.
type CreateSecretInput struct {
	Name                        string
	ClientRequestToken          string
	Description                 string
	KmsKeyId                    string
	SecretBinary                []byte
	SecretString                *string
	Tags                        []Tag
	AddReplicaRegions           []json.RawMessage
	ForceOverwriteReplicaSecret bool
}

// CreateSecretOutput is CreateSecret's response.
type CreateSecretOutput struct {
	ARN       string
	Name      string
	VersionId string `json:",omitempty"`
}

func (a *API) CreateSecret(ctx context.Context, in *CreateSecretInput) (*CreateSecretOutput, error) {
	if !secretNameRE.MatchString(in.Name) {
		return nil, smErr("ValidationException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@! (1 to 512 characters)")
	}
	if err := checkValue(in.SecretString, in.SecretBinary, false); err != nil {
		return nil, err
	}
	if err := checkToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if len(in.AddReplicaRegions) > 0 {
		return nil, smErr("InvalidParameterException", "Berth does not replicate secrets to other Regions.")
	}
	if len(in.Description) > 2048 {
		return nil, smErr("ValidationException", "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 2048")
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	var out *CreateSecretOutput
	err := retry(func() error {
		resp, err := a.Client.Get(ctx, state.SecretKey(in.Name))
		if err != nil {
			return err
		}
		if len(resp.Kvs) > 0 {
			rec := &secretRecord{}
			if err := json.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
				return err
			}
			if rec.DeletionDate != nil && a.now().Before(*rec.DeletionDate) {
				return smErr("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
			}
			if rec.DeletionDate == nil {
				// The same request again (same token, same value) succeeds.
				if in.ClientRequestToken != "" {
					for i := range rec.Versions {
						if rec.Versions[i].ID == in.ClientRequestToken {
							if _, err := a.addVersion(rec, in.ClientRequestToken, secretValue{String: in.SecretString, Binary: in.SecretBinary}, nil); err != nil {
								return err
							}
							out = &CreateSecretOutput{ARN: rec.ARN, Name: rec.Name, VersionId: in.ClientRequestToken}
							return nil
						}
					}
				}
				return smErr("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
			}
		}
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
		}
		now := a.now()
		rec := &secretRecord{ARN: a.secretARN(in.Name), Name: in.Name, Description: in.Description, KmsKeyID: in.KmsKeyId,
			Tags: in.Tags, Created: now, LastChanged: now}
		out = &CreateSecretOutput{ARN: rec.ARN, Name: rec.Name}
		if in.SecretString != nil || in.SecretBinary != nil {
			v, err := a.addVersion(rec, in.ClientRequestToken, secretValue{String: in.SecretString, Binary: in.SecretBinary}, nil)
			if err != nil {
				return err
			}
			out.VersionId = v.ID
		}
		return state.New(a.Client).Put(ctx, state.SecretKey(rec.Name), rec, rev)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// retry runs f until it does not lose a race.
func retry(f func() error) error {
	for range 16 {
		if err := f(); !errors.Is(err, state.ErrConflict) {
			return err
		}
	}
	return smErr("InternalServiceError", "Too many concurrent updates; try again.")
}

func checkTags(tags []Tag) error {
	if len(tags) > 50 {
		return smErr("ValidationException", "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return smErr("ValidationException", "Tag keys are 1 to 128 characters and values up to 256.")
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return smErr("InvalidParameterException", "Tag keys can't start with aws:.")
		}
	}
	return nil
}

// GetSecretValueInput is GetSecretValue's request.
type GetSecretValueInput struct {
	SecretId     string
	VersionId    string
	VersionStage string
}

// GetSecretValueOutput is GetSecretValue's response.
type GetSecretValueOutput struct {
	ARN           string
	Name          string
	VersionId     string
	SecretBinary  []byte  `json:",omitempty"`
	SecretString  *string `json:",omitempty"`
	VersionStages []string
	CreatedDate   spec.Timestamp
}

func (a *API) GetSecretValue(ctx context.Context, in *GetSecretValueInput) (*GetSecretValueOutput, error) {
	rec, _, err := a.loadSecret(ctx, in.SecretId)
	if err != nil {
		return nil, err
	}
	if rec.DeletionDate != nil {
		return nil, errMarkedDelete
	}
	v, err := pickVersion(rec, in.VersionId, in.VersionStage)
	if err != nil {
		return nil, err
	}
	val, err := a.openVersion(rec.Name, v)
	if err != nil {
		return nil, err
	}
	return &GetSecretValueOutput{ARN: rec.ARN, Name: rec.Name, VersionId: v.ID, SecretBinary: val.Binary, SecretString: val.String,
		VersionStages: nonNil(v.Stages), CreatedDate: spec.Timestamp{Time: v.Created}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func pickVersion(rec *secretRecord, id, stage string) (*secretVersion, error) {
	if id == "" && stage == "" {
		stage = stageCurrent
	}
	for i := range rec.Versions {
		v := &rec.Versions[i]
		if (id == "" || v.ID == id) && (stage == "" || slices.Contains(v.Stages, stage)) {
			return v, nil
		}
	}
	if id != "" {
		return nil, smErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", id)
	}
	return nil, smErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
}

// PutSecretValueInput is PutSecretValue's request.
type PutSecretValueInput struct {
	SecretId           string
	ClientRequestToken string
	SecretBinary       []byte
	SecretString       *string
	VersionStages      []string
}

// PutSecretValueOutput is PutSecretValue's response.
type PutSecretValueOutput struct {
	ARN           string
	Name          string
	VersionId     string
	VersionStages []string
}

func (a *API) PutSecretValue(ctx context.Context, in *PutSecretValueInput) (*PutSecretValueOutput, error) {
	if err := checkValue(in.SecretString, in.SecretBinary, true); err != nil {
		return nil, err
	}
	if err := checkToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	var out *PutSecretValueOutput
	_, err := a.modify(ctx, in.SecretId, false, func(rec *secretRecord) error {
		v, err := a.addVersion(rec, in.ClientRequestToken, secretValue{String: in.SecretString, Binary: in.SecretBinary}, in.VersionStages)
		if err != nil {
			return err
		}
		out = &PutSecretValueOutput{ARN: rec.ARN, Name: rec.Name, VersionId: v.ID, VersionStages: nonNil(v.Stages)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateSecretInput is UpdateSecret's request.
type UpdateSecretInput struct {
	SecretId           string
	ClientRequestToken string
	Description        *string
	KmsKeyId           *string
	SecretBinary       []byte
	SecretString       *string
}

// UpdateSecretOutput is UpdateSecret's response.
type UpdateSecretOutput struct {
	ARN       string
	Name      string
	VersionId string `json:",omitempty"`
}

func (a *API) UpdateSecret(ctx context.Context, in *UpdateSecretInput) (*UpdateSecretOutput, error) {
	if err := checkValue(in.SecretString, in.SecretBinary, false); err != nil {
		return nil, err
	}
	if err := checkToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	var out *UpdateSecretOutput
	_, err := a.modify(ctx, in.SecretId, false, func(rec *secretRecord) error {
		out = &UpdateSecretOutput{ARN: rec.ARN, Name: rec.Name}
		if in.Description != nil {
			rec.Description = *in.Description
			rec.LastChanged = a.now()
		}
		if in.KmsKeyId != nil {
			rec.KmsKeyID = *in.KmsKeyId
		}
		if in.SecretString != nil || in.SecretBinary != nil {
			v, err := a.addVersion(rec, in.ClientRequestToken, secretValue{String: in.SecretString, Binary: in.SecretBinary}, nil)
			if err != nil {
				return err
			}
			out.VersionId = v.ID
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeSecretInput is DescribeSecret's request.
type DescribeSecretInput struct{ SecretId string }

// DescribeSecretOutput is DescribeSecret's response (and, less the
// version map's name, a ListSecrets entry).
type DescribeSecretOutput struct {
	ARN                    string
	Name                   string
	Description            string              `json:",omitempty"`
	KmsKeyId               string              `json:",omitempty"`
	RotationEnabled        bool                `json:",omitempty"`
	LastChangedDate        spec.Timestamp      `json:",omitzero"`
	DeletedDate            *spec.Timestamp     `json:",omitempty"`
	Tags                   []Tag               `json:",omitempty"`
	VersionIdsToStages     map[string][]string `json:",omitempty"`
	SecretVersionsToStages map[string][]string `json:",omitempty"`
	CreatedDate            spec.Timestamp
}

func (a *API) describe(rec *secretRecord) *DescribeSecretOutput {
	out := &DescribeSecretOutput{ARN: rec.ARN, Name: rec.Name, Description: rec.Description, KmsKeyId: rec.KmsKeyID,
		LastChangedDate: spec.Timestamp{Time: rec.LastChanged}, Tags: rec.Tags, CreatedDate: spec.Timestamp{Time: rec.Created}}
	if rec.DeletionDate != nil {
		out.DeletedDate = spec.TS(*rec.DeletionDate)
	}
	if len(rec.Versions) > 0 {
		out.VersionIdsToStages = map[string][]string{}
		for _, v := range rec.Versions {
			out.VersionIdsToStages[v.ID] = nonNil(v.Stages)
		}
	}
	return out
}

func (a *API) DescribeSecret(ctx context.Context, in *DescribeSecretInput) (*DescribeSecretOutput, error) {
	rec, _, err := a.loadSecret(ctx, in.SecretId)
	if err != nil {
		return nil, err
	}
	return a.describe(rec), nil
}

// ListSecretVersionIdsInput is ListSecretVersionIds' request.
type ListSecretVersionIdsInput struct {
	SecretId          string
	MaxResults        *int64
	NextToken         string
	IncludeDeprecated bool
}

// SecretVersionsListEntry is one version in ListSecretVersionIds.
type SecretVersionsListEntry struct {
	VersionId     string
	VersionStages []string
	CreatedDate   spec.Timestamp
}

// ListSecretVersionIdsOutput is ListSecretVersionIds' response.
type ListSecretVersionIdsOutput struct {
	ARN       string
	Name      string
	Versions  []SecretVersionsListEntry
	NextToken string `json:",omitempty"`
}

// ListSecretVersionIds lists a secret's versions, newest first; versions
// without a staging label (deprecated) only when asked for. It works on a
// secret marked for deletion, as DescribeSecret does.
func (a *API) ListSecretVersionIds(ctx context.Context, in *ListSecretVersionIdsInput) (*ListSecretVersionIdsOutput, error) {
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return nil, smErr("InvalidParameterException", "MaxResults must be between 1 and 100.")
		}
		limit = int(*in.MaxResults)
	}
	rec, _, err := a.loadSecret(ctx, in.SecretId)
	if err != nil {
		return nil, err
	}
	var vs []secretVersion
	for _, v := range rec.Versions {
		if len(v.Stages) > 0 || in.IncludeDeprecated {
			vs = append(vs, v)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Created.After(vs[j].Created) })
	start := 0
	if in.NextToken != "" {
		start = slices.IndexFunc(vs, func(v secretVersion) bool { return v.ID == in.NextToken })
		if start < 0 {
			return nil, smErr("InvalidNextTokenException", "The NextToken value is invalid.")
		}
	}
	out := &ListSecretVersionIdsOutput{ARN: rec.ARN, Name: rec.Name, Versions: []SecretVersionsListEntry{}}
	for _, v := range vs[start:] {
		if len(out.Versions) == limit {
			out.NextToken = v.ID
			break
		}
		out.Versions = append(out.Versions, SecretVersionsListEntry{VersionId: v.ID, VersionStages: nonNil(v.Stages), CreatedDate: spec.Timestamp{Time: v.Created}})
	}
	return out, nil
}

// GetRandomPasswordInput is GetRandomPassword's request.
type GetRandomPasswordInput struct {
	PasswordLength          *int64
	ExcludeCharacters       string
	ExcludeNumbers          bool
	ExcludePunctuation      bool
	ExcludeUppercase        bool
	ExcludeLowercase        bool
	IncludeSpace            bool
	RequireEachIncludedType *bool
}

// GetRandomPasswordOutput is GetRandomPassword's response.
type GetRandomPasswordOutput struct {
	RandomPassword string
}

// GetRandomPassword makes a password from a cryptographic source (ChaCha8
// keyed from crypto/rand): 32
// characters by default, with at least one of each included kind unless
// told otherwise, as Secrets Manager does.
func (a *API) GetRandomPassword(ctx context.Context, in *GetRandomPasswordInput) (*GetRandomPasswordOutput, error) {
	n := int64(32)
	if in.PasswordLength != nil {
		n = *in.PasswordLength
	}
	if n < 1 || n > 4096 {
		return nil, smErr("InvalidParameterException", "PasswordLength must be between 1 and 4096.")
	}
	if len(in.ExcludeCharacters) > 4096 {
		return nil, smErr("InvalidParameterException", "ExcludeCharacters must be at most 4096 characters.")
	}
	keep := func(set string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(in.ExcludeCharacters, r) {
				return -1
			}
			return r
		}, set)
	}
	var kinds []string
	for _, k := range []struct {
		exclude bool
		set     string
	}{
		{in.ExcludeLowercase, "abcdefghijklmnopqrstuvwxyz"},
		{in.ExcludeUppercase, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
		{in.ExcludeNumbers, "0123456789"},
		{in.ExcludePunctuation, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
		{!in.IncludeSpace, " "},
	} {
		if !k.exclude {
			if set := keep(k.set); set != "" {
				kinds = append(kinds, set)
			}
		}
	}
	if len(kinds) == 0 {
		return nil, smErr("InvalidParameterException", "The password must contain at least one character: every kind of character is excluded.")
	}
	requireEach := in.RequireEachIncludedType == nil || *in.RequireEachIncludedType
	if requireEach && int64(len(kinds)) > n {
		return nil, smErr("InvalidParameterException", "PasswordLength %d is too short to include one character of each of the %d kinds included.", n, len(kinds))
	}
	all := strings.Join(kinds, "")
	var seed [32]byte
	crand.Read(seed[:]) // never fails (crypto/rand)
	rng := rand.New(rand.NewChaCha8(seed))
	pick := func(set string) byte { return set[rng.IntN(len(set))] }
	out := make([]byte, n)
	for i := range out {
		out[i] = pick(all)
	}
	if requireEach {
		// One of each kind at distinct random places.
		places := make([]int, n)
		for i := range places {
			places[i] = i
		}
		for i := len(places) - 1; i > 0; i-- {
			j := rng.IntN(i + 1)
			places[i], places[j] = places[j], places[i]
		}
		for k, set := range kinds {
			out[places[k]] = pick(set)
		}
	}
	return &GetRandomPasswordOutput{RandomPassword: string(out)}, nil
}

// DeleteSecretInput is DeleteSecret's request.
type DeleteSecretInput struct {
	SecretId                   string
	RecoveryWindowInDays       *int64
	ForceDeleteWithoutRecovery bool
}

// DeleteSecretOutput is DeleteSecret's response.
type DeleteSecretOutput struct {
	ARN          string
	Name         string
	DeletionDate spec.Timestamp
}

func (a *API) DeleteSecret(ctx context.Context, in *DeleteSecretInput) (*DeleteSecretOutput, error) {
	if in.ForceDeleteWithoutRecovery && in.RecoveryWindowInDays != nil {
		return nil, smErr("InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, smErr("InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	if in.ForceDeleteWithoutRecovery {
		rec, rev, err := a.loadSecret(ctx, in.SecretId)
		if err != nil {
			return nil, err
		}
		key := state.SecretKey(rec.Name)
		resp, err := a.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			return nil, smErr("InternalServiceError", "The secret changed while it was being deleted; try again.")
		}
		return &DeleteSecretOutput{ARN: rec.ARN, Name: rec.Name, DeletionDate: spec.Timestamp{Time: a.now()}}, nil
	}
	when := a.now().Add(time.Duration(days) * 24 * time.Hour)
	rec, err := a.modify(ctx, in.SecretId, false, func(rec *secretRecord) error {
		rec.DeletionDate = &when
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &DeleteSecretOutput{ARN: rec.ARN, Name: rec.Name, DeletionDate: spec.Timestamp{Time: when}}, nil
}

// RestoreSecretOutput is RestoreSecret's response.
type RestoreSecretOutput struct {
	ARN  string
	Name string
}

func (a *API) RestoreSecret(ctx context.Context, in *DescribeSecretInput) (*RestoreSecretOutput, error) {
	rec, err := a.modify(ctx, in.SecretId, true, func(rec *secretRecord) error {
		rec.DeletionDate = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &RestoreSecretOutput{ARN: rec.ARN, Name: rec.Name}, nil
}

// ListSecretsInput is ListSecrets' request.
type ListSecretsInput struct {
	MaxResults *int32
	NextToken  string
	Filters    []struct {
		Key    string
		Values []string
	}
	SortOrder              string
	IncludePlannedDeletion bool
}

// ListSecretsOutput is ListSecrets' response.
type ListSecretsOutput struct {
	SecretList []*DescribeSecretOutput
	NextToken  string `json:",omitempty"`
}

func (a *API) ListSecrets(ctx context.Context, in *ListSecretsInput) (*ListSecretsOutput, error) {
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return nil, smErr("InvalidParameterException", "MaxResults must be between 1 and 100.")
		}
		limit = int(*in.MaxResults)
	}
	for _, f := range in.Filters {
		switch f.Key {
		case "description", "name", "tag-key", "tag-value", "primary-region", "owning-service", "all":
		default:
			return nil, smErr("ValidationException", "1 validation error detected: Value '%s' at 'filters.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]", f.Key)
		}
	}
	resp, err := a.Client.Get(ctx, state.SecretsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var all []*secretRecord
	now := a.now()
	for _, kv := range resp.Kvs {
		rec := &secretRecord{}
		if json.Unmarshal(kv.Value, rec) != nil {
			continue
		}
		if rec.DeletionDate != nil && (!in.IncludePlannedDeletion || !now.Before(*rec.DeletionDate)) {
			continue
		}
		if matchFilters(rec, in.Filters) {
			all = append(all, rec)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if in.SortOrder == "asc" {
			return all[i].Created.Before(all[j].Created)
		}
		return all[i].Created.After(all[j].Created)
	})
	start := 0
	if in.NextToken != "" {
		start = -1
		for i, r := range all {
			if r.ARN == in.NextToken {
				start = i
			}
		}
		if start < 0 {
			return nil, smErr("InvalidNextTokenException", "The NextToken value is invalid.")
		}
	}
	out := &ListSecretsOutput{SecretList: []*DescribeSecretOutput{}}
	for i := start; i < len(all); i++ {
		if len(out.SecretList) == limit {
			out.NextToken = all[i].ARN
			break
		}
		d := a.describe(all[i])
		d.SecretVersionsToStages, d.VersionIdsToStages = d.VersionIdsToStages, nil
		out.SecretList = append(out.SecretList, d)
	}
	return out, nil
}

func matchFilters(rec *secretRecord, filters []struct {
	Key    string
	Values []string
}) bool {
	for _, f := range filters {
		ok := false
		for _, v := range f.Values {
			neg := strings.HasPrefix(v, "!")
			v = strings.ToLower(strings.TrimPrefix(v, "!"))
			has := func(s string) bool { return strings.HasPrefix(strings.ToLower(s), v) }
			m := false
			switch f.Key {
			case "name":
				m = has(rec.Name)
			case "description":
				m = has(rec.Description)
			case "tag-key", "tag-value":
				for _, t := range rec.Tags {
					if (f.Key == "tag-key" && has(t.Key)) || (f.Key == "tag-value" && has(t.Value)) {
						m = true
					}
				}
			case "all":
				m = has(rec.Name) || has(rec.Description)
				for _, t := range rec.Tags {
					m = m || has(t.Key) || has(t.Value)
				}
			case "primary-region":
				m = false
			}
			if m != neg {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// TagResourceInput is TagResource's request.
type TagResourceInput struct {
	SecretId string
	Tags     []Tag
}

// UntagResourceInput is UntagResource's request.
type UntagResourceInput struct {
	SecretId string
	TagKeys  []string
}

// Empty is an empty response.
type Empty struct{}

func (a *API) TagResource(ctx context.Context, in *TagResourceInput) (*Empty, error) {
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	_, err := a.modify(ctx, in.SecretId, true, func(rec *secretRecord) error {
		for _, t := range in.Tags {
			i := slices.IndexFunc(rec.Tags, func(o Tag) bool { return o.Key == t.Key })
			if i >= 0 {
				rec.Tags[i] = t
			} else {
				rec.Tags = append(rec.Tags, t)
			}
		}
		return checkTags(rec.Tags)
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

func (a *API) UntagResource(ctx context.Context, in *UntagResourceInput) (*Empty, error) {
	_, err := a.modify(ctx, in.SecretId, true, func(rec *secretRecord) error {
		rec.Tags = slices.DeleteFunc(rec.Tags, func(t Tag) bool { return slices.Contains(in.TagKeys, t.Key) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Empty{}, nil
}
