package e2e

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agentapi"
	bs3 "github.com/berth-project/berth/internal/blob/s3"
	"github.com/berth-project/berth/internal/blob/s3/s3test"
	"github.com/berth-project/berth/internal/server"
)

// TestSnapshotsOnS3: with the blob store on a real S3-compatible server
// (versitygw), snapshots are incremental objects in the bucket, nothing
// lands in the server's data dir, and a snapshot during which the S3
// server is killed with SIGKILL either completes with every chunk in the
// store or fails; either way a later snapshot restores in another zone
// with the data's checksum.
func TestSnapshotsOnS3(t *testing.T) {
	s3srv, store := s3Store(t, "cluster-1")
	var dataDir string
	c := newCluster(t, func(cfg *server.Config) { cfg.Blobs = store; dataDir = cfg.DataDir })
	a := c.addAgent("local-a", "")
	c.addAgent("local-b", "")
	writer := ebsDefinition(c, "s3-w", `head -c 134217728 /dev/urandom > /data/big && sync && touch /data/ready && sleep 3600`)
	out, err := c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(writer), VolumeConfigurations: managed(1, true),
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == local-a")}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	task := out.Tasks[0]
	vol := volumeIDOf(task)
	c.wait(task.TaskArn, "RUNNING")
	mount := fmt.Sprintf("%s/mounts/%s", c.agentDir(a), vol)
	for deadline := time.Now().Add(90 * time.Second); !fileExists(filepath.Join(mount, "ready")); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer never finished")
		}
	}
	putsBefore := metricSum(t, c.srv.Endpoint(), "berth_blob_requests_total", `method="PUT",path="proxied"`)
	first := c.snapshot(vol)
	if p := metricSum(t, c.srv.Endpoint(), "berth_blob_requests_total", `method="PUT",path="proxied"`) - putsBefore; p != 0 {
		t.Fatalf("%d snapshot chunks passed through the server", p)
	}
	if r := metricSum(t, c.srv.Endpoint(), "berth_blob_requests_total", `method="PUT",path="redirected"`); r < 1024 {
		t.Fatalf("only %d snapshot chunks went to the store by a signed URL", r)
	}
	objects := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(s3srv.Dir, "berth", "cluster-1"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	if n := objects(); n < 1024 {
		t.Fatalf("%d objects in the bucket after a 128 MiB snapshot", n)
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "blobs")); len(entries) != 0 {
		t.Fatalf("snapshot chunks in the server's data dir: %d entries", len(entries))
	}

	// Change 32 MiB, snapshot, and kill the S3 server under it.
	if out, err := exec_("dd", "if=/dev/urandom", "of="+filepath.Join(mount, "big"), "bs=1M", "count=32", "seek=40", "conv=notrunc"); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	exec_("sync")
	want := md5File(t, filepath.Join(mount, "big"))
	var resp agentapi.SnapshotsResponse
	if err := c.post("/berth/v1/snapshots/create", &agentapi.SnapshotsRequest{VolumeID: vol}, &resp); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	s3srv.Kill()
	time.Sleep(3 * time.Second)
	s3srv.Restart(t)
	sn := waitSnapshot(t, c, resp.Snapshots[0].SnapshotID)
	t.Logf("first snapshot %d MiB; the one the S3 server died under: %s (%s), %.1f MiB", first.UploadedBytes>>20, sn.State, sn.StateReason, float64(sn.UploadedBytes)/(1<<20))
	if sn.State != "completed" {
		sn = c.snapshot(vol)
	}
	if sn.UploadedBytes > 40<<20 {
		t.Fatalf("the snapshot after a 32 MiB change sent %d MiB", sn.UploadedBytes>>20)
	}
	reader := ebsDefinition(c, "s3-r", `test "$(md5sum /data/big | cut -c1-32)" = "`+want+`"`)
	cfg := managed(1, false)
	cfg[0].ManagedEBSVolume.SnapshotId = aws.String(sn.SnapshotID)
	out, err = c.ecs.RunTask(c.ctx, &ecs.RunTaskInput{TaskDefinition: aws.String(reader), VolumeConfigurations: cfg,
		PlacementConstraints: []types.PlacementConstraint{{Type: types.PlacementConstraintTypeMemberOf, Expression: aws.String("attribute:ecs.availability-zone == local-b")}}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatal(err, out)
	}
	done := c.wait(out.Tasks[0].TaskArn, "STOPPED")
	if exitCode(done, "app") != 0 {
		t.Fatalf("data restored from S3 differs: %s %s", aws.ToString(done.StoppedReason), describeContainers(done))
	}
	c.stop(task.TaskArn)
}

// waitSnapshot waits until a snapshot is completed or failed.
func waitSnapshot(t *testing.T, c *cluster, id string) agentapi.Snapshot {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var out agentapi.SnapshotsResponse
		if err := c.post("/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{SnapshotIDs: []string{id}}, &out); err != nil && !strings.Contains(err.Error(), "connection") {
			t.Fatal(err)
		}
		if len(out.Snapshots) == 1 && out.Snapshots[0].State != "pending" {
			return out.Snapshots[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("the snapshot neither completed nor failed")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFSOnS3SurvivesTheStoreDying: a shared file system whose data is on
// S3. Files written on one mount read back whole on another; the S3
// server is killed with SIGKILL in the middle of a stream of
// create-write-fsync-close-rename and restarted; no fsync succeeds for
// data the store lacks: every acknowledged file is whole on a fresh mount
// afterwards, fsck is clean, and the data is in the bucket, not on the
// server's disk.
func TestFSOnS3SurvivesTheStoreDying(t *testing.T) {
	s3srv, store := s3Store(t, "c1")
	var dataDir string
	s := startFSServer(t, func(c *server.Config) { c.Blobs = store; dataDir = c.DataDir })
	id := s.createFS("ons3")
	a, b := s.mountFS(id), s.mountFS(id)
	proxiedBefore := chunkRequests(t, s.endpoint, "proxied")
	big := make([]byte, 9<<20+123)
	crand.Read(big)
	if err := os.WriteFile(a.path("big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(b.path("big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the other mount read %d bytes, %v", len(got), err)
	}

	stopWriter := startWriter(t, a.dir)
	time.Sleep(1500 * time.Millisecond)
	s3srv.Kill()
	time.Sleep(3 * time.Second)
	s3srv.Restart(t)
	time.Sleep(1500 * time.Millisecond)
	acked := stopWriter()
	if len(acked) < 10 {
		t.Fatalf("only %d files were acknowledged", len(acked))
	}
	fresh := s.mountFS(id)
	for _, i := range acked {
		name, data := writerFile(i)
		if got, err := os.ReadFile(fresh.path(name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("acknowledged file %s: %d bytes, %v", name, len(got), err)
		}
	}
	if rep := s.fsck(id, false); len(rep.Problems) != 0 || rep.Chunks == 0 {
		t.Fatalf("fsck: %+v", rep)
	}
	n := 0
	filepath.WalkDir(filepath.Join(s3srv.Dir, "berth", "c1", "fs", id), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n < len(acked) {
		t.Fatalf("%d chunk objects in the bucket for %d files", n, len(acked))
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "fs-chunks")); len(entries) != 0 {
		t.Fatalf("file data on the server's disk: %v", entries)
	}
	if p := chunkRequests(t, s.endpoint, "proxied"); p != proxiedBefore {
		t.Fatalf("%d chunk requests passed their bytes through the server", p-proxiedBefore)
	}
	if r := chunkRequests(t, s.endpoint, "redirected"); r < len(acked) {
		t.Fatalf("only %d chunk requests were redirected to the store", r)
	}
	t.Logf("%d acknowledged files intact across the S3 server's kill -9; %d chunk objects", len(acked), n)
}

// TestFSOnS3SignsURLsInBatches: a mount writing whole blocks and one
// reading them move the bytes with URLs the server signed in batches (put
// URLs in advance, get URLs with the block lists): no request per chunk
// reaches the server, and the data is intact.
func TestFSOnS3SignsURLsInBatches(t *testing.T) {
	_, store := s3Store(t, "batch")
	s := startFSServer(t, func(c *server.Config) { c.Blobs = store })
	id := s.createFS("batch")
	w, r := s.mountFS(id), s.mountFS(id)
	proxied, redirected, signed := chunkRequests(t, s.endpoint, "proxied"), chunkRequests(t, s.endpoint, "redirected"), chunkRequests(t, s.endpoint, "signed")
	data := make([]byte, 16<<22) // 16 whole blocks
	crand.Read(data)
	if err := os.WriteFile(w.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(r.path("f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the other mount read %d bytes, %v", len(got), err)
	}
	if p := chunkRequests(t, s.endpoint, "proxied") - proxied; p != 0 {
		t.Fatalf("%d chunks passed through the server", p)
	}
	if d := chunkRequests(t, s.endpoint, "redirected") - redirected; d != 0 {
		t.Fatalf("%d chunks took a request of their own to the server", d)
	}
	// 16 put URLs and 16 get URLs; a reader that asked for the same
	// block lists again would sign more.
	if n := chunkRequests(t, s.endpoint, "signed") - signed; n < 32 || n > 48 {
		t.Fatalf("%d URLs signed in batches for 16 chunks written and read (want 32, at most 48)", n)
	}
}

// TestFSOnS3CollectsChunks: the chunks of a deleted file are collected
// from the bucket (listed by age, deleted in batches), and those of a
// file still there are not.
func TestFSOnS3CollectsChunks(t *testing.T) {
	s3srv, store := s3Store(t, "gc")
	s := startFSServer(t, func(c *server.Config) {
		c.Blobs = store
		// A short grace, yet long enough for a loaded machine to commit
		// a chunk within half of it.
		c.FSChunkGrace, c.FSOrphanGrace = 6*time.Second, time.Second
	})
	id := s.createFS("gc")
	m := s.mountFS(id)
	keep := make([]byte, 5<<20)
	crand.Read(keep)
	gone := make([]byte, 13<<20)
	crand.Read(gone)
	if err := os.WriteFile(m.path("keep"), keep, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("gone"), gone, 0o644); err != nil {
		t.Fatal(err)
	}
	objects := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(s3srv.Dir, "berth", "gc", "fs", id), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	before := objects()
	if before < 6 {
		t.Fatalf("%d chunk objects for two files of 2 and 4 blocks", before)
	}
	if err := os.Remove(m.path("gone")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool { return objects() <= 2 }) {
		t.Fatalf("%d chunk objects left a minute after the file was deleted, want the kept file's 2", objects())
	}
	fresh := s.mountFS(id)
	if got, err := os.ReadFile(fresh.path("keep")); err != nil || !bytes.Equal(got, keep) {
		t.Fatalf("the kept file: %d bytes, %v", len(got), err)
	}
	if rep := s.fsck(id, false); len(rep.Problems) != 0 {
		t.Fatalf("fsck: %+v", rep)
	}
}

// chunkRequests sums the server's chunk requests that went by path
// (proxied, redirected or signed), from /metrics.
func chunkRequests(t testing.TB, endpoint, path string) int {
	t.Helper()
	return metricSum(t, endpoint, "berth_fs_chunk_requests_total", `path="`+path+`"`)
}

// metricSum sums the series of a counter whose labels contain match.
func metricSum(t testing.TB, endpoint, metric, match string) int {
	t.Helper()
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, match) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += int(v)
		}
	}
	return sum
}

// TestMoveADataDirToS3: a cluster that kept its file systems' data in its
// data dir is copied onto S3 with `berth blob copy` (twice: the second run
// copies nothing), restarted with --blob-store, and reads the same files.
func TestMoveADataDirToS3(t *testing.T) {
	s3srv := s3test.Start(t, "berth")
	dir := t.TempDir()
	s := startFSServer(t, func(c *server.Config) { c.DataDir = dir })
	id := s.createFS("moving")
	m := s.mountFS(id)
	data := make([]byte, 5<<20+7)
	crand.Read(data)
	if err := os.WriteFile(m.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m.kill()
	s.srv.Close()
	url := "s3://berth/moved?endpoint=" + s3srv.Endpoint + "&path-style=true"
	copyOnce := func() string {
		cmd := exec.Command(buildBerth(t), "blob", "copy", "--data-dir", dir, "--to", url)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3test.SecretKey)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("berth blob copy: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := copyOnce(); !regexp.MustCompile(`fs-chunks -> .*: [1-9][0-9]* copied`).MatchString(out) {
		t.Fatalf("first copy: %s", out)
	}
	if out := copyOnce(); strings.Count(out, ": 0 copied") != 2 {
		t.Fatalf("second copy: %s", out)
	}
	if err := os.RemoveAll(filepath.Join(dir, "fs-chunks")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	s2 := startFSServer(t, func(c *server.Config) { c.DataDir = dir; c.BlobStore = url })
	got, err := os.ReadFile(s2.mountFS(id).path("f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the move: %d bytes, %v", len(got), err)
	}
}

// TestFSPosixOnS3: go-fuse's POSIX suite on a file system whose data is on
// S3, read and written by the mount straight from the store.
func TestFSPosixOnS3(t *testing.T) {
	_, store := s3Store(t, "posix")
	s := startFSServer(t, func(c *server.Config) { c.Blobs = store })
	runPosix(t, s.mountFS(s.createFS("posix")))
}

// s3Store starts versitygw with a bucket "berth" and returns the blob
// store below prefix in it.
func s3Store(t testing.TB, prefix string) (*s3test.Server, *bs3.Store) {
	t.Helper()
	srv := s3test.Start(t, "berth")
	store, err := bs3.New(context.Background(), bs3.Options{Bucket: "berth", Prefix: prefix, Endpoint: srv.Endpoint, PathStyle: true, Credentials: s3test.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	return srv, store
}

// TestFSChunkCacheOnDisk: chunks a mount fetched stay in the host's cache
// directory; a new mount reads them from there, the store stopped.
func TestFSChunkCacheOnDisk(t *testing.T) {
	s3srv, store := s3Store(t, "cache")
	s := startFSServer(t, func(c *server.Config) { c.Blobs = store })
	id := s.createFS("cached")
	data := make([]byte, 9<<20+5)
	crand.Read(data)
	w := s.mountFS(id)
	if err := os.WriteFile(w.path("f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	w.kill()
	cache := t.TempDir()
	r := s.mountFS(id, "--cache-dir", cache)
	if got, err := os.ReadFile(r.path("f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first read: %d bytes, %v", len(got), err)
	}
	// The cache is written in the background: wait for all of it.
	eventually(t, "the chunks in the host's cache", func() bool {
		var n int64
		filepath.WalkDir(cache, func(_ string, d fs.DirEntry, err error) error {
			if info, ierr := d.Info(); err == nil && ierr == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".tmp-") {
				n += info.Size()
			}
			return nil
		})
		return n >= int64(len(data))
	})
	r.kill()
	s3srv.Kill()
	r2 := s.mountFS(id, "--cache-dir", cache)
	if got, err := os.ReadFile(r2.path("f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read from the host's cache with the store down: %d bytes, %v", len(got), err)
	}
}
