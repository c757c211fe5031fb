package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A lone member whose remembered port was taken, between the check and
// the bind, chooses other ports and starts.
func TestLoneMemberChoosesAgainWhenItsPortIsTaken(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	// The remembered peer port is taken by the time etcd binds it: free
	// is made to miss that, as a race with another process would.
	b, _ := json.Marshal(struct{ Client, Peer int }{freePort(), taken})
	os.WriteFile(filepath.Join(dir, "etcd-ports.json"), b, 0o600)
	saved := free
	free = func(int) bool { return true }
	defer func() { free = saved }()
	e, _, err := startEmbedded(dir, EtcdMember{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start with a taken port: %v", err)
	}
	e.Close()
}
