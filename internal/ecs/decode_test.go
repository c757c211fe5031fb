package ecs

import (
	"errors"
	"testing"

	"github.com/berth-project/berth/internal/spec"
)

func TestDecode(t *testing.T) {
	var r spec.RunTaskRequest
	if err := Decode([]byte(`{"cluster":"c","count":3,"unknownField":1}`), &r); err != nil || spec.Val(r.Cluster) != "c" || spec.Val(r.Count) != 3 {
		t.Fatalf("decode: %v %+v", err, r)
	}
	for _, bad := range []string{`{"count":"three"}`, `{`, `[]`, `{"cluster":"c"} {}`, `{"tags":{"k":"v"}}`} {
		var r spec.RunTaskRequest
		var se *spec.Error
		if err := Decode([]byte(bad), &r); !errors.As(err, &se) || se.Code != "SerializationException" {
			t.Errorf("%s: got %v, want SerializationException", bad, err)
		}
	}
	if err := Decode(nil, &r); err != nil {
		t.Fatalf("empty body is an empty object: %v", err)
	}
}

// FuzzDecode feeds arbitrary bodies to the awsJson decoder of the largest
// request shapes: it must never panic, and must fail only with a
// SerializationException.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"family":"a","containerDefinitions":[{"name":"x","image":"y","memory":1}]}`,
		`{"cluster":"c","count":1,"placementConstraints":[{"type":"memberOf","expression":"attribute:a == b"}]}`, `{"registeredAt": 1.5e9}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&spec.RegisterTaskDefinitionRequest{}, &spec.RunTaskRequest{}, &spec.SubmitTaskStateChangeRequest{}, &spec.RegisterContainerInstanceRequest{}} {
			if err := Decode(body, v); err != nil {
				var se *spec.Error
				if !errors.As(err, &se) || se.Code != "SerializationException" {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if r, ok := v.(*spec.RegisterTaskDefinitionRequest); ok {
				spec.ValidateTaskDefinition(r) // must not panic on any decoded input
			}
		}
	})
}
