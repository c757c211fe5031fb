package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/berth-project/berth/internal/spec"
)

// Client talks to the Berth server: the ECS API (awsJson1.1) and Berth's
// agent endpoints, signed with SigV4 when credentials are set.
type Client struct {
	Endpoint    string
	Region      string
	Credentials *aws.Credentials
	HTTP        *http.Client
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
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
			return err
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) == nil && e.Type != "" {
			return &spec.Error{Code: e.Type, Message: e.Message}
		}
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
