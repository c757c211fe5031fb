package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-project/berth/internal/agentauth"
	"github.com/berth-project/berth/internal/ecs"
	"github.com/berth-project/berth/internal/efs"
	"github.com/berth-project/berth/internal/spec"
)

// auth verifies AWS Signature Version 4 when the server requires it. The
// credential is checked before the body is read, so a request with no
// known key costs no body; the expected signature is then computed with
// the AWS SDK's own signer over the headers the client says it signed and
// compared in constant time.
func (s *Server) auth(next http.Handler) http.Handler {
	if !s.cfg.RequireAuth {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, secret, agentKey, e := s.credential(r)
		if e != nil {
			authError(w, r, e)
			return
		}
		body, e := spec.ReadBody(r.Body, maxBody)
		if e != nil {
			ecs.WriteError(w, e)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if e := verifySignature(r, body, p, secret); e != nil {
			authError(w, r, e)
			return
		}
		if agentKey {
			if !agentMayCall(r) {
				authError(w, r, &spec.Error{Code: "AccessDeniedException", Message: "An agent's access key cannot call this operation."})
				return
			}
			r = r.WithContext(agentauth.WithKey(r.Context(), p.accessKey))
		}
		next.ServeHTTP(w, r)
	})
}

// authError answers a request that failed authentication: 400 in the
// awsJson form for ECS and Berth's endpoints, 403 in EFS's form for the
// EFS API, as AWS answers each.
func authError(w http.ResponseWriter, r *http.Request, e *spec.Error) {
	if strings.HasPrefix(r.URL.Path, efs.PathPrefix) {
		efs.WriteAuthError(w, e.Code, e.Message)
		return
	}
	ecs.WriteError(w, e)
}

// maxBody bounds a request body (a snapshot manifest of a large volume is the biggest).
const maxBody = 64 << 20

type sigParts struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

func parseAuthorization(h string) (*sigParts, bool) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return nil, false
	}
	p := &sigParts{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, false
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return nil, false
			}
			p.accessKey, p.date, p.region, p.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			p.signedHeaders = strings.Split(v, ";")
		case "Signature":
			p.signature = v
		}
	}
	return p, p.accessKey != "" && p.signature != "" && len(p.signedHeaders) > 0
}

var (
	errMissingAuth = &spec.Error{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid: the request is not signed."}
	errUnknownKey  = &spec.Error{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	errBadSig      = &spec.Error{Code: "InvalidSignatureException", Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}
)

// agentMayCall says what an agent's key may do: the agent endpoints, the
// chunk store (snapshots), and the ECS calls an agent makes. EFS mounts go
// through tokens the agent endpoint hands out for its own tasks only.
func agentMayCall(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/berth/v1/agent/"), strings.HasPrefix(p, "/berth/v1/blobs/"), p == "/berth/v1/snapshots/describe":
		return true
	case p == "/":
		switch strings.TrimPrefix(r.Header.Get("X-Amz-Target"), ecs.TargetPrefix) {
		case "RegisterContainerInstance", "SubmitTaskStateChange", "SubmitContainerStateChange":
			return true
		}
	}
	return false
}

// credential checks a request's Authorization and X-Amz-Date headers and
// returns its key's secret and whether it is an agent's key; the body is
// not read yet.
func (s *Server) credential(r *http.Request) (*sigParts, string, bool, *spec.Error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, "", false, errMissingAuth
	}
	p, ok := parseAuthorization(h)
	if !ok {
		return nil, "", false, &spec.Error{Code: "IncompleteSignatureException", Message: "Authorization header is malformed."}
	}
	secret, operator := s.cfg.Credentials[p.accessKey]
	agent := false
	if !operator {
		secret, agent = s.cfg.AgentCredentials[p.accessKey]
	}
	if !operator && !agent {
		secret, agent = s.joinedSecret(r.Context(), p.accessKey)
	}
	if !operator && !agent {
		return nil, "", false, errUnknownKey
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || when.Format("20060102") != p.date {
		return nil, "", false, &spec.Error{Code: "IncompleteSignatureException", Message: "X-Amz-Date is missing or does not match the credential scope."}
	}
	if d := time.Since(when); d > 15*time.Minute || d < -15*time.Minute {
		return nil, "", false, &spec.Error{Code: "InvalidSignatureException", Message: "Signature expired: the request time is more than 15 minutes from the server time."}
	}
	return p, secret, agent, nil
}

// verifySignature checks the signature of a request whose credential
// passed, over its body.
func verifySignature(r *http.Request, body []byte, p *sigParts, secret string) *spec.Error {
	when, _ := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	// Rebuild the request with exactly the signed headers and sign it again.
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return errBadSig
	}
	req.Header = http.Header{}
	req.ContentLength = -1
	signedHost := false
	for _, name := range p.signedHeaders {
		switch name {
		case "host":
			signedHost = true
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			if vals, ok := r.Header[http.CanonicalHeaderKey(name)]; ok {
				req.Header[http.CanonicalHeaderKey(name)] = vals
			}
		}
	}
	if !signedHost {
		return &spec.Error{Code: "IncompleteSignatureException", Message: "The host header must be signed."}
	}
	if name := unsignedHeader(r.Header, p.signedHeaders); name != "" {
		return &spec.Error{Code: "IncompleteSignatureException", Message: "The " + name + " header must be signed."}
	}
	if req.ContentLength < 0 {
		req.ContentLength = 0
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: p.accessKey, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, req, hex.EncodeToString(sum[:]), p.service, p.region, when); err != nil {
		return errBadSig
	}
	want, ok := parseAuthorization(req.Header.Get("Authorization"))
	if !ok || subtle.ConstantTimeCompare([]byte(want.signature), []byte(p.signature)) != 1 {
		return errBadSig
	}
	return nil
}

// unsignedHeader names a header of the request that must be signed and is
// not: as AWS requires, every x-amz-* header (X-Amz-Target chooses the
// operation) and Content-Type. Otherwise a captured request could be
// replayed as another operation within the clock-skew window.
func unsignedHeader(h http.Header, signed []string) string {
	in := make(map[string]bool, len(signed))
	for _, s := range signed {
		in[s] = true
	}
	for name := range h {
		l := strings.ToLower(name)
		if (strings.HasPrefix(l, "x-amz-") || l == "content-type") && !in[l] {
			return name
		}
	}
	return ""
}
