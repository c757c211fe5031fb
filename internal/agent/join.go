package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/berth-project/berth/internal/jointoken"
)

// Joining. An agent started with a join token pins the cluster's CA by
// the fingerprint in the token (fetched once, checked, kept as ca.pem),
// then trades the token for credentials of its own (kept as
// credentials.json, readable by root only). A restart uses what it kept
// and needs the token no more. Over https every request, and every mount
// the agent starts, verifies the server's certificate against that CA.

func (a *Agent) caPath() string    { return filepath.Join(a.cfg.DataDir, "ca.pem") }
func (a *Agent) credsPath() string { return filepath.Join(a.cfg.DataDir, "credentials.json") }

// join sets up the agent's TLS trust and credentials before it registers.
func (a *Agent) join(ctx context.Context) error {
	https := strings.HasPrefix(a.cfg.Server, "https://")
	var tok jointoken.Token
	if a.cfg.Token != "" {
		var err error
		if tok, err = jointoken.Parse(a.cfg.Token); err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		if a.api.Credentials != nil {
			return errors.New("give the agent a join token or an access key, not both")
		}
	}
	if https {
		ca, err := os.ReadFile(a.caPath())
		if errors.Is(err, os.ErrNotExist) {
			if a.cfg.Token == "" {
				return fmt.Errorf("%s is https: the agent needs a join token (--token) to trust its CA", a.cfg.Server)
			}
			if ca, err = jointoken.FetchCA(ctx, a.api.Server(), tok.CAFingerprint); err != nil {
				return err
			}
			if err := writePrivate(a.caPath(), ca); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if err := a.trust(ca); err != nil {
			return err
		}
	} else if a.cfg.Token != "" && !loopbackURL(a.cfg.Server) {
		return fmt.Errorf("join %s over https: a join token must not cross the network in the clear", a.cfg.Server)
	}
	if a.api.Credentials != nil {
		return nil
	}
	var creds struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
	}
	b, err := os.ReadFile(a.credsPath())
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &creds); err != nil {
			return fmt.Errorf("%s: %w", a.credsPath(), err)
		}
	case errors.Is(err, os.ErrNotExist) && a.cfg.Token != "":
		if err := a.api.Post(ctx, "/berth/v1/join", map[string]string{"token": tok.Credential()}, &creds); err != nil {
			return fmt.Errorf("join the cluster at %s: %w", a.cfg.Server, err)
		}
		b, _ := json.Marshal(creds)
		if err := writePrivate(a.credsPath(), b); err != nil {
			return err
		}
		a.log.Info("joined the cluster", "server", a.cfg.Server, "accessKey", creds.AccessKeyID)
	case errors.Is(err, os.ErrNotExist):
		return nil // unauthenticated (a loopback server without keys)
	default:
		return err
	}
	a.api.Credentials = &aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}
	return nil
}

// trust makes the agent's requests verify the server against ca.
func (a *Agent) trust(ca []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", a.caPath())
	}
	t, ok := a.api.HTTP.Transport.(*http.Transport)
	if !ok {
		return errors.New("the agent's HTTP client has no transport to set TLS on")
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return nil
}

func writePrivate(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func loopbackURL(raw string) bool {
	for _, one := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil {
			return false
		}
		if u.Hostname() == "localhost" {
			continue
		}
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}
