package s3

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// BenchmarkPresign is the server's cost per chunk URL it signs.
func BenchmarkPresign(b *testing.B) {
	s, err := New(context.Background(), Options{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := s.PresignGet(context.Background(), "fs-chunks/fs-01234567/0123456789abcdef0123456789abcdef", time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
