package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-project/berth/internal/blob"
	"github.com/berth-project/berth/internal/endpoint"
	"github.com/berth-project/berth/internal/spec"
)

// Client talks to the Berth server: the ECS API (awsJson1.1) and Berth's
// agent endpoints, signed with SigV4 when credentials are set.
type Client struct {
	// Endpoint is the server, or several ("URL1,URL2,…", any of which
	// answers any call): a request that cannot reach one goes to the next.
	Endpoint    string
	Region      string
	Credentials *aws.Credentials
	HTTP        *http.Client

	once    sync.Once
	servers *endpoint.List
}

// Server is the server requests go to now.
func (c *Client) Server() string { return c.list().Current() }

func (c *Client) list() *endpoint.List {
	c.once.Do(func() { c.servers = endpoint.Must(c.Endpoint) })
	return c.servers
}

// Call invokes an ECS operation.
func (c *Client) Call(ctx context.Context, op string, in, out any) error {
	return c.post(ctx, "/", map[string]string{"X-Amz-Target": "AmazonEC2ContainerServiceV20141113." + op,
		"Content-Type": "application/x-amz-json-1.1"}, in, out)
}

// Post invokes one of Berth's own JSON endpoints.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.post(ctx, path, map[string]string{"Content-Type": "application/json"}, in, out)
}

func (c *Client) post(ctx context.Context, path string, headers map[string]string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	code, b, err := c.do(ctx, http.MethodPost, path, headers, body)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) == nil && e.Type != "" {
			return &spec.Error{Code: e.Type, Message: e.Message}
		}
		return fmt.Errorf("%s: HTTP %d: %s", path, code, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// NextServer moves the client to the next of its servers (one that
// answered a call too slowly, or with an error, may be cut off from the
// rest of the control plane).
func (c *Client) NextServer() {
	servers := c.list()
	servers.Failed(servers.Current())
}

// do sends one request, SigV4-signed when the client has credentials, and
// returns the status and body.
func (c *Client) do(ctx context.Context, method, path string, headers map[string]string, body []byte) (int, []byte, error) {
	servers := c.list()
	for attempt := 1; ; attempt++ {
		base := servers.Current()
		code, b, err := c.doAt(ctx, base, method, path, headers, body)
		// 503: that server's etcd member is cut off from the others.
		if attempt < servers.Len() && (err != nil && endpoint.Unreachable(ctx, err) || err == nil && code == http.StatusServiceUnavailable) {
			servers.Failed(base) // the next server answers the same calls
			continue
		}
		return code, b, err
	}
}

func (c *Client) doAt(ctx context.Context, base, method, path string, headers map[string]string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if c.Credentials != nil {
		sum := sha256.Sum256(body)
		region := c.Region
		if region == "" {
			region = "us-east-1"
		}
		if err := v4.NewSigner().SignHTTP(ctx, *c.Credentials, req, hex.EncodeToString(sum[:]), "ecs", region, time.Now()); err != nil {
			return 0, nil, err
		}
	}
	hc := http.DefaultClient
	if c.HTTP != nil {
		hc = c.HTTP
	}
	// A redirect (to the blob store) is followed by the caller, with none
	// of this client's credentials.
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Blobs is the server's chunk store seen from an agent.
type Blobs struct{ C *Client }

func (b Blobs) do(ctx context.Context, method, key string, body []byte) (int, []byte, error) {
	return b.C.do(ctx, method, "/berth/v1/blobs/"+key, nil, body)
}

func (b Blobs) Has(ctx context.Context, key string) (bool, error) {
	code, _, err := b.do(ctx, http.MethodHead, key, nil)
	if err != nil {
		return false, err
	}
	switch code {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("blob %s: HTTP %d", key, code)
}

func (b Blobs) Get(ctx context.Context, key string) ([]byte, error) {
	code, data, err := b.do(ctx, http.MethodGet, key, nil)
	if err != nil {
		return nil, err
	}
	if code == http.StatusTemporaryRedirect {
		// The server signed a URL of the chunk in the blob store (the
		// response's body holds it): read it there. Its bytes are checked
		// against the key below.
		code, data, err = storeGet(ctx, string(data))
		if err != nil {
			return nil, fmt.Errorf("blob %s from the store: %w", key, err)
		}
	}
	if code == http.StatusNotFound {
		return nil, blob.ErrNotFound
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("blob %s: HTTP %d: %s", key, code, data)
	}
	if blob.Key(data) != key {
		return nil, fmt.Errorf("blob %s: content does not match its key", key)
	}
	return data, nil
}

func (b Blobs) Put(ctx context.Context, key string, data []byte) error {
	// Straight to the store where the server signs a URL for it (one that
	// takes only these bytes); through the server otherwise.
	code, url, err := b.C.do(ctx, http.MethodPut, "/berth/v1/blobs/"+key,
		map[string]string{"X-Berth-Put": "direct", "X-Berth-Size": strconv.Itoa(len(data))}, nil)
	if err != nil {
		return err
	}
	if code == http.StatusTemporaryRedirect {
		sum := sha256.Sum256(data)
		// A store that is briefly away (a reset connection, a 5xx) gets a
		// few more tries, as the server's own S3 client would give it.
		for attempt := 0; ; attempt++ {
			code, msg, err := storePut(ctx, string(url), data, base64.StdEncoding.EncodeToString(sum[:]))
			if err == nil && code == http.StatusOK {
				return nil
			}
			if err == nil && code < 500 {
				return fmt.Errorf("put blob %s in the store: HTTP %d: %s", key, code, msg)
			}
			if attempt == 5 || ctx.Err() != nil {
				if err != nil {
					return fmt.Errorf("put blob %s in the store: %w", key, err)
				}
				return fmt.Errorf("put blob %s in the store: HTTP %d: %s", key, code, msg)
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond << attempt):
			}
		}
	}
	if code != http.StatusExpectationFailed {
		return fmt.Errorf("put blob %s: HTTP %d: %s", key, code, url)
	}
	code, msg, err := b.do(ctx, http.MethodPut, key, data)
	if err != nil {
		return err
	}
	if code != http.StatusNoContent && code != http.StatusOK {
		return fmt.Errorf("put blob %s: HTTP %d: %s", key, code, msg)
	}
	return nil
}

func (b Blobs) Delete(ctx context.Context, key string) error {
	return fmt.Errorf("agents do not delete blobs")
}

// storeClient reads chunks from the blob store by signed URLs.
var storeClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// storePut writes a chunk by a signed URL, with the checksum the URL names.
func storePut(ctx context.Context, url string, data []byte, sum string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Amz-Checksum-Sha256", sum)
	resp, err := storeClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, msg, err
}

func storeGet(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := storeClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}
