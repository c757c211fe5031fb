package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// privateRegistry is a registry (the Docker Registry HTTP API v2, enough
// for a pull) holding one image, answering only requests with its basic
// credentials. There is no registry on the test machines, so the test
// serves the test image itself.
type privateRegistry struct {
	addr       string
	user, pass string
	manifest   []byte
	blobs      map[string][]byte
	pulls      atomic.Int32 // manifests served to authorised clients
}

func startPrivateRegistry(t *testing.T, user, pass string) *privateRegistry {
	t.Helper()
	ensureTestImage(t)
	saved, err := exec.Command("docker", "save", testImage).Output()
	if err != nil {
		t.Fatalf("docker save: %v", err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(saved))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	var saveManifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &saveManifest); err != nil || len(saveManifest) != 1 {
		t.Fatalf("docker save manifest: %v", err)
	}
	r := &privateRegistry{user: user, pass: pass, blobs: map[string][]byte{}}
	digest := func(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }
	type desc struct {
		MediaType string `json:"mediaType"`
		Size      int    `json:"size"`
		Digest    string `json:"digest"`
	}
	cfg := files[saveManifest[0].Config]
	r.blobs[digest(cfg)] = cfg
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.docker.distribution.manifest.v2+json",
		desc{"application/vnd.docker.container.image.v1+json", len(cfg), digest(cfg)}, nil}
	for _, l := range saveManifest[0].Layers {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(files[l])
		w.Close()
		r.blobs[digest(gz.Bytes())] = gz.Bytes()
		m.Layers = append(m.Layers, desc{"application/vnd.docker.image.rootfs.diff.tar.gzip", gz.Len(), digest(gz.Bytes())})
	}
	r.manifest, _ = json.Marshal(m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: r}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *privateRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
		w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return
	}
	path := req.URL.Path
	switch {
	case path == "/v2/":
		w.Write([]byte("{}"))
	case strings.Contains(path, "/manifests/"):
		r.pulls.Add(1)
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		w.Header().Set("Docker-Content-Digest", fmt.Sprintf("sha256:%x", sha256.Sum256(r.manifest)))
		w.Write(r.manifest)
	case strings.Contains(path, "/blobs/"):
		b, ok := r.blobs[path[strings.LastIndex(path, "/")+1:]]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	default:
		http.NotFound(w, req)
	}
}

// TestRepositoryCredentials: an image in a private registry is pulled with
// the credentials of the container's repositoryCredentials (a Secrets
// Manager secret), and refused without them.
func TestRepositoryCredentials(t *testing.T) {
	c := newCluster(t)
	c.addAgent("us-east-1a", "")
	reg := startPrivateRegistry(t, "puller", "pull-00secret")
	image := reg.addr + "/private/busybox:1"
	exec.Command("docker", "rmi", "-f", image).Run()
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	sec, err := smClient(c.srv.Endpoint()).CreateSecret(c.ctx, &secretsmanager.CreateSecretInput{Name: aws.String("registry"),
		SecretString: aws.String(`{"username":"puller","password":"pull-00secret"}`)})
	if err != nil {
		t.Fatal(err)
	}
	without := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("private-nocreds"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Image: aws.String(image), Command: []string{"true"},
	}}})
	st := c.wait(c.run(without).TaskArn, "STOPPED")
	if r := aws.ToString(st.StoppedReason) + describeContainers(st); !strings.Contains(r, "CannotPullContainerError") {
		t.Fatalf("pull without credentials: %s", r)
	}
	with := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("private"), ContainerDefinitions: []types.ContainerDefinition{{
		Name: aws.String("app"), Image: aws.String(image), Command: []string{"sleep", "3600"},
		RepositoryCredentials: &types.RepositoryCredentials{CredentialsParameter: sec.ARN},
	}}})
	task := c.run(with)
	c.wait(task.TaskArn, "RUNNING")
	if reg.pulls.Load() == 0 {
		t.Fatal("the image was not pulled from the private registry")
	}
	c.stop(task.TaskArn)
}
