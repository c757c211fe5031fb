package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/blob/blobtest"
	"github.com/berth-project/berth/internal/blob/s3/s3test"
)

func TestConformance(t *testing.T) {
	srv := s3test.Start(t, "conformance")
	var n atomic.Int64
	blobtest.Run(t, func(t *testing.T) blob.Objects {
		s, err := New(context.Background(), Options{Bucket: "conformance", Prefix: fmt.Sprintf("run-%d", n.Add(1)), Endpoint: srv.Endpoint,
			PathStyle: true, Credentials: s3test.Credentials()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestCheckNamesWhatIsWrong: a missing bucket, wrong credentials and an
// unreachable endpoint each give an error naming the bucket and endpoint.
func TestCheckNamesWhatIsWrong(t *testing.T) {
	srv := s3test.Start(t, "there")
	ctx := context.Background()
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Bucket: "missing", Endpoint: srv.Endpoint, PathStyle: true, Credentials: s3test.Credentials()}, "does not exist"},
		{Options{Bucket: "there", Endpoint: srv.Endpoint, PathStyle: true, Credentials: credentials.NewStaticCredentialsProvider("wrong", "wrong", "")}, "access denied"},
		{Options{Bucket: "there", Endpoint: "http://127.0.0.1:1", PathStyle: true, Credentials: s3test.Credentials()}, "127.0.0.1:1"},
	} {
		s, err := New(ctx, c.o)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 20*1e9)
		err = s.Check(cctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "s3://"+c.o.Bucket) {
			t.Errorf("bucket %s at %s: %v, want an error saying %q", c.o.Bucket, c.o.Endpoint, err, c.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	u, _ := url.Parse("s3://bkt/some/prefix/?endpoint=http://127.0.0.1:8333&region=eu-west-1&path-style=true")
	o, err := ParseURL(u)
	if err != nil || o.Bucket != "bkt" || o.Prefix != "some/prefix" || o.Endpoint != "http://127.0.0.1:8333" || o.Region != "eu-west-1" || !o.PathStyle {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range []string{"s3:///prefix", "s3://b?endpoint=ftp://x", "s3://b?path-style=maybe", "s3://b?colour=red"} {
		u, _ := url.Parse(bad)
		if _, err := ParseURL(u); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestPresignedURLs: a signed URL writes exactly the size it names and
// reads the object, with no other credentials, and stops working when it
// expires.
// TestPresignedPutChecksum: a URL signed for a body's SHA-256 writes that
// body and no other, and not without the checksum header.
func TestPresignedPutChecksum(t *testing.T) {
	srv := s3test.Start(t, "sums")
	ctx := context.Background()
	s, err := New(ctx, Options{Bucket: "sums", Endpoint: srv.Endpoint, PathStyle: true, Credentials: s3test.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("hello")
	sum := sha256.Sum256(body)
	url, err := s.PresignPutSHA256(ctx, "ab/key", int64(len(body)), sum[:], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte, withSum bool) int {
		req, _ := http.NewRequest("PUT", url, bytes.NewReader(b))
		if withSum {
			req.Header.Set(ChecksumHeader, base64.StdEncoding.EncodeToString(sum[:]))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put([]byte("hellp"), true); code == 200 {
		t.Fatal("other bytes of the same length were stored under the checksum")
	}
	if code := put(body, false); code == 200 {
		t.Fatal("a PUT without the signed checksum header was accepted")
	}
	if code := put(body, true); code != 200 {
		t.Fatalf("the matching body: HTTP %d", code)
	}
	if got, err := s.Get(ctx, "ab/key"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("stored %q, %v", got, err)
	}
}

func TestPresignedURLs(t *testing.T) {
	srv := s3test.Start(t, "urls")
	ctx := context.Background()
	s, err := New(ctx, Options{Bucket: "urls", Prefix: "p", Endpoint: srv.Endpoint, PathStyle: true, Credentials: s3test.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, url string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if body == nil {
			req.Body = nil
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	put, err := s.PresignPut(ctx, "a/obj", 5, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := do("PUT", put, []byte("toolong")); code == 200 {
		t.Fatal("a URL for 5 bytes wrote 7")
	}
	if code, b := do("PUT", put, []byte("hello")); code != 200 {
		t.Fatalf("presigned PUT: %d %s", code, b)
	}
	get, err := s.PresignGet(ctx, "a/obj", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, b := do("GET", get, nil); code != 200 || string(b) != "hello" {
		t.Fatalf("presigned GET: %d %q", code, b)
	}
	short, _ := s.PresignGet(ctx, "a/obj", time.Second)
	time.Sleep(2 * time.Second)
	if code, _ := do("GET", short, nil); code == 200 {
		t.Fatal("an expired URL still reads")
	}
}
