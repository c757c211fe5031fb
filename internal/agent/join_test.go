package agent

import "testing"

func TestLoopbackURL(t *testing.T) {
	for u, want := range map[string]bool{"http://127.0.0.1:7440": true, "http://localhost:7440": true, "http://[::1]:7440/": true,
		"http://localhost.example.com:7440": false, "http://127.0.0.1.example.com": false, "http://10.0.0.1:7440": false, "::": false} {
		if got := loopbackURL(u); got != want {
			t.Errorf("loopbackURL(%q) = %v", u, got)
		}
	}
}
