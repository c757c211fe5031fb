// Package s3test starts a real S3-compatible server for tests: versitygw
// over a temporary directory, built once by scripts/test and cached
// outside the checkout. A test that needs it fails, never skips, when it
// is missing.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Access key and secret of the test server's root user.
const (
	AccessKey = "berthtest"
	SecretKey = "berthtestsecret"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string
	Dir      string
	log      string
	cmd      *exec.Cmd
	port     string
}

// Binary is where scripts/test installs versitygw ($BERTH_VERSITYGW overrides).
func Binary() string {
	if b := os.Getenv("BERTH_VERSITYGW"); b != "" {
		return b
	}
	return "/var/cache/berth-test/bin/versitygw"
}

// Credentials are the root user's.
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")
}

// Start runs a server with the given buckets; it stops with the test.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary()); err != nil {
		t.Fatalf("versitygw is missing at %s (scripts/test builds it: GOBIN=/var/cache/berth-test/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0): %v", Binary(), err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	s := &Server{Endpoint: "http://127.0.0.1:" + port, Dir: t.TempDir(), port: port}
	s.log = filepath.Join(t.TempDir(), "versitygw.log")
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(s.Dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.Restart(t)
	t.Cleanup(func() { s.Kill() })
	return s
}

// Restart starts the server (again) on its port and directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(Binary(), "--port", "127.0.0.1:"+s.port, "--access", AccessKey, "--secret", SecretKey, "posix", s.Dir)
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	cli := s.Client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.Kill()
			t.Fatalf("versitygw did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Client is an S3 client of the server's root user.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true, Credentials: Credentials()})
}
