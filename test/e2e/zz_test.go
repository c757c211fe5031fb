package e2e

import (
	"os/exec"
	"testing"
)

func BenchmarkZZWrite(b *testing.B) {
	srv, _ := benchServer(b, "berth-bench-fs-")
	s := &fsServer{t: b, bin: buildBerth(b), endpoint: srv.Endpoint()}
	m := s.mountFS(s.createFS("bench"))
	defer m.kill()
	out, _ := exec.Command("fio", "--name=w", "--directory="+m.dir, "--rw=write", "--size=1G", "--bs=1M", "--ioengine=psync", "--end_fsync=1").Output()
	b.Logf("%s", out)
}
