package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/berth-project/berth/internal/spec"
)

// Resolve returns the value a container definition's secret names in
// valueFrom, as the ECS agent resolves it:
//
//   - a Secrets Manager secret's ARN, optionally followed by
//     :json-key:version-stage:version-id (each part may be empty), which
//     picks one key of a JSON secret and a version;
//   - an SSM parameter's ARN or name (NAME, /PATH/NAME).
//
// Errors are ECS's ResourceInitializationError wording, which becomes the
// task's stopped reason.
func (a *API) Resolve(ctx context.Context, valueFrom string) (string, error) {
	if rest, ok := strings.CutPrefix(valueFrom, "arn:aws:secretsmanager:"); ok {
		parts := strings.SplitN(rest, ":", 7) // region, account, "secret", name, json-key, stage, version-id
		if len(parts) < 4 || parts[2] != "secret" {
			return "", fmt.Errorf("invalid Secrets Manager ARN %s", valueFrom)
		}
		arn := "arn:aws:secretsmanager:" + strings.Join(parts[:4], ":")
		var jsonKey, stage, version string
		if len(parts) > 4 {
			jsonKey = parts[4]
		}
		if len(parts) > 5 {
			stage = parts[5]
		}
		if len(parts) > 6 {
			version = parts[6]
		}
		out, err := a.GetSecretValue(ctx, &GetSecretValueInput{SecretId: arn, VersionStage: stage, VersionId: version})
		if err != nil {
			return "", explain("secret "+arn, err)
		}
		if out.SecretString == nil {
			return "", fmt.Errorf("secret %s has a binary value; ECS injects string secrets only", arn)
		}
		if jsonKey == "" {
			return *out.SecretString, nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(*out.SecretString), &obj); err != nil {
			return "", fmt.Errorf("secret %s is not a JSON object, so it has no key %q", arn, jsonKey)
		}
		raw, ok := obj[jsonKey]
		if !ok {
			return "", fmt.Errorf("secret %s has no JSON key %q", arn, jsonKey)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
		return string(raw), nil
	}
	p, err := a.getParam(ctx, valueFrom, true)
	if err != nil {
		return "", explain("parameter "+valueFrom, err)
	}
	return p.Value, nil
}

func explain(what string, err error) error {
	if se, ok := err.(*spec.Error); ok {
		return fmt.Errorf("%s: %s: %s", what, se.Code, se.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Credentials reads a username and password from a secret or parameter
// holding JSON {"username": …, "password": …} (registry credentials, an
// FSx volume's credentialsParameter).
func (a *API) Credentials(ctx context.Context, valueFrom string) (user, password string, err error) {
	v, err := a.Resolve(ctx, valueFrom)
	if err != nil {
		return "", "", err
	}
	var c struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if json.Unmarshal([]byte(v), &c) != nil || c.Username == "" {
		return "", "", fmt.Errorf("%s does not hold JSON {\"username\": …, \"password\": …}", valueFrom)
	}
	return c.Username, c.Password, nil
}
