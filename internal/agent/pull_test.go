package agent

import (
	"encoding/json"
	"strings"
	"testing"
)

// The engine's pull messages, layer by layer, sum to one figure.
func TestPullProgress(t *testing.T) {
	stream := `{"status":"Pulling from library/web","id":"1.0"}
{"status":"Pulling fs layer","progressDetail":{},"id":"a"}
{"status":"Pulling fs layer","progressDetail":{},"id":"b"}
{"status":"Downloading","progressDetail":{"current":1048576,"total":4194304},"id":"a"}
{"status":"Downloading","progressDetail":{"current":2097152,"total":8388608},"id":"b"}
{"status":"Download complete","progressDetail":{},"id":"a"}
{"status":"Extracting","progressDetail":{"current":4194304,"total":4194304},"id":"a"}`
	var p pullProgress
	if p.String() != "" {
		t.Fatal("progress before any size")
	}
	for _, line := range strings.Split(stream, "\n") {
		var m pullMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		p.add(m)
	}
	// a: 4 of 4 MiB (complete), b: 2 of 8 MiB.
	if got := p.String(); got != "50% (6 of 12 MiB)" {
		t.Fatalf("progress %q", got)
	}
}
