package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
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
	"github.com/chromedp/chromedp"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/server"
)

// artifacts is where the browser tests keep their screenshots
// ($BERTH_ARTIFACTS, or test/e2e/artifacts).
func artifacts(t *testing.T, sub string) string {
	dir := os.Getenv("BERTH_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts Debian's chromium (headless, driven over the DevTools
// protocol) at a desktop's size; the test fails if there is none.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("the console's browser test needs chromium (Debian's chromium package)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first call starts the browser, on a context without a timeout
	// (a timeout there would end the browser); steps get one after.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel3 := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func textOf(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConsoleInABrowser: the console, in a real browser, shows the
// cluster the test built — instances by zone, tasks with where their data
// lives, a block volume, a file system with its mount target — follows a
// task to RUNNING without a reload, and stops a task, scales a service
// and snapshots a volume, each after a confirmation. It keeps a
// screenshot of every page, and of one on a phone's screen.
func TestConsoleInABrowser(t *testing.T) {
	c := newCluster(t)
	c.addAgent("local-a", "")
	dir := artifacts(t, "console")
	fs := c.efsFS("console-share", "local-a")
	var created agentapi.VolumesResponse
	if err := c.post("/berth/v1/volumes/create", &agentapi.CreateVolumeRequest{Zone: "local-a", SizeInGiB: aws.Int32(1)}, &created); err != nil {
		t.Fatal(err)
	}
	vol := created.Volumes[0].VolumeID
	if !waitFor(60*time.Second, func() bool { return c.volume(vol).Initialized }) {
		t.Fatalf("volume %s never made: %+v", vol, c.volume(vol))
	}
	sleeper := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("sleeper"),
		Volumes: []types.Volume{{Name: aws.String("cache"), DockerVolumeConfiguration: &types.DockerVolumeConfiguration{Scope: types.ScopeShared, Autoprovision: aws.Bool(true)}},
			{Name: aws.String("share"), EfsVolumeConfiguration: &types.EFSVolumeConfiguration{FileSystemId: aws.String(fs)}}},
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("trap 'exit 0' TERM; sleep 600 & wait"),
			MountPoints: []types.MountPoint{{SourceVolume: aws.String("cache"), ContainerPath: aws.String("/cache")}, {SourceVolume: aws.String("share"), ContainerPath: aws.String("/share")}}}}})
	first := c.wait(c.run(sleeper).TaskArn, "RUNNING")
	firstID := shortARN(aws.ToString(first.TaskArn))
	if _, err := c.ecs.CreateService(c.ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String(sleeper), DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}

	// Open on loopback, the console answers no other name (a rebound DNS
	// name gets nothing).
	req, _ := http.NewRequest(http.MethodGet, c.srv.Endpoint()+"/console/clusters/default", nil)
	req.Host = "rebound.example:7440"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the console under another name: %v %v", err, resp)
	}
	ctx := browser(t)
	base := c.srv.Endpoint()
	// The clusters page.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`a[href="/console/clusters/default"]`))); err != nil {
		t.Fatal(err)
	}
	if txt := textOf(t, ctx); !strings.Contains(txt, "local-a") {
		t.Fatalf("clusters page: %s", txt)
	}
	shot(t, ctx, dir, "clusters")

	// The cluster: its zone, instance, tasks and where their data lives.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href="/console/clusters/default"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-task="`+firstID+`"]`))); err != nil {
		t.Fatal(err)
	}
	txt := textOf(t, ctx)
	for _, want := range []string{"local-a", "connected", "sleeper:1", "Docker volume cache on instance", "file system " + fs, "web"} {
		if !strings.Contains(txt, want) {
			t.Fatalf("cluster page lacks %q:\n%s", want, txt)
		}
	}
	shot(t, ctx, dir, "cluster")

	// Live: a task started now shows up, RUNNING, with no reload.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.stillHere = "yes"`)); err != nil {
		t.Fatal(err)
	}
	second := c.run(sleeper)
	secondID := shortARN(aws.ToString(second.TaskArn))
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`tr[data-task="`+secondID+`"][data-status="RUNNING"]`))); err != nil {
		t.Fatalf("the new task never showed RUNNING: %v", err)
	}
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.stillHere`)); err != nil || still != "yes" {
		t.Fatalf("the page reloaded instead of updating: %q %v", still, err)
	}

	// Stop a task, after a confirmation page.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/clusters/default/tasks/"+firstID), chromedp.WaitVisible(chromedp.CSS(`#task-status`))); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, dir, "task")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a.danger`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`))); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, dir, "confirm-stop")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`.flash`))); err != nil {
		t.Fatal(err)
	}
	if d, err := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{aws.ToString(first.TaskArn)}}); err != nil || aws.ToString(d.Tasks[0].DesiredStatus) != "STOPPED" ||
		aws.ToString(d.Tasks[0].StoppedReason) != "Stopped from the Berth console" {
		t.Fatalf("stop from the console: %v %+v", err, d)
	}

	// Scale the service.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/clusters/default/services/web"), chromedp.WaitVisible(chromedp.CSS(`#count`)),
		chromedp.SetValue(chromedp.CSS(`#count`), "2")); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, dir, "service")
	if err := chromedp.Do(ctx, chromedp.Submit(chromedp.CSS(`#count`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`.flash`))); err != nil {
		t.Fatal(err)
	}
	if d, err := c.ecs.DescribeServices(c.ctx, &ecs.DescribeServicesInput{Services: []string{"web"}}); err != nil || d.Services[0].DesiredCount != 2 {
		t.Fatalf("scale from the console: %v %+v", err, d)
	}

	// Snapshot the block volume.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/volumes"), chromedp.WaitVisible(chromedp.CSS(`a[data-snapshot]`))); err != nil {
		t.Fatal(err)
	}
	if txt := textOf(t, ctx); !strings.Contains(txt, vol) || !strings.Contains(txt, "local-a") {
		t.Fatalf("volumes page: %s", txt)
	}
	shot(t, ctx, dir, "volumes")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[data-snapshot]`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`.flash`))); err != nil {
		t.Fatal(err)
	}
	var snaps agentapi.SnapshotsResponse
	if err := c.post("/berth/v1/snapshots/describe", &agentapi.SnapshotsRequest{VolumeID: vol}, &snaps); err != nil || len(snaps.Snapshots) != 1 {
		t.Fatalf("snapshot from the console: %v %+v", err, snaps)
	}

	// File systems: mount targets per zone.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/filesystems"), chromedp.WaitVisible(chromedp.CSS(`main h2`))); err != nil {
		t.Fatal(err)
	}
	if txt := textOf(t, ctx); !strings.Contains(txt, fs) || !strings.Contains(txt, "subnet-local-a") || !regexp.MustCompile(`Mounts\s+[1-9]`).MatchString(txt) {
		t.Fatalf("file systems page (a running task mounts the file system): %s", txt)
	}
	shot(t, ctx, dir, "filesystems")

	// On a phone's screen, the page fits its width (tables scroll inside).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/console/clusters/default"),
		chromedp.WaitVisible(chromedp.CSS(`main h1`))); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, dir, "cluster-phone")
	if overflow {
		t.Fatal("the cluster page is wider than a phone's screen")
	}
}

func shortARN(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// With access keys, the console asks for one: a wrong secret gets
// nothing, a right one a session cookie the script cannot read; a form
// posted without the session's token, or from another site, changes
// nothing.
func TestConsoleSignIn(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) {
		cfg.RequireAuth = true
		cfg.Credentials = map[string]string{"test": "test", "AKIDOPS": "s3cret"}
	})
	c.addAgent("local-a", "", withTestKeys)
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("sleeper"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("trap 'exit 0' TERM; sleep 600 & wait")}}})
	task := c.wait(c.run(td).TaskArn, "RUNNING")
	id := shortARN(aws.ToString(task.TaskArn))
	base := c.srv.Endpoint()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(base + "/console/clusters/default")
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("a page without a session: %v %v", err, resp)
	}
	form := func(path string, v url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		r, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r
	}
	if r := form("/console/login", url.Values{"accessKey": {"AKIDOPS"}, "secretKey": {"wrong"}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong secret: %d", r.StatusCode)
	}
	r := form("/console/login", url.Values{"accessKey": {"AKIDOPS"}, "secretKey": {"s3cret"}, "next": {"/console/clusters/default"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/clusters/default" {
		t.Fatalf("sign in: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, k := range r.Cookies() {
		if k.Name == "berth_session" {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 || ck.MaxAge > 3600 || strings.Contains(ck.Value, "s3cret") {
		t.Fatalf("session cookie %+v", ck)
	}
	page, err := hc.Get(base + "/console/clusters/default")
	if err != nil || page.StatusCode != 200 {
		t.Fatalf("a page with a session: %v %v", err, page)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), id) || !strings.Contains(string(body), "AKIDOPS") {
		t.Fatalf("signed-in page lacks the task or the user")
	}
	// No token, a wrong token, another site's origin: refused.
	stop := "/console/clusters/default/tasks/" + id + "/stop"
	for _, v := range []url.Values{{}, {"csrf": {"0000"}}} {
		if r := form(stop, v); r.StatusCode != http.StatusForbidden {
			t.Fatalf("a stop without the session's token: %d", r.StatusCode)
		}
	}
	cpage, _ := hc.Get(base + stop)
	cb, _ := io.ReadAll(cpage.Body)
	cpage.Body.Close()
	tok := between(string(cb), `name="csrf" value="`, `"`)
	if tok == "" {
		t.Fatal("the confirmation page has no token")
	}
	req, _ := http.NewRequest(http.MethodPost, base+stop, strings.NewReader(url.Values{"csrf": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if r, err := hc.Do(req); err != nil || r.StatusCode != http.StatusForbidden {
		t.Fatalf("a stop from another site: %v %v", err, r)
	}
	if d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{id}}); aws.ToString(d.Tasks[0].DesiredStatus) != "RUNNING" {
		t.Fatal("a refused form stopped the task")
	}
	if r := form(stop, url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a stop with the token: %d", r.StatusCode)
	}
	if d, _ := c.ecs.DescribeTasks(c.ctx, &ecs.DescribeTasksInput{Tasks: []string{id}}); aws.ToString(d.Tasks[0].DesiredStatus) != "STOPPED" {
		t.Fatal("the confirmed stop did not stop the task")
	}
	// Signing out ends the session on the server.
	form("/console/logout", url.Values{})
	req, _ = http.NewRequest(http.MethodGet, base+"/console/clusters/default", nil)
	req.AddCookie(ck)
	if r, err := http.DefaultTransport.RoundTrip(req); err != nil || r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the old cookie after sign-out: %v %v", err, r)
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		return ""
	}
	return s[:j]
}

// withTestKeys gives an agent the test server's access key.
func withTestKeys(cfg *agent.Config) {
	cfg.Credentials = &agent.Client{Credentials: &aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}}
}
