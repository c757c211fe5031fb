// Package archtest checks the package graph: the rules ARCHITECTURE.md
// states about who may import what.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/berth-project/berth/"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestClientsLinkNoServer: agents and mounts reach the cluster only
// through a server's HTTP API, so neither links etcd, gRPC or a server
// package.
func TestClientsLinkNoServer(t *testing.T) {
	forbidden := []string{"go.etcd.io/", "google.golang.org/grpc",
		mod + "internal/state", mod + "internal/ecs", mod + "internal/fsmeta", mod + "internal/server",
		mod + "internal/placement", mod + "internal/controller", mod + "internal/efs", mod + "internal/agentsrv",
		mod + "internal/agentauth"}
	for _, pkg := range []string{"internal/agent", "internal/fsmount", "internal/agentapi", "internal/fsproto"} {
		n := 0
		for _, d := range deps(t, pkg) {
			n++
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s links %s", pkg, d)
				}
			}
			if d == mod+"internal/volume" { // the server side; volume/block is the agent's
				t.Errorf("%s links %s", pkg, d)
			}
		}
		if n < 5 {
			t.Fatalf("%s: only %d dependencies listed; go list is not seeing the module", pkg, n)
		}
	}
}

// TestPureLogicIsPure: the scheduler and the service reconciler are pure
// functions of their inputs: no etcd, no network, no Docker.
func TestPureLogicIsPure(t *testing.T) {
	forbidden := []string{"go.etcd.io/", "google.golang.org/grpc", "net/http", "github.com/docker/", mod + "internal/state"}
	for _, pkg := range []string{"internal/scheduler", "internal/service", "internal/cql"} {
		for _, d := range deps(t, pkg) {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s links %s", pkg, d)
				}
			}
		}
	}
}
