package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/endpoint"
)

// userFlags are shared by the user commands.
type userFlags struct {
	endpoint, cluster, output string
}

func (f *userFlags) register(cmd *cobra.Command) {
	ep := os.Getenv("BERTH_ENDPOINT")
	if ep == "" {
		ep = "http://127.0.0.1:7440"
	}
	cmd.Flags().StringVar(&f.endpoint, "endpoint", ep, "Berth API endpoint, or several as URL1,URL2,… (also $BERTH_ENDPOINT)")
	cmd.Flags().StringVar(&f.cluster, "cluster", "default", "cluster")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

// NewHTTPClient is the HTTP client for Berth's AWS SDK clients. The SDK
// closes a request's body as soon as the response's headers arrive, and
// the closed body's WriteTo returns io.EOF. net/http, still checking that
// the body holds nothing beyond its Content-Length, takes that for a
// failed write and drops the connection while the response is being read
// ("use of closed network connection"); a fast server makes this likely.
// Bodies go to net/http without WriteTo, so a read after close is a plain
// end of file.
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: plainBodies{http.DefaultTransport.(*http.Transport).Clone()}}
}

type plainBodies struct{ base http.RoundTripper }

func (t plainBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := req.Body.(io.WriterTo); ok {
		r := req.Clone(req.Context())
		r.Body = struct{ io.ReadCloser }{req.Body}
		req = r
	}
	return t.base.RoundTrip(req)
}

// client is an ECS client for the endpoint, signed with $AWS_ACCESS_KEY_ID
// and $AWS_SECRET_ACCESS_KEY when set (any key works on loopback).
func (f *userFlags) client() *ecs.Client {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		id, secret = "berth", "berth"
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	return ecs.New(ecs.Options{BaseEndpoint: aws.String(f.server()), Region: region, HTTPClient: NewHTTPClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

func (f *userFlags) json() bool { return f.output == "json" }

// server picks, of the endpoints given, the first that takes a
// connection: any server answers any call, and a command is short, so
// choosing a live one at its start is its failover. (The AWS SDK signs
// each request for one host, so a request cannot move once sent.)
func (f *userFlags) server() string {
	servers, err := endpoint.Parse(f.endpoint)
	if err != nil {
		return f.endpoint // the SDK reports the bad URL
	}
	for i := 0; i < servers.Len(); i++ {
		u := servers.Current()
		if p, err := url.Parse(u); err == nil {
			host := p.Host
			if p.Port() == "" {
				host = net.JoinHostPort(p.Hostname(), map[string]string{"http": "80", "https": "443"}[p.Scheme])
			}
			if c, err := net.DialTimeout("tcp", host, 2*time.Second); err == nil {
				c.Close()
				return u
			}
		}
		servers.Failed(u)
	}
	return servers.Current()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// friendly turns an API error into "Code: message".
func friendly(err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	if strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%w (is Berth running? start it with: berth up)", err)
	}
	return err
}

func shortID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }
