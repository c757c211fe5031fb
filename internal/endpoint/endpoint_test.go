package endpoint

import (
	"context"
	"net/http"
	"testing"
)

func TestListMovesOnAndParses(t *testing.T) {
	l, err := Parse(" http://a:1/, http://b:2 ,,http://c:3")
	if err != nil || l.Len() != 3 || l.Current() != "http://a:1" {
		t.Fatalf("%v %v", l, err)
	}
	l.Failed("http://a:1")
	l.Failed("http://a:1") // a second report of the same failure moves nothing
	if l.Current() != "http://b:2" {
		t.Fatalf("after a's failure: %s", l.Current())
	}
	l.Failed("http://b:2")
	l.Failed("http://c:3")
	if l.Current() != "http://a:1" {
		t.Fatalf("wraps around: %s", l.Current())
	}
	for _, bad := range []string{"", ",", "a:1", "ftp://x", "http://", "http://a:1,https://b:2"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUnreachable(t *testing.T) {
	_, err := http.Get("http://127.0.0.1:1/")
	if !Unreachable(context.Background(), err) {
		t.Fatalf("a refused connection: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Unreachable(ctx, err) {
		t.Fatal("a cancelled caller is not a server that is away")
	}
	if Unreachable(context.Background(), nil) {
		t.Fatal("no error")
	}
}
