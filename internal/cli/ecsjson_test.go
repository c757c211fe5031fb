package cli

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/berth-project/berth/internal/agentapi"
	"github.com/berth-project/berth/internal/spec"
)

// JSON output has ECS's camelCase members and RFC 3339 times, keeps map
// keys and Berth's own json names, and leaves absent members out.
func TestECSShape(t *testing.T) {
	at := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	task := types.Task{TaskArn: aws.String("arn:t"), CreatedAt: &at, Containers: []types.Container{{Name: aws.String("app")}},
		Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{}}}
	if err := printECS(&b, task); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b.Bytes(), &m)
	if m["taskArn"] != "arn:t" || m["createdAt"] != "2026-12-04T20:00:00Z" || m["stoppedAt"] != nil || m["TaskArn"] != nil {
		t.Fatalf("task: %s", b.String())
	}
	if c := m["containers"].([]any)[0].(map[string]any); c["name"] != "app" {
		t.Fatalf("container: %v", c)
	}
	b.Reset()
	v := agentapi.Volume{VolumeID: "vol-1", CreatedAt: spec.TS(at), Tags: []spec.Tag{{Key: aws.String("Tier"), Value: aws.String("db")}}}
	printECS(&b, []agentapi.Volume{v})
	var vs []map[string]any
	json.Unmarshal(b.Bytes(), &vs)
	if vs[0]["volumeId"] != "vol-1" || vs[0]["createdAt"] != "2026-12-04T20:00:00Z" || vs[0]["snapshotId"] != nil {
		t.Fatalf("volume: %s", b.String())
	}
	b.Reset()
	printECS(&b, types.ContainerDefinition{DockerLabels: map[string]string{"Tier": "db"}})
	if !bytes.Contains(b.Bytes(), []byte(`"Tier": "db"`)) {
		t.Fatalf("map keys changed: %s", b.String())
	}
}
