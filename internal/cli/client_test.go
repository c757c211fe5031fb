package cli

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestServerSkipsOneThatIsDown: given several endpoints, a command talks
// to the first that takes a connection.
func TestServerSkipsOneThatIsDown(t *testing.T) {
	live := httptest.NewServer(http.NotFoundHandler())
	defer live.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	f := &userFlags{endpoint: down.URL + "," + live.URL}
	if got := f.server(); got != live.URL {
		t.Fatalf("chose %s, want the live %s", got, live.URL)
	}
	f = &userFlags{endpoint: live.URL + "," + down.URL}
	if got := f.server(); got != live.URL {
		t.Fatalf("chose %s, want the first, live %s", got, live.URL)
	}
}
