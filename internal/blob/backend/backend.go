// Package backend opens a blob store by URL: file:///PATH (or a plain
// absolute path) for a local directory, s3://BUCKET/PREFIX?endpoint=…&
// region=…&path-style=true for an S3-compatible store.
package backend

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/blob/file"
	"github.com/berth-project/berth/internal/blob/s3"
)

// Forms lists the accepted URLs, for error messages.
const Forms = "file:///PATH, or s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=REGION&path-style=true (endpoint, region and path-style optional)"

// Open returns the store a URL names. An S3 store is checked (the bucket
// reached with the credentials of the SDK's standard chain) before Open
// returns, so a server never starts half-way on a store it cannot use.
func Open(ctx context.Context, raw string) (blob.Objects, error) {
	if strings.HasPrefix(raw, "/") {
		return file.New(filepath.Clean(raw)), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("blob store %q: %w; accepted: %s", raw, err, Forms)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("blob store %q: a file URL names an absolute path (file:///var/lib/berth/blobs); accepted: %s", raw, Forms)
		}
		return file.New(filepath.Clean(u.Path)), nil
	case "s3":
		o, err := s3.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("blob store: %w; accepted: %s", err, Forms)
		}
		st, err := s3.New(ctx, o)
		if err != nil {
			return nil, err
		}
		if err := st.Check(ctx); err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("blob store %q: unknown scheme; accepted: %s", raw, Forms)
}
