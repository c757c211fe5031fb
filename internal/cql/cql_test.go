package cql

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var env = &Env{
	Attributes:        map[string]string{"ecs.instance-type": "t2.small", "ecs.availability-zone": "us-east-1a", "disk": "ssd", "ecs.os-type": "linux"},
	EC2InstanceID:     "i-0123",
	AgentConnected:    true,
	AgentVersion:      "1.10.2",
	RegisteredAt:      time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	RunningTasksCount: 2,
	TaskGroups:        map[string]int{"service:web": 1, "family:db": 1},
}

func TestMatch(t *testing.T) {
	cases := []struct {
		expr string
		want bool
	}{
		{"attribute:ecs.instance-type == t2.small", true},
		{"attribute:ecs.instance-type != t2.small", false},
		{"attribute:ecs.instance-type =~ t2.*", true},
		{"attribute:ecs.instance-type !~ ^m5", true},
		{"attribute:ecs.availability-zone in [us-east-1a, us-east-1b]", true},
		{"attribute:ecs.availability-zone !in [us-east-1a, us-east-1b]", false},
		{"attribute:disk exists", true},
		{"attribute:gpu exists", false},
		{"attribute:gpu !exists", true},
		{"attribute:gpu == x", false},
		{"attribute:gpu != x", true},
		{"ec2InstanceId in ['i-0123', 'i-4567']", true},
		{"agentConnected == true", true},
		{"agentVersion >= 1.9.0", true},
		{"agentVersion < 1.9.0", false},
		{"registeredAt < 2025-01-01", true},
		{"registeredAt > 2024-06-01T00:00:00Z", false},
		{"runningTasksCount == 2", true},
		{"runningTasksCount > 10", false},
		{"runningTasksCount <= 2", true},
		{"task:group == service:web", true},
		{"task:group != service:web", false},
		{"task:group == service:api", false},
		{"task:group in [service:api, family:db]", true},
		{"not(task:group == service:web)", false},
		{"!(attribute:disk == hdd)", true},
		{"attribute:disk == ssd and attribute:ecs.os-type == linux", true},
		{"attribute:disk == hdd or attribute:ecs.os-type == linux", true},
		{"attribute:disk == hdd || (attribute:ecs.os-type == linux && runningTasksCount < 1)", false},
		{"attribute:disk == ssd AND NOT attribute:ecs.os-type == windows", true},
		{`attribute:ecs.instance-type =~ "^t2\.(small|medium)$"`, true},
	}
	for _, c := range cases {
		e, err := Parse(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if got := e.Match(env); got != c.want {
			t.Errorf("%s = %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := map[string]string{
		"":                         "empty expression",
		"attribute:x":              "expected an operator",
		"attribute:x ==":           "expected a value",
		"attribute:x == a and":     "expected a subject",
		"(attribute:x == a":        "expected ')'",
		"attribute:x in a":         "expected '['",
		"attribute:x in [a b]":     "expected ',' or ']'",
		"attribute:x =~ '('":       "invalid regular expression",
		"color == red":             "unknown subject",
		"attribute: == a":          "attribute name missing",
		"attribute:x == 'a":        "unterminated quoted value",
		"registeredAt > yesterday": "registeredAt needs a date",
		"attribute:x == a)":        "unexpected",
		"attribute:x % a":          "found \"%\"",
		"attribute:x & a":          "unexpected character",
		strings.Repeat("(", 200) + "attribute:x exists": "nested too deeply",
		strings.Repeat("a", MaxLength+1):                "longer than",
	}
	for src, want := range cases {
		_, err := Parse(src)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Error(), want) {
			t.Errorf("%q: got %v, want error containing %q", src, err, want)
		}
	}
}

func TestUsesTasks(t *testing.T) {
	for src, want := range map[string]bool{"task:group == a": true, "runningTasksCount > 1": true, "attribute:x exists": false} {
		e, err := Parse(src)
		if err != nil || e.UsesTasks != want {
			t.Errorf("%s: UsesTasks=%v err=%v", src, e != nil && e.UsesTasks, err)
		}
	}
}

// FuzzParse checks that the parser never panics, that every failure is a
// *SyntaxError with an offset inside the input, and that evaluation of any
// accepted expression never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"attribute:a == b", "not(task:group in [x, y]) or agentVersion >= 1.2", "(a", "!exists", "attribute:x =~ '.*'", "registeredAt < 2020-01-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("bad error %#v for %q", err, src)
			}
			return
		}
		e.Match(env)
		e.Match(&Env{})
	})
}
