package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agent"
	"github.com/berth-project/berth/internal/jointoken"
	"github.com/berth-project/berth/internal/server"
)

// TestAgentJoinsWithToken: an agent given only the server's https URL and
// a join token pins the cluster CA, receives credentials of its own,
// registers and runs tasks; on restart it needs the token no more. A
// token naming another CA, a revoked token, and a second instance on the
// same credentials are refused.
func TestAgentJoinsWithToken(t *testing.T) {
	c := newCluster(t, func(cfg *server.Config) {
		cfg.Credentials = map[string]string{"test": "test"}
		cfg.RequireAuth = true
	})
	token := c.srv.JoinToken()
	tok, err := jointoken.Parse(token)
	if err != nil {
		t.Fatalf("the server's join token %q: %v", token, err)
	}
	https := "https://" + c.srv.Addr()
	dir := t.TempDir()
	ag := c.addAgent("zone-a", dir, func(cfg *agent.Config) { cfg.Server, cfg.Token = https, token })
	for _, f := range []string{"credentials.json", "ca.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s after joining: %v %v", f, st, err)
		}
	}
	td := c.register(&ecs.RegisterTaskDefinitionInput{Family: aws.String("joined"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Command: sh("trap 'exit 0' TERM; sleep 3600 & wait")}}})
	task := c.run(td)
	if got := c.wait(task.TaskArn, "RUNNING"); aws.ToString(got.ContainerInstanceArn) != ag.arn {
		t.Fatalf("the task ran on %s, not the joined agent", aws.ToString(got.ContainerInstanceArn))
	}
	c.stop(task.TaskArn)

	// A restart uses the kept credentials; no token needed.
	c.stopAgent(ag)
	again := c.addAgent("zone-a", dir, func(cfg *agent.Config) { cfg.Server = https })
	if again.arn != ag.arn {
		t.Fatalf("the restarted agent registered %s, was %s", again.arn, ag.arn)
	}

	// The joined credentials register that one instance only.
	var creds struct{ AccessKeyID, SecretAccessKey string }
	b, _ := os.ReadFile(filepath.Join(dir, "credentials.json"))
	json.Unmarshal(b, &creds)
	joined := client(c.srv.Endpoint(), creds.AccessKeyID, creds.SecretAccessKey)
	_, err = joined.RegisterContainerInstance(c.ctx, &ecs.RegisterContainerInstanceInput{
		TotalResources: []types.Resource{{Name: aws.String("CPU"), Type: aws.String("INTEGER"), IntegerValue: 1024},
			{Name: aws.String("MEMORY"), Type: aws.String("INTEGER"), IntegerValue: 1024}}})
	if efsCode(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "bound") {
		t.Fatalf("a second instance on one agent's credentials: %v", err)
	}
	if _, err := joined.ListClusters(c.ctx, &ecs.ListClustersInput{}); efsCode(err) != "AccessDeniedException" {
		t.Fatalf("an operator call with an agent's credentials: %v", err)
	}

	// A token naming another CA is refused before anything is sent.
	other := tok
	other.CAFingerprint = strings.Repeat("0", 64)
	if err := runAgentOnce(c, other.String(), https); err == nil || !strings.Contains(err.Error(), "CA") {
		t.Fatalf("a token naming another CA: %v", err)
	}
	// Tokens are listed without secrets, and a revoked one joins no one.
	op := &agent.Client{Endpoint: c.srv.Endpoint(), Credentials: &aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}}
	var list server.TokenResponse
	if err := op.Post(c.ctx, "/berth/v1/tokens/list", &server.TokenRequest{}, &list); err != nil || len(list.Tokens) != 1 || list.Tokens[0].ID != tok.ID || list.Tokens[0].SecretSHA256 != "" {
		t.Fatalf("token list: %v %+v", err, list)
	}
	if err := op.Post(c.ctx, "/berth/v1/tokens/delete", &server.TokenRequest{ID: tok.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if err := runAgentOnce(c, token, https); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Fatalf("a revoked token: %v", err)
	}
	// The agent that joined with it keeps working.
	task = c.run(td)
	c.wait(task.TaskArn, "RUNNING")
	c.stop(task.TaskArn)

	// Once its instance is deregistered, the agent's credentials register
	// a new one.
	c.stopAgent(again)
	if _, err := c.ecs.DeregisterContainerInstance(c.ctx, &ecs.DeregisterContainerInstanceInput{ContainerInstance: aws.String(again.arn), Force: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if fresh := c.addAgent("zone-a", dir, func(cfg *agent.Config) { cfg.Server = https }); fresh.arn == again.arn {
		t.Fatal("the agent kept a deregistered instance")
	}
}

// runAgentOnce starts an agent in a fresh data dir and returns why it
// stopped (or nil if it became ready).
func runAgentOnce(c *cluster, token, server string) error {
	a, err := agent.New(agent.Config{Server: server, Cluster: "default", Zone: "zone-b", DataDir: c.t.TempDir(), Token: token, Log: testLogger()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-a.Ready():
		cancel()
		<-done
		removeTaskContainers(a.ContainerInstanceArn())
		return nil
	}
}
