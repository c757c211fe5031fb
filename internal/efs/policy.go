package efs

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// Policy is an IAM resource policy as EFS file system policies use it.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one policy statement. Principal, Action and Resource may be
// a string or a list in the JSON.
type Statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal any                       `json:"Principal,omitempty"`
	Action    any                       `json:"Action"`
	Resource  any                       `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Client actions of EFS.
const (
	ActionMount = "elasticfilesystem:ClientMount"
	ActionWrite = "elasticfilesystem:ClientWrite"
	ActionRoot  = "elasticfilesystem:ClientRootAccess"
)

// ParsePolicy checks a file system policy.
func ParsePolicy(doc string) (*Policy, error) {
	p := &Policy{}
	if err := json.Unmarshal([]byte(doc), p); err != nil {
		return nil, fmt.Errorf("Policy is not valid JSON: %w", err)
	}
	if len(p.Statement) == 0 {
		return nil, fmt.Errorf("Policy has no statements")
	}
	for i, s := range p.Statement {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return nil, fmt.Errorf("Statement %d: Effect must be Allow or Deny", i)
		}
		if len(strs(s.Action)) == 0 {
			return nil, fmt.Errorf("Statement %d: Action is required", i)
		}
		for _, a := range strs(s.Action) {
			if a != "*" && !strings.HasPrefix(a, "elasticfilesystem:") {
				return nil, fmt.Errorf("Statement %d: action %q is not an elasticfilesystem action", i, a)
			}
		}
		for op := range s.Condition {
			switch op {
			case "Bool", "StringEquals", "StringLike", "ArnEquals", "ArnLike", "StringNotEquals", "ArnNotEquals":
			default:
				return nil, fmt.Errorf("Statement %d: condition operator %q is not supported", i, op)
			}
		}
	}
	return p, nil
}

// Request is what a mount asks for, as a policy sees it.
type Request struct {
	Principal       string // the caller's IAM role ARN, "" for anonymous
	AccessPointArn  string
	SecureTransport bool
	FileSystemArn   string
}

func match(pattern, s string) bool {
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return ok || pattern == s
}

func (s *Statement) principalMatches(p string) bool {
	if s.Principal == nil {
		return true
	}
	if str, ok := s.Principal.(string); ok {
		return str == "*"
	}
	m, ok := s.Principal.(map[string]any)
	if !ok {
		return false
	}
	for _, v := range strs(m["AWS"]) {
		if v == "*" || (p != "" && match(v, p)) {
			return true
		}
	}
	return false
}

func (s *Statement) actionMatches(action string) bool {
	for _, a := range strs(s.Action) {
		if a == "*" || a == "elasticfilesystem:*" || strings.EqualFold(a, action) {
			return true
		}
	}
	return false
}

func (s *Statement) resourceMatches(arn string) bool {
	if s.Resource == nil {
		return true
	}
	for _, r := range strs(s.Resource) {
		if r == "*" || match(r, arn) {
			return true
		}
	}
	return false
}

func (s *Statement) conditionsHold(r *Request) bool {
	values := map[string]string{
		"aws:securetransport":              fmt.Sprint(r.SecureTransport),
		"elasticfilesystem:accesspointarn": r.AccessPointArn,
		"aws:principalarn":                 r.Principal,
	}
	for op, conds := range s.Condition {
		for key, want := range conds {
			got, known := values[strings.ToLower(key)]
			ok := false
			for _, w := range strs(want) {
				switch op {
				case "Bool":
					ok = ok || (known && strings.EqualFold(w, got))
				case "StringEquals", "ArnEquals":
					ok = ok || (known && w == got)
				case "StringLike", "ArnLike":
					ok = ok || (known && match(w, got))
				case "StringNotEquals", "ArnNotEquals":
					ok = ok || !known || w != got
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// Allows evaluates an action as IAM does: an explicit Deny wins, then an
// Allow grants; nothing else does. A file system without a policy allows
// every client action (EFS's default policy).
func Allows(policy string, r *Request, action string) bool {
	if policy == "" {
		return true
	}
	p, err := ParsePolicy(policy)
	if err != nil {
		return false
	}
	allowed := false
	for i := range p.Statement {
		s := &p.Statement[i]
		if !s.actionMatches(action) || !s.principalMatches(r.Principal) || !s.resourceMatches(r.FileSystemArn) || !s.conditionsHold(r) {
			continue
		}
		if s.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}
