package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"
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
	cmd.Flags().StringVar(&f.endpoint, "endpoint", ep, "Berth API endpoint (also $BERTH_ENDPOINT)")
	cmd.Flags().StringVar(&f.cluster, "cluster", "default", "cluster")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
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
	return ecs.New(ecs.Options{BaseEndpoint: aws.String(f.endpoint), Region: region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

func (f *userFlags) json() bool { return f.output == "json" }

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
