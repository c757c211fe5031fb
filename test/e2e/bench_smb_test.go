package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/fsx"
	fsxtypes "github.com/aws/aws-sdk-go-v2/service/fsx/types"

	"github.com/berth-project/berth/internal/agent"
)

// BenchmarkSMBSequential: 1 GiB written and read sequentially over SMB
// (smbclient against the agent's Samba endpoint, which writes through its
// Berth mount), and the same through a Berth mount of the same file
// system, in one run. Page caches are dropped before each read.
func BenchmarkSMBSequential(b *testing.B) {
	ensureTestImage(b)
	dir, err := os.MkdirTemp("/var/tmp", "berth-bench-smb-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	s := start(b)
	bin := buildBerth(b)
	ag, err := agent.New(agent.Config{Server: s.Endpoint(), DataDir: filepath.Join(dir, "agent"), Zone: "us-east-1a", CPU: 4096, Memory: 4096,
		CleanupWait: time.Hour, Log: testLogger(), MountBinary: bin})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go ag.Run(ctx)
	<-ag.Ready()
	b.Cleanup(func() {
		cancel()
		time.Sleep(200 * time.Millisecond)
		stopSMB(filepath.Join(dir, "agent"), ag.ContainerInstanceArn())
		unmountAll(filepath.Join(dir, "agent"))
	})
	created, err := fsxClient(s.Endpoint()).CreateFileSystem(ctx, &fsx.CreateFileSystemInput{FileSystemType: fsxtypes.FileSystemTypeWindows, StorageCapacity: aws.Int32(2048),
		SubnetIds: []string{"subnet-us-east-1a"}, WindowsConfiguration: &fsxtypes.CreateFileSystemWindowsConfiguration{ThroughputCapacity: aws.Int32(512),
			SelfManagedActiveDirectoryConfiguration: selfManagedAD("Admin", "bench-pw")}})
	if err != nil {
		b.Fatal(err)
	}
	id := aws.ToString(created.FileSystem.FileSystemId)
	addr := endpointAddr(b, &cluster{env: &env{srv: s, ctx: ctx}}, id, "us-east-1a")
	m := (&fsServer{t: b, bin: bin, endpoint: s.Endpoint(), srv: s}).mountFS(id)

	const size = 1 << 30
	src := filepath.Join(dir, "src.bin")
	if out, err := exec.Command("dd", "if=/dev/urandom", "of="+src, "bs=4M", fmt.Sprint("count=", size>>22)).CombinedOutput(); err != nil {
		b.Fatalf("dd: %v %s", err, out)
	}
	dropCaches := func() { os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200) }
	timed := func(what string, f func() error) float64 {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		return float64(size>>20) / time.Since(start).Seconds()
	}
	smb := func(cmd string) error {
		out, err := exec.Command("smbclient", "//"+addr+"/share", "-U", "Admin%bench-pw", "-m", "SMB3", "-c", cmd).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	var smbW, smbR, mW, mR float64
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("smb-%d.bin", i)
		smbW += timed("SMB write", func() error { return smb("put " + src + " " + name) })
		dropCaches()
		smbR += timed("SMB read", func() error { return smb("get " + name + " /dev/null") })
		mname := m.path(fmt.Sprintf("mount-%d.bin", i))
		mW += timed("mount write", func() error {
			out, err := exec.Command("dd", "if="+src, "of="+mname, "bs=1M", "conv=fsync").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		dropCaches()
		mR += timed("mount read", func() error {
			out, err := exec.Command("dd", "if="+mname, "of=/dev/null", "bs=1M").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	}
	n := float64(b.N)
	b.ReportMetric(smbW/n, "smb-write-MB/s")
	b.ReportMetric(smbR/n, "smb-read-MB/s")
	b.ReportMetric(mW/n, "mount-write-MB/s")
	b.ReportMetric(mR/n, "mount-read-MB/s")
}
