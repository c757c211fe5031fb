package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The decoders that take network input, fuzzed through the server's own
// handler: the ECS and EFS APIs, the shared file system's operations, the
// agent endpoints, joining, and SigV4 verification. Nothing may panic,
// and nothing but a server fault may answer 5xx.

var fuzzPaths = []struct{ method, path, target string }{
	{"POST", "/", "RunTask"},
	{"POST", "/", "RegisterTaskDefinition"},
	{"POST", "/", "SubmitTaskStateChange"},
	{"POST", "/", "RegisterContainerInstance"},
	{"POST", "/berth/v1/agent/tasks", ""},
	{"POST", "/berth/v1/agent/heartbeat", ""},
	{"POST", "/berth/v1/agent/residency", ""},
	{"POST", "/berth/v1/agent/volume-event", ""},
	{"POST", "/berth/v1/agent/snapshot-done", ""},
	{"POST", "/berth/v1/agent/efs-mount", ""},
	{"POST", "/berth/v1/join", ""},
	{"POST", "/berth/v1/fs/op", ""},
	{"POST", "/2015-02-01/file-systems", ""},
	{"POST", "/2015-02-01/mount-targets", ""},
	{"POST", "/2015-02-01/access-points", ""},
	{"PUT", "/2015-02-01/file-systems/fs-0123456789abcdef0/policy", ""},
	{"POST", "/2015-02-01/resource-tags/fs-0123456789abcdef0", ""},
}

func fuzzServer(f *testing.F, auth bool) http.Handler {
	cfg := Config{DataDir: f.TempDir(), Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if auth {
		cfg.Credentials = map[string]string{"OPERATOR": "secret"}
		cfg.AgentCredentials = map[string]string{"AGENT": "secret"}
		cfg.RequireAuth = true
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	return s.bodyDeadline(s.handler())
}

func FuzzEndpoints(f *testing.F) {
	h := fuzzServer(f, false)
	seeds := []string{`{}`, `{"cluster":"default","containerInstance":"x"}`, `{"taskDefinition":"a:1","count":1}`,
		`{"op":"lookup","fs":"fs-0123456789abcdef0","parent":1,"name":"a"}`, `{"token":"0123abcd.0123456789abcdef0123456789abcdef"}`,
		`{"CreationToken":"t","Tags":[{"Key":"k","Value":"v"}]}`, `{"family":"f","containerDefinitions":[{"name":"a","image":"b","memory":6}]}`, `[`, "\x00"}
	for i := range fuzzPaths {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := fuzzPaths[int(which)%len(fuzzPaths)]
		req := httptest.NewRequest(p.method, p.path, bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:40000"
		if p.target != "" {
			req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+p.target)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code >= 500 && !strings.Contains(rec.Body.String(), "ServerException") && !strings.Contains(rec.Body.String(), "InternalServerError") {
			t.Fatalf("%s %s %q: HTTP %d %s", p.method, p.path, body, rec.Code, rec.Body)
		}
	})
}

func FuzzSigV4(f *testing.F) {
	h := fuzzServer(f, true)
	f.Add("AWS4-HMAC-SHA256 Credential=OPERATOR/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "20260101T000000Z", []byte(`{}`))
	f.Add("AWS4-HMAC-SHA256 Credential=AGENT/x/y/z/aws4_request,SignedHeaders=,Signature=", "", []byte(nil))
	f.Add("AWS4-HMAC-SHA256 Credential=BAGT00/a/b/c/aws4_request, SignedHeaders=host, Signature=1", "x", []byte("["))
	f.Fuzz(func(t *testing.T, authz, date string, body []byte) {
		if p, ok := parseAuthorization(authz); ok && (p.accessKey == "" || p.signature == "" || len(p.signedHeaders) == 0) {
			t.Fatalf("parsed an incomplete Authorization header: %+v", p)
		}
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Authorization", authz)
		req.Header.Set("X-Amz-Date", date)
		req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 200 {
			t.Fatalf("an unsigned request was accepted: %q", authz)
		}
	})
}
