// Package s3 is the blob backend on an S3-compatible object store
// (s3://BUCKET/PREFIX): AWS S3, SeaweedFS, Ceph RGW, MinIO, versitygw. The
// store replicates; Berth adds no replication of its own. Large objects
// go up in parts, every call retries with backoff (the SDK's standard
// retryer), and credentials come from the SDK's standard chain.
package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/berth-project/berth/internal/blob"
)

// Store is a blob.Objects in one bucket, below a prefix.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string
	// For presigned URLs.
	base      *url.URL
	pathStyle bool
	region    string
	creds     aws.CredentialsProvider
	signer    *v4.Signer
}

// Options choose the bucket and how to reach it.
type Options struct {
	Bucket, Prefix string
	Endpoint       string // empty: AWS's own
	Region         string
	PathStyle      bool
	// Credentials, when set, replace the SDK's standard chain.
	Credentials aws.CredentialsProvider
}

// partSize is the size of a multipart upload's parts; smaller objects go
// up in one PUT.
const partSize = 16 << 20

// ParseURL reads s3://BUCKET/PREFIX?endpoint=URL&region=R&path-style=true.
func ParseURL(u *url.URL) (Options, error) {
	o := Options{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Region: "us-east-1"}
	if o.Bucket == "" {
		return o, fmt.Errorf("%s: no bucket", u.Redacted())
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "path-style":
		default:
			return o, fmt.Errorf("%s: unknown parameter %q (known: endpoint, region, path-style)", u.Redacted(), k)
		}
	}
	if e := q.Get("endpoint"); e != "" {
		eu, err := url.Parse(e)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return o, fmt.Errorf("%s: endpoint %q is not an http(s) URL", u.Redacted(), e)
		}
		o.Endpoint = e
	}
	if r := q.Get("region"); r != "" {
		o.Region = r
	}
	if p := q.Get("path-style"); p != "" {
		b, err := strconv.ParseBool(p)
		if err != nil {
			return o, fmt.Errorf("%s: path-style must be true or false", u.Redacted())
		}
		o.PathStyle = b
	}
	return o, nil
}

// New prepares a store; it does no I/O (Check does).
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(o.Region),
		config.WithRetryer(func() aws.Retryer { return retry.NewStandard(func(r *retry.StandardOptions) { r.MaxAttempts = 8 }) })}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3://%s: AWS configuration: %w", o.Bucket, err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Checksums only where the API requires them: not every
		// S3-compatible store knows the newer ones. Chunks carry their
		// own (their key is their SHA-256).
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	prefix := strings.Trim(o.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	base := "https://s3." + o.Region + ".amazonaws.com"
	if o.Endpoint != "" {
		base = o.Endpoint
	}
	bu, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("s3://%s: endpoint %q: %w", o.Bucket, base, err)
	}
	return &Store{client: client, bucket: o.Bucket, prefix: prefix, endpoint: o.Endpoint,
		base: bu, pathStyle: o.PathStyle, region: o.Region, creds: aws.NewCredentialsCache(cfg.Credentials), signer: v4.NewSigner()}, nil
}

func (s *Store) String() string {
	u := "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
	if s.endpoint != "" {
		u += " at " + s.endpoint
	}
	return u
}

// Check reaches the bucket: a missing bucket, refused credentials or an
// unreachable endpoint is an error that names the bucket and endpoint.
func (s *Store) Check(ctx context.Context) error {
	// A listing, not HeadBucket: its errors have a body that says why.
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix), MaxKeys: aws.Int32(1)})
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("blob store %s: the bucket does not exist", s)
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound", "InvalidToken", "ExpiredToken":
			return fmt.Errorf("blob store %s: access denied (check the credentials): %s", s, ae.ErrorCode())
		}
	}
	return fmt.Errorf("blob store %s: %w", s, err)
}

func (s *Store) key(name string) (string, error) {
	if !blob.ValidName(name) {
		return "", fmt.Errorf("invalid object name %q", name)
	}
	return s.prefix + name, nil
}

func missing(err error) bool {
	var nk *types.NoSuchKey
	var nf *types.NotFound
	var ae smithy.APIError
	return errors.As(err, &nk) || errors.As(err, &nf) || (errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound"))
}

// fail maps a backend error: a missing object is blob.ErrNotFound, and a
// call ended by its context returns the context's error.
func fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if missing(err) {
		return blob.ErrNotFound
	}
	return err
}

func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(data) > partSize {
		err = s.putMultipart(ctx, key, data)
	} else {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	}
	if err != nil {
		return fmt.Errorf("put %s in %s: %w", name, s, fail(ctx, err))
	}
	return nil
}

// putMultipart uploads data over partSize as a multipart upload, four
// parts at a time; a failed upload is aborted, so no parts are left behind.
func (s *Store) putMultipart(ctx context.Context, key string, data []byte) error {
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	n := (len(data) + partSize - 1) / partSize
	parts := make([]types.CompletedPart, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem }()
			part := data[i*partSize : min((i+1)*partSize, len(data))]
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
				UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(part),
				ContentLength: aws.Int64(int64(len(part)))})
			if err == nil {
				parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			}
			errs <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
			UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
			UploadId: up.UploadId}); aerr != nil {
			return fmt.Errorf("%w (and aborting the upload: %v)", err, aerr)
		}
	}
	return err
}

func (s *Store) get(ctx context.Context, name, rng string) ([]byte, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if e := fail(ctx, err); errors.Is(e, blob.ErrNotFound) || e == ctx.Err() {
			return nil, e
		}
		return nil, fmt.Errorf("get %s from %s: %w", name, s, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s from %s: %w", name, s, fail(ctx, err))
	}
	if out.ContentLength != nil && int64(len(b)) != *out.ContentLength {
		return nil, fmt.Errorf("get %s from %s: %d of %d bytes", name, s, len(b), *out.ContentLength)
	}
	return b, nil
}

func (s *Store) Get(ctx context.Context, name string) ([]byte, error) { return s.get(ctx, name, "") }

func (s *Store) GetRange(ctx context.Context, name string, off, length int64) ([]byte, error) {
	if off < 0 || length < 0 {
		return nil, fmt.Errorf("invalid range %d+%d", off, length)
	}
	if length == 0 {
		if _, err := s.Stat(ctx, name); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	b, err := s.get(ctx, name, fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return []byte{}, nil // from past the end
	}
	return b, err
}

func (s *Store) Stat(ctx context.Context, name string) (blob.Info, error) {
	key, err := s.key(name)
	if err != nil {
		return blob.Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if e := fail(ctx, err); errors.Is(e, blob.ErrNotFound) || e == ctx.Err() {
			return blob.Info{}, e
		}
		return blob.Info{}, fmt.Errorf("stat %s in %s: %w", name, s, err)
	}
	return blob.Info{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Touch copies the object onto itself with new metadata, which gives it a
// new modification time on AWS S3. A store that keeps the time through
// such a copy gets the object put again.
func (s *Store) Touch(ctx context.Context, name string) (bool, error) {
	before, err := s.Stat(ctx, name)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	ok, err := s.copyOnto(ctx, name)
	if !ok || err != nil {
		return ok, err
	}
	after, err := s.Stat(ctx, name)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if after.ModTime.After(before.ModTime) || time.Since(after.ModTime) < time.Second {
		return true, nil
	}
	data, err := s.Get(ctx, name)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, s.Put(ctx, name, data)
}

func (s *Store) copyOnto(ctx context.Context, name string) (bool, error) {
	key, err := s.key(name)
	if err != nil {
		return false, err
	}
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
		CopySource:        aws.String(s.bucket + "/" + url.PathEscape(key)),
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          map[string]string{"berth-touched": time.Now().UTC().Format(time.RFC3339Nano)}})
	if err != nil {
		if e := fail(ctx, err); errors.Is(e, blob.ErrNotFound) {
			return false, nil
		} else if e == ctx.Err() {
			return false, e
		}
		return false, fmt.Errorf("touch %s in %s: %w", name, s, err)
	}
	return true, nil
}

func (s *Store) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil {
		if e := fail(ctx, err); errors.Is(e, blob.ErrNotFound) {
			return nil
		} else if e == ctx.Err() {
			return e
		}
		return fmt.Errorf("delete %s in %s: %w", name, s, err)
	}
	return nil
}

// DeleteMany deletes objects a thousand at a time (DeleteObjects).
func (s *Store) DeleteMany(ctx context.Context, names []string) error {
	for len(names) > 0 {
		n := min(len(names), 1000)
		objs := make([]types.ObjectIdentifier, 0, n)
		for _, name := range names[:n] {
			key, err := s.key(name)
			if err != nil {
				return err
			}
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(key)})
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			if e := fail(ctx, err); e == ctx.Err() {
				return e
			}
			return fmt.Errorf("delete %d objects in %s: %w", n, s, err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				return fmt.Errorf("delete %s in %s: %s: %s", aws.ToString(e.Key), s, aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
		names = names[n:]
	}
	return nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("list %s in %s: %w", prefix, s, err)
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if err := fn(blob.Info{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// PresignGet is a URL that reads an object for ttl, without other
// credentials: mounts fetch chunks from the store itself.
func (s *Store) PresignGet(ctx context.Context, name string, ttl time.Duration) (string, error) {
	return s.presign(ctx, http.MethodGet, name, -1, ttl)
}

// PresignPut is a URL that writes exactly size bytes as an object, for ttl.
func (s *Store) PresignPut(ctx context.Context, name string, size int64, ttl time.Duration) (string, error) {
	return s.presign(ctx, http.MethodPut, name, size, ttl)
}

// PresignPutSHA256 is a URL that writes exactly size bytes whose SHA-256
// is sum, for ttl: the checksum is a signed header the client must send
// (ChecksumHeader), and the store refuses a body that does not match it.
// Content-addressed chunks are written this way by clients that hold no
// credentials: they can store only the bytes the key names.
func (s *Store) PresignPutSHA256(ctx context.Context, name string, size int64, sum []byte, ttl time.Duration) (string, error) {
	return s.presignHeaders(ctx, http.MethodPut, name, size, ttl, map[string]string{ChecksumHeader: base64.StdEncoding.EncodeToString(sum)})
}

// ChecksumHeader carries a PUT's SHA-256 (base64) to the store.
const ChecksumHeader = "X-Amz-Checksum-Sha256"

// presign signs a URL with SigV4's query form, straight with the SDK's
// signer: the S3 client's presigner runs its whole middleware stack for
// each URL, which cost the server most of its CPU per chunk.
func (s *Store) presign(ctx context.Context, method, name string, size int64, ttl time.Duration) (string, error) {
	return s.presignHeaders(ctx, method, name, size, ttl, nil)
}

func (s *Store) presignHeaders(ctx context.Context, method, name string, size int64, ttl time.Duration, headers map[string]string) (string, error) {
	key, err := s.key(name)
	if err != nil {
		return "", err
	}
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("credentials for %s: %w", s, err)
	}
	u := *s.base
	if s.pathStyle {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + s.bucket + "/" + key
	} else {
		u.Host = s.bucket + "." + u.Host
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + key
	}
	q := url.Values{"X-Amz-Expires": {strconv.Itoa(int(ttl / time.Second))}}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return "", err
	}
	if size >= 0 {
		req.ContentLength = size
		req.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	signed, _, err := s.signer.PresignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "s3", s.region, time.Now())
	return signed, err
}
