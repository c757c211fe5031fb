package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/blob/s3/s3test"
)

// TestStartRefusesABlobStoreItCannotUse: a missing bucket, wrong
// credentials or a malformed --blob-store stop the server before it
// starts, with an error that names the bucket and endpoint or shows the
// accepted forms.
func TestStartRefusesABlobStoreItCannotUse(t *testing.T) {
	srv := s3test.Start(t, "snapshots")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	start := func(store string) error {
		s, err := Start(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", BlobStore: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil {
			s.Close()
		}
		return err
	}
	q := "?endpoint=" + srv.Endpoint + "&path-style=true"
	if err := start("s3://snapshots/berth" + q); err != nil {
		t.Fatalf("a good store: %v", err)
	}
	for store, want := range map[string][]string{
		"s3://nosuch/berth" + q:            {"s3://nosuch", srv.Endpoint, "does not exist"},
		"s3://snapshots?colour=red":        {"unknown parameter", "accepted: file:///PATH"},
		"ftp://x/y":                        {"unknown scheme", "accepted: file:///PATH"},
		"file://relative/path":             {"absolute path"},
		"s3://snapshots?endpoint=nonsense": {"not an http(s) URL"},
	} {
		err := start(store)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("--blob-store %s: %v, want it to say %q", store, err, w)
			}
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if err := start("s3://snapshots/berth" + q); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("wrong credentials: %v", err)
	}
}
