package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUserCommands drives berth run, ps, logs, stop and instances against a
// server with a local agent, using the examples.
func TestUserCommands(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	if out, err := exec.Command("docker", "tag", testImage, "berth/busybox:local").CombinedOutput(); err != nil {
		t.Fatalf("tag: %v %s", err, out)
	}
	bin := buildBerth(t)
	berth := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "BERTH_ENDPOINT="+c.srv.Endpoint())
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	vol := exec.Command("docker", "volume", "rm", "-f", "counter-data")
	vol.Run()
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", "counter-data").Run() })
	taskID := regexp.MustCompile(`task ([0-9a-f]{32})`)
	var last string
	for i := 1; i <= 2; i++ {
		out, code := berth("run", "--wait", "../../examples/counter.json")
		if code != 0 || !strings.Contains(out, "STOPPED") {
			t.Fatalf("berth run (%d): exit %d\n%s", i, code, out)
		}
		m := taskID.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no task id in %s", out)
		}
		last = m[1]
		// The same file runs the same revision.
		if !strings.Contains(out, "(counter:1)") {
			t.Fatalf("run %d of an unchanged file registered a new revision:\n%s", i, out)
		}
	}
	// A member the API does not have is refused as the AWS CLI refuses it.
	typo := t.TempDir() + "/typo.json"
	os.WriteFile(typo, []byte(`{"family":"typo","containerDefinitions":[{"name":"a","image":"berth/busybox:local","memory":16,"comand":["true"]}]}`), 0o644)
	if out, code := berth("run", typo); code == 0 || !strings.Contains(out, `Unknown parameter in containerDefinitions[0]: "comand", must be one of: name, image,`) {
		t.Fatalf("a misspelt member: exit %d\n%s", code, out)
	}
	if out, _ := berth("logs", last); !strings.Contains(out, "run number 2") {
		t.Fatalf("the counter's data did not persist across tasks: %s", out)
	}
	out, code := berth("run", "--wait", "../../examples/writer-reader.json")
	if code != 0 || !strings.Contains(out, "reader exit 0") {
		t.Fatalf("writer-reader: exit %d\n%s", code, out)
	}
	// Every container's log, each line after its name; or one, as written.
	wr := taskID.FindStringSubmatch(out)[1]
	if logs, _ := berth("logs", wr); !strings.Contains(logs, "reader | line 5\n") || strings.Contains(logs, "writer | line") {
		t.Fatalf("berth logs of two containers:\n%s", logs)
	}
	if logs, _ := berth("logs", wr, "--container", "reader"); !strings.HasPrefix(logs, "line 1\n") {
		t.Fatalf("berth logs --container reader:\n%s", logs)
	}
	// A failing essential container's exit code becomes berth run's.
	fail := t.TempDir() + "/fail.json"
	os.WriteFile(fail, []byte(`{"family":"fail","containerDefinitions":[{"name":"a","image":"berth/busybox:local","memory":16,"command":["sh","-c","exit 4"]}]}`), 0o644)
	if out, code := berth("run", "--wait", fail); code != 4 || !strings.Contains(out, "(fail:1)") {
		t.Fatalf("exit code %d, want 4\n%s", code, out)
	}
	// A changed file registers a new revision.
	os.WriteFile(fail, []byte(`{"family":"fail","containerDefinitions":[{"name":"a","image":"berth/busybox:local","memory":16,"command":["sh","-c","exit 5"]}]}`), 0o644)
	if out, code := berth("run", "--wait", fail); code != 5 || !strings.Contains(out, "(fail:2)") {
		t.Fatalf("a changed file: exit %d, want 5 from revision 2\n%s", code, out)
	}
	// JSON in ECS's own shape: camelCase, RFC 3339 times.
	out, code = berth("run", "-d", "--output", "json", fail)
	var task map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &task) != nil || task["taskArn"] == nil || task["TaskArn"] != nil {
		t.Fatalf("run -d json: %d %s", code, out)
	}
	if created, _ := task["createdAt"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`).MatchString(created) {
		t.Fatalf("createdAt %v is not an RFC 3339 time", task["createdAt"])
	}
	if out, _ := berth("instances", "-o", "json"); !strings.Contains(out, `"containerInstanceArn"`) || !strings.Contains(out, `"registeredAt"`) {
		t.Fatalf("instances json: %s", out)
	}
	if out, _ := berth("ps", "--all"); !strings.Contains(out, "counter:1") || !strings.Contains(out, "counter-data(docker-shared)") {
		t.Fatalf("ps: %s", out)
	}
	if out, _ := berth("instances"); !strings.Contains(out, "local-a") || !strings.Contains(out, "connected") {
		t.Fatalf("instances: %s", out)
	}
	// A block volume through --ebs, kept: the journal grows across runs.
	out, code = berth("run", "--wait", "../../examples/block-volume.json", "--ebs", "data=1,keep")
	if code != 0 || !strings.Contains(out, "journal exit 0") {
		t.Fatalf("block volume run: %d\n%s", code, out)
	}
	// The kept volume, attached to the next run with --ebs NAME=vol-….
	kept := regexp.MustCompile(`vol-[0-9a-f]{17}`).FindString(func() string { o, _ := berth("volume", "ls"); return o }())
	if kept == "" {
		t.Fatal("no kept volume in berth volume ls")
	}
	out, code = berth("run", "--wait", "../../examples/block-volume.json", "--ebs", "data="+kept)
	m := taskID.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("run on the kept volume: %d\n%s", code, out)
	}
	if out, _ := berth("logs", m[1]); strings.Count(out, "UTC") != 2 {
		t.Fatalf("the second run's journal should hold both runs' lines:\n%s", out)
	}
	if out, code := berth("run", "--wait", "../../examples/block-volume.json", "--ebs", "data=vol-0123456789abcdef0"); code == 0 || !strings.Contains(out, "vol-0123456789abcdef0") {
		t.Fatalf("unknown volume: %d %s", code, out)
	}
	if out, code := berth("run", "--wait", "../../examples/block-volume.json", "--ebs", "data=99999"); code == 0 || !strings.Contains(out, "InvalidParameterException") {
		t.Fatalf("bad --ebs size: %d %s", code, out)
	}
	if out, code := berth("stop", "0123456789abcdef0123456789abcdef"); code == 0 || !strings.Contains(out, "InvalidParameterException") {
		t.Fatalf("stop unknown: %d %s", code, out)
	}
}

// TestVolumeCommands drives berth volume and berth snapshot.
func TestVolumeCommands(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	bin := buildBerth(t)
	berth := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "BERTH_ENDPOINT="+c.srv.Endpoint())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	volRE := regexp.MustCompile(`vol-[0-9a-f]{17}`)
	out := berth("volume", "create", "--zone", "local-a", "--size", "1", "--fs", "ext4")
	vol := volRE.FindString(out)
	// It waits for the agent to make the volume, saying so as it goes.
	if vol == "" || !strings.Contains(out, "ext4") || !strings.Contains(out, "creating "+vol) || !strings.Contains(out, "available") {
		t.Fatalf("create: %s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(berth("volume", "describe", vol), "available") {
		if time.Now().After(deadline) {
			t.Fatalf("volume never became available: %s", berth("volume", "ls"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	out = berth("snapshot", "create", vol)
	snap := regexp.MustCompile(`snap-[0-9a-f]{17}`).FindString(out)
	if snap == "" || !strings.Contains(out, "completed") {
		t.Fatalf("snapshot: %s", out)
	}
	out = berth("volume", "create", "--zone", "local-a", "--from-snapshot", snap)
	restored := volRE.FindString(out)
	if restored == "" || !strings.Contains(out, snap) || !strings.Contains(out, "1 GiB") {
		t.Fatalf("restore: %s", out)
	}
	if out := berth("snapshot", "ls", "--output", "json"); !strings.Contains(out, snap) {
		t.Fatalf("snapshot ls: %s", out)
	}
	berth("volume", "rm", vol)
	if out := berth("volume", "ls"); !strings.Contains(out, restored) {
		t.Fatalf("ls: %s", out)
	}
	cmd := exec.Command(bin, "volume", "create", "--zone", "local-a", "--size", "99999")
	cmd.Env = append(os.Environ(), "BERTH_ENDPOINT="+c.srv.Endpoint())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "InvalidParameterException: The sizeInGiB 99999 is not valid for volume type gp3") {
		t.Fatalf("bad size: %v %s", err, out)
	}
}

// TestServiceCommands drives berth service.
func TestServiceCommands(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	exec.Command("docker", "tag", testImage, "berth/busybox:local").Run()
	bin := buildBerth(t)
	berth := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "BERTH_ENDPOINT="+c.srv.Endpoint())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	berth("run", "-d", "../../examples/counter-loop.json") // registers the family (and runs one task)
	if out := berth("service", "create", "../../examples/counter-service.json"); !strings.Contains(out, "counter  ACTIVE  desired 1") {
		t.Fatalf("create: %s", out)
	}
	berth("service", "scale", "counter", "2")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(berth("service", "ls"), "ACTIVE  2        2") {
		if time.Now().After(deadline) {
			t.Fatalf("scale: %s", berth("service", "ls"))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if out := berth("service", "events", "counter"); !strings.Contains(out, "(service counter) has started") {
		t.Fatalf("events: %s", out)
	}
	if out := berth("service", "update", "counter", "--force-new-deployment"); !strings.Contains(out, "counter  ACTIVE") {
		t.Fatalf("update: %s", out)
	}
	if out := berth("service", "rm", "counter"); !strings.Contains(out, "DRAINING") {
		t.Fatalf("rm: %s", out)
	}
}
