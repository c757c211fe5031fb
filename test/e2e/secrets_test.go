package e2e

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/cli"
	"github.com/berth-project/berth/internal/server"
	"github.com/berth-project/berth/internal/state"
)

func smClient(endpoint string) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{HTTPClient: cli.NewHTTPClient(), BaseEndpoint: aws.String(endpoint), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), RetryMaxAttempts: 1})
}

func ssmClient(endpoint string) *ssm.Client {
	return ssm.New(ssm.Options{HTTPClient: cli.NewHTTPClient(), BaseEndpoint: aws.String(endpoint), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), RetryMaxAttempts: 1})
}

// wantCode fails unless err is an API error of the given type.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("%s: want %s, got %v", what, code, err)
	}
}

// grepTree fails if needle appears in any file under root.
func grepTree(t *testing.T, root string, needle []byte) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, needle) {
			t.Errorf("%s holds a secret in the clear", p)
		}
		return nil
	})
}

func TestSecretsManager(t *testing.T) {
	dir := t.TempDir()
	s := start(t, func(c *server.Config) { c.DataDir = dir })
	ctx := context.Background()
	sm := smClient(s.Endpoint())
	const value = `{"username":"svc-app","password":"p4ss-Wr0rd-in-the-clear-nowhere"}`

	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("prod/db"), SecretString: aws.String(value),
		Description: aws.String("database"), Tags: []smtypes.Tag{{Key: aws.String("team"), Value: aws.String("storage")}}})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(created.ARN)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-") || len(arn) != len("arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-")+6 {
		t.Fatalf("ARN %s", arn)
	}
	for _, id := range []string{"prod/db", arn, strings.TrimSuffix(arn, arn[len(arn)-7:])} {
		got, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil || aws.ToString(got.SecretString) != value || aws.ToString(got.VersionId) != aws.ToString(created.VersionId) ||
			len(got.VersionStages) != 1 || got.VersionStages[0] != "AWSCURRENT" {
			t.Fatalf("get by %s: %v %+v", id, err, got)
		}
	}

	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("prod/db"), SecretString: aws.String("x")})
	wantCode(t, "create again", err, "ResourceExistsException")
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("x"), SecretBinary: []byte("y")})
	wantCode(t, "string and binary", err, "InvalidParameterException")
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bad name!")})
	wantCode(t, "bad name", err, "ValidationException")
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	wantCode(t, "missing", err, "ResourceNotFoundException")
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("both")}); err == nil {
		t.Fatal("a refused CreateSecret left a secret behind")
	}

	// A new version takes AWSCURRENT; the old one keeps AWSPREVIOUS.
	put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(`{"username":"svc-app","password":"second"}`)})
	if err != nil {
		t.Fatal(err)
	}
	prev, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.SecretString) != value {
		t.Fatalf("AWSPREVIOUS: %v %+v", err, prev)
	}
	desc, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("prod/db")})
	if err != nil || aws.ToString(desc.Description) != "database" || len(desc.VersionIdsToStages) != 2 ||
		desc.VersionIdsToStages[aws.ToString(put.VersionId)][0] != "AWSCURRENT" || len(desc.Tags) != 1 {
		t.Fatalf("describe: %v %+v", err, desc)
	}
	list, err := sm.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{"prod/"}}}})
	if err != nil || len(list.SecretList) != 1 || aws.ToString(list.SecretList[0].ARN) != arn {
		t.Fatalf("list: %v %+v", err, list)
	}

	// Versions: labelled ones, newest first, a page at a time.
	vers, err := sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("prod/db"), MaxResults: aws.Int32(1)})
	if err != nil || len(vers.Versions) != 1 || aws.ToString(vers.Versions[0].VersionId) != aws.ToString(put.VersionId) ||
		vers.Versions[0].VersionStages[0] != "AWSCURRENT" || vers.NextToken == nil || aws.ToString(vers.ARN) != arn {
		t.Fatalf("list versions: %v %+v", err, vers)
	}
	vers, err = sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("prod/db"), NextToken: vers.NextToken})
	if err != nil || len(vers.Versions) != 1 || vers.Versions[0].VersionStages[0] != "AWSPREVIOUS" || vers.NextToken != nil {
		t.Fatalf("list versions, page 2: %v %+v", err, vers)
	}
	_, err = sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("prod/db"), NextToken: aws.String("bogus")})
	wantCode(t, "a bogus version page token", err, "InvalidNextTokenException")

	// Random passwords: the length asked for, each kind included, the
	// characters excluded left out.
	pw, err := sm.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(40), ExcludeCharacters: aws.String("aeiouAEIOU01"), ExcludePunctuation: aws.Bool(true)})
	if err != nil || len(aws.ToString(pw.RandomPassword)) != 40 || strings.ContainsAny(aws.ToString(pw.RandomPassword), "aeiouAEIOU01!#%-_") ||
		!strings.ContainsAny(aws.ToString(pw.RandomPassword), "0123456789") || !strings.ContainsAny(aws.ToString(pw.RandomPassword), "BCDFGHJKLMNPQRSTVWXYZ") {
		t.Fatalf("random password: %v %+v", err, pw)
	}
	if pw2, _ := sm.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{}); len(aws.ToString(pw2.RandomPassword)) != 32 || aws.ToString(pw2.RandomPassword) == aws.ToString(pw.RandomPassword) {
		t.Fatalf("default random password: %+v", pw2)
	}
	_, err = sm.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(2)})
	wantCode(t, "a password too short for one of each kind", err, "InvalidParameterException")

	// Deletion with a recovery window can be undone; forced deletion not.
	if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(arn), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	wantCode(t, "get while marked for deletion", err, "InvalidRequestException")
	_, err = sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(arn), RecoveryWindowInDays: aws.Int64(3)})
	wantCode(t, "recovery window of 3 days", err, "InvalidParameterException")
	if _, err := sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}); err != nil {
		t.Fatalf("restored: %v", err)
	}

	// The AWS CLI, unchanged.
	if _, e := runAWS(t, s.Endpoint(), "secretsmanager", "create-secret", "--name", "cli-secret", "--secret-string", "from-the-cli-9f3e"); e != "" {
		t.Fatal(e)
	}
	got, e := runAWS(t, s.Endpoint(), "secretsmanager", "get-secret-value", "--secret-id", "cli-secret")
	if e != "" || got["SecretString"] != "from-the-cli-9f3e" {
		t.Fatalf("cli get-secret-value: %s %v", e, got)
	}
	if _, e := runAWS(t, s.Endpoint(), "secretsmanager", "describe-secret", "--secret-id", "missing"); !strings.Contains(e, "ResourceNotFoundException") {
		t.Fatalf("cli describe of a missing secret: %q", e)
	}
	if _, e := runAWS(t, s.Endpoint(), "secretsmanager", "delete-secret", "--secret-id", "cli-secret", "--force-delete-without-recovery"); e != "" {
		t.Fatal(e)
	}
	_, err = sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("cli-secret")})
	wantCode(t, "after forced deletion", err, "ResourceNotFoundException")

	// Sealed in etcd: neither the records nor any file of the server's
	// data (etcd's WAL and database included) holds a value in the clear.
	raw, err := s.Client().Get(ctx, state.SecretsPrefix(), clientv3.WithPrefix())
	if err != nil || len(raw.Kvs) == 0 {
		t.Fatalf("records: %v", err)
	}
	for _, kv := range raw.Kvs {
		if bytes.Contains(kv.Value, []byte("p4ss-Wr0rd")) || bytes.Contains(kv.Value, []byte("second")) {
			t.Fatalf("%s holds a value in the clear", kv.Key)
		}
	}
	s.Close()
	grepTree(t, dir, []byte("p4ss-Wr0rd-in-the-clear-nowhere"))
	grepTree(t, dir, []byte("from-the-cli-9f3e"))
	if _, err := os.Stat(filepath.Join(dir, "secrets.key")); err != nil {
		t.Fatalf("the key file: %v", err)
	}

	// A server given another key refuses to start, rather than fail to
	// read every secret later.
	other := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(other, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	_, err = server.Start(ctx, server.Config{DataDir: dir, Listen: "127.0.0.1:0", SecretsKeyFile: other, Log: testLogger()})
	if err == nil || !strings.Contains(err.Error(), "is not this cluster's") {
		t.Fatalf("start with another key: %v", err)
	}
	// The same data with its own key starts, and the secret reads back.
	s2 := start(t, func(c *server.Config) { c.DataDir = dir })
	got2, err := smClient(s2.Endpoint()).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(got2.SecretString) != value {
		t.Fatalf("after restart: %v %+v", err, got2)
	}
}

func TestParameterStore(t *testing.T) {
	dir := t.TempDir()
	s := start(t, func(c *server.Config) { c.DataDir = dir })
	ctx := context.Background()
	p := ssmClient(s.Endpoint())

	out, err := p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/db/password"), Value: aws.String("s3cure-param-7781"), Type: ssmtypes.ParameterTypeSecureString})
	if err != nil || out.Version != 1 {
		t.Fatalf("put: %v %+v", err, out)
	}
	got, err := p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(got.Parameter.Value) != "s3cure-param-7781" || got.Parameter.Type != ssmtypes.ParameterTypeSecureString ||
		aws.ToString(got.Parameter.ARN) != "arn:aws:ssm:us-east-1:000000000000:parameter/app/db/password" {
		t.Fatalf("get decrypted: %v %+v", err, got.Parameter)
	}
	enc, err := p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password")})
	if err != nil || strings.Contains(aws.ToString(enc.Parameter.Value), "s3cure") || aws.ToString(enc.Parameter.Value) == "" {
		t.Fatalf("a SecureString read without decryption: %v %+v", err, enc.Parameter)
	}
	_, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/db/password"), Value: aws.String("x"), Type: ssmtypes.ParameterTypeSecureString})
	wantCode(t, "put without overwrite", err, "ParameterAlreadyExists")
	out, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/db/password"), Value: aws.String("rotated-param-1"), Overwrite: aws.Bool(true)})
	if err != nil || out.Version != 2 {
		t.Fatalf("overwrite: %v %+v", err, out)
	}
	v1, err := p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:1"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(v1.Parameter.Value) != "s3cure-param-7781" || v1.Parameter.Version != 1 {
		t.Fatalf("version 1: %v %+v", err, v1)
	}
	if _, err := p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/region"), Value: aws.String("local"), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("plain"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	many, err := p.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/region", "plain", "/nope"}})
	if err != nil || len(many.Parameters) != 2 || len(many.InvalidParameters) != 1 || many.InvalidParameters[0] != "/nope" {
		t.Fatalf("get parameters: %v %+v", err, many)
	}
	byPath, err := p.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app"), Recursive: aws.Bool(true), WithDecryption: aws.Bool(true)})
	if err != nil || len(byPath.Parameters) != 2 {
		t.Fatalf("by path: %v %+v", err, byPath)
	}
	shallow, err := p.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app")})
	if err != nil || len(shallow.Parameters) != 1 || aws.ToString(shallow.Parameters[0].Name) != "/app/region" {
		t.Fatalf("by path, not recursive: %v %+v", err, shallow)
	}

	// Metadata only, by filter.
	desc, derr := runAWSRaw(t, s.Endpoint(), "ssm", "describe-parameters", "--parameter-filters", "Key=Name,Option=BeginsWith,Values=/app/")
	if derr != nil || !strings.Contains(desc, `"/app/db/password"`) || !strings.Contains(desc, `"/app/region"`) || strings.Contains(desc, `"plain"`) ||
		strings.Contains(desc, "rotated-param-1") || !strings.Contains(desc, `"SecureString"`) {
		t.Fatalf("describe-parameters: %v %s", derr, desc)
	}
	byType, err := p.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []ssmtypes.ParameterStringFilter{{Key: aws.String("Type"), Values: []string{"String"}}}})
	if err != nil || len(byType.Parameters) != 2 {
		t.Fatalf("describe parameters of type String: %v %+v", err, byType)
	}

	// History, oldest first, a page at a time; labels name one version.
	hist, err := p.GetParameterHistory(ctx, &ssm.GetParameterHistoryInput{Name: aws.String("/app/db/password"), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(1)})
	if err != nil || len(hist.Parameters) != 1 || aws.ToString(hist.Parameters[0].Value) != "s3cure-param-7781" || hist.Parameters[0].Version != 1 || hist.NextToken == nil {
		t.Fatalf("history: %v %+v", err, hist)
	}
	hist, err = p.GetParameterHistory(ctx, &ssm.GetParameterHistoryInput{Name: aws.String("/app/db/password"), NextToken: hist.NextToken})
	if err != nil || len(hist.Parameters) != 1 || hist.Parameters[0].Version != 2 || aws.ToString(hist.Parameters[0].Value) == "rotated-param-1" {
		t.Fatalf("history, page 2 (not decrypted): %v %+v", err, hist)
	}
	lab, err := p.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/app/db/password"), ParameterVersion: aws.Int64(1), Labels: []string{"stable", "1bad"}})
	if err != nil || lab.ParameterVersion != 1 || len(lab.InvalidLabels) != 1 || lab.InvalidLabels[0] != "1bad" {
		t.Fatalf("label version 1: %v %+v", err, lab)
	}
	byLabel, err := p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:stable"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(byLabel.Parameter.Value) != "s3cure-param-7781" {
		t.Fatalf("get by label: %v %+v", err, byLabel)
	}
	if _, err := p.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/app/db/password"), Labels: []string{"stable"}}); err != nil {
		t.Fatal(err)
	}
	byLabel, err = p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:stable"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(byLabel.Parameter.Value) != "rotated-param-1" {
		t.Fatalf("a label moved to the latest version: %v %+v", err, byLabel)
	}
	unl, err := p.UnlabelParameterVersion(ctx, &ssm.UnlabelParameterVersionInput{Name: aws.String("/app/db/password"), ParameterVersion: aws.Int64(2), Labels: []string{"stable", "other"}})
	if err != nil || len(unl.RemovedLabels) != 1 || len(unl.InvalidLabels) != 1 {
		t.Fatalf("unlabel: %v %+v", err, unl)
	}
	_, err = p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/password:stable")})
	wantCode(t, "a removed label", err, "ParameterVersionNotFound")

	// Tags.
	if _, err := p.AddTagsToResource(ctx, &ssm.AddTagsToResourceInput{ResourceType: ssmtypes.ResourceTypeForTaggingParameter, ResourceId: aws.String("/app/region"),
		Tags: []ssmtypes.Tag{{Key: aws.String("team"), Value: aws.String("a")}, {Key: aws.String("tier"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RemoveTagsFromResource(ctx, &ssm.RemoveTagsFromResourceInput{ResourceType: ssmtypes.ResourceTypeForTaggingParameter, ResourceId: aws.String("/app/region"), TagKeys: []string{"tier"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := p.ListTagsForResource(ctx, &ssm.ListTagsForResourceInput{ResourceType: ssmtypes.ResourceTypeForTaggingParameter, ResourceId: aws.String("/app/region")})
	if err != nil || len(tags.TagList) != 1 || aws.ToString(tags.TagList[0].Key) != "team" {
		t.Fatalf("tags: %v %+v", err, tags)
	}
	_, err = p.ListTagsForResource(ctx, &ssm.ListTagsForResourceInput{ResourceType: ssmtypes.ResourceTypeForTaggingParameter, ResourceId: aws.String("/nope")})
	wantCode(t, "tags of a missing parameter", err, "InvalidResourceId")

	// Parameter Store's checks.
	_, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/aws/x"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString})
	wantCode(t, "reserved name", err, "ValidationException")
	_, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("a/b"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString})
	wantCode(t, "unqualified path", err, "ValidationException")
	_, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/t"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString,
		Overwrite: aws.Bool(true), Tags: []ssmtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	wantCode(t, "tags with overwrite", err, "ValidationException")
	_, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/pat"), Value: aws.String("abc"), Type: ssmtypes.ParameterTypeString, AllowedPattern: aws.String(`^\d+$`)})
	wantCode(t, "allowed pattern", err, "ParameterPatternMismatchException")
	_, err = p.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/pat")})
	wantCode(t, "a refused put wrote nothing", err, "ParameterNotFound")
	_, err = p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/big"), Value: aws.String(strings.Repeat("x", 4097)), Type: ssmtypes.ParameterTypeString})
	wantCode(t, "value over 4 KiB", err, "ValidationException")

	// The AWS CLI, unchanged.
	if _, e := runAWS(t, s.Endpoint(), "ssm", "put-parameter", "--name", "/cli/token", "--value", "cli-param-5521", "--type", "SecureString"); e != "" {
		t.Fatal(e)
	}
	cliGot, e := runAWS(t, s.Endpoint(), "ssm", "get-parameter", "--name", "/cli/token", "--with-decryption")
	if e != "" || cliGot["Parameter"].(map[string]any)["Value"] != "cli-param-5521" {
		t.Fatalf("cli get-parameter: %s %v", e, cliGot)
	}
	if _, e := runAWS(t, s.Endpoint(), "ssm", "delete-parameter", "--name", "/cli/token"); e != "" {
		t.Fatal(e)
	}
	if _, e := runAWS(t, s.Endpoint(), "ssm", "get-parameter", "--name", "/cli/token"); !strings.Contains(e, "ParameterNotFound") {
		t.Fatalf("cli get of a deleted parameter: %q", e)
	}
	_, err = p.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/cli/token")})
	wantCode(t, "delete twice", err, "ParameterNotFound")

	s.Close()
	for _, v := range []string{"s3cure-param-7781", "rotated-param-1", "cli-param-5521"} {
		grepTree(t, dir, []byte(v))
	}
}

// TestContainerSecrets: a container's secrets (a whole secret, one JSON
// key of one, a SecureString parameter by name and by ARN) reach its
// environment; the values appear in no API answer, no Berth record and no
// file of the server's. A secret that does not exist stops the task with
// ECS's ResourceInitializationError.
func TestContainerSecrets(t *testing.T) {
	dir := t.TempDir()
	c := newCluster(t, func(cfg *server.Config) { cfg.DataDir = dir })
	ra := c.addAgent("us-east-1a", "")
	ctx := c.ctx
	sm, p := smClient(c.srv.Endpoint()), ssmClient(c.srv.Endpoint())
	whole, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("api-key"), SecretString: aws.String("k-00secret-whole")})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("db"), SecretString: aws.String(`{"username":"app","password":"pw-00secret-json"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/svc/token"), Value: aws.String("tok-00secret-param"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("with-secrets"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Command: []string{"sleep", "3600"},
		LogConfiguration: &types.LogConfiguration{LogDriver: types.LogDriverJsonFile,
			SecretOptions: []types.Secret{{Name: aws.String("max-size"), ValueFrom: aws.String("/svc/log-max")}}},
		Environment: []types.KeyValuePair{{Name: aws.String("PLAIN"), Value: aws.String("visible")}},
		Secrets: []types.Secret{
			{Name: aws.String("API_KEY"), ValueFrom: whole.ARN},
			{Name: aws.String("DB_PASSWORD"), ValueFrom: aws.String(aws.ToString(db.ARN) + ":password::")},
			{Name: aws.String("TOKEN"), ValueFrom: aws.String("/svc/token")},
			{Name: aws.String("TOKEN2"), ValueFrom: aws.String("arn:aws:ssm:us-east-1:000000000000:parameter/svc/token")},
		},
	}}})
	if _, err := p.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/svc/log-max"), Value: aws.String("7m"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	task := c.run(td)
	running := c.wait(task.TaskArn, "RUNNING")
	id := aws.ToString(running.Containers[0].RuntimeId)
	if out, _ := exec.Command("docker", "inspect", "-f", `{{index .HostConfig.LogConfig.Config "max-size"}}`, id).Output(); strings.TrimSpace(string(out)) != "7m" {
		t.Fatalf("logConfiguration.secretOptions: max-size %q", out)
	}
	env, err := exec.Command("docker", "exec", id, "sh", "-c", `echo "$API_KEY|$DB_PASSWORD|$TOKEN|$TOKEN2|$PLAIN"`).CombinedOutput()
	if got := strings.TrimSpace(string(env)); err != nil || got != "k-00secret-whole|pw-00secret-json|tok-00secret-param|tok-00secret-param|visible" {
		t.Fatalf("the container's environment: %v %q", err, got)
	}
	labels, _ := exec.Command("docker", "inspect", "-f", "{{json .Config.Labels}}", id).Output()
	secretValues := []string{"k-00secret-whole", "pw-00secret-json", "tok-00secret-param"}
	for _, v := range secretValues {
		if bytes.Contains(labels, []byte(v)) {
			t.Fatalf("a secret is in the container's labels: %s", labels)
		}
	}
	// Nothing the API answers holds a value: the task, its definition.
	for _, args := range [][]string{
		{"ecs", "describe-tasks", "--tasks", aws.ToString(task.TaskArn)},
		{"ecs", "describe-task-definition", "--task-definition", td},
		{"secretsmanager", "describe-secret", "--secret-id", "db"},
		{"secretsmanager", "list-secrets"},
		{"ssm", "get-parameter", "--name", "/svc/token"},
	} {
		out, e := runAWSRaw(t, c.srv.Endpoint(), args...)
		if e != nil {
			t.Fatalf("aws %v: %v %s", args, e, out)
		}
		for _, v := range secretValues {
			if strings.Contains(out, v) {
				t.Fatalf("aws %v shows a secret: %s", args, out)
			}
		}
	}
	all, err := c.srv.Client().Get(ctx, state.Prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		for _, v := range secretValues {
			if bytes.Contains(kv.Value, []byte(v)) {
				t.Fatalf("%s holds a secret in the clear", kv.Key)
			}
		}
	}
	c.stop(task.TaskArn)

	// A secret that is not there: the task stops before its containers start.
	bad := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("missing-secret"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Command: []string{"true"},
		Secrets: []types.Secret{{Name: aws.String("X"), ValueFrom: aws.String("arn:aws:secretsmanager:us-east-1:000000000000:secret:gone-abcdef")}},
	}}})
	bt := c.run(bad)
	stopped := c.wait(bt.TaskArn, "STOPPED")
	if r := aws.ToString(stopped.StoppedReason); !strings.Contains(r, "ResourceInitializationError") || !strings.Contains(r, "ResourceNotFoundException") {
		t.Fatalf("stopped reason: %q", r)
	}
	// Registration checks secrets as ECS does.
	_, err = c.ecs.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("dup-secret"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(64),
		Secrets: []types.Secret{{Name: aws.String("X"), ValueFrom: aws.String("/a")}, {Name: aws.String("X"), ValueFrom: aws.String("/b")}},
	}}})
	wantCode(t, "duplicate secret names", err, "ClientException")
	c.stopAgent(ra)
	c.srv.Close()
	for _, v := range secretValues {
		grepTree(t, dir, []byte(v))
	}
}

// runAWSRaw runs the AWS CLI and returns its output as text.
func runAWSRaw(t *testing.T, endpoint string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(awsCLI, append(args, "--endpoint-url", endpoint, "--output", "json", "--no-cli-pager")...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=berth", "AWS_SECRET_ACCESS_KEY=berth", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSecretsKeyAcrossServers: two servers of one external etcd, each with
// a data directory of its own. The second, without the cluster's key,
// starts anyway and says why it cannot open secrets; given a copy of the
// key, it reads what the first sealed.
func TestSecretsKeyAcrossServers(t *testing.T) {
	etcdURL := externalEtcd(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	s1 := serverOn(t, etcdURL, func(c *server.Config) { c.DataDir = dir1 })
	t.Cleanup(func() { s1.Close() })
	ctx := context.Background()
	if _, err := smClient(s1.Endpoint()).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("shared"), SecretString: aws.String("from-s1")}); err != nil {
		t.Fatal(err)
	}
	s2 := serverOn(t, etcdURL, func(c *server.Config) { c.DataDir = dir2 })
	_, err := smClient(s2.Endpoint()).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("shared")})
	if err == nil || !strings.Contains(err.Error(), "copy secrets.key") {
		t.Fatalf("a server without the key: %v", err)
	}
	if _, err := client(s2.Endpoint(), "test", "test").ListClusters(ctx, &ecs.ListClustersInput{}); err != nil {
		t.Fatalf("ECS on a server without the secrets key: %v", err)
	}
	s2.Close()
	key, _ := os.ReadFile(filepath.Join(dir1, "secrets.key"))
	os.WriteFile(filepath.Join(dir2, "secrets.key"), key, 0o600)
	s2 = serverOn(t, etcdURL, func(c *server.Config) { c.DataDir = dir2 })
	t.Cleanup(func() { s2.Close() })
	got, err := smClient(s2.Endpoint()).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("shared")})
	if err != nil || aws.ToString(got.SecretString) != "from-s1" {
		t.Fatalf("with the key copied: %v", err)
	}
}
