// Package cql parses and evaluates the ECS cluster query language used by
// memberOf placement constraints and ListContainerInstances filters:
//
//	expression := or
//	or         := and { ("or" | "||") and }
//	and        := unary { ("and" | "&&") unary }
//	unary      := ("not" | "!") unary | "(" or ")" | comparison
//	comparison := subject operator [argument]
//	argument   := value | "[" value { "," value } "]"
//
// Subjects are attribute:NAME, ec2InstanceId, agentConnected, agentVersion,
// registeredAt, runningTasksCount and task:group. Operators are
// == != > >= < <= =~ !~ in !in exists !exists. Values are bare words or
// quoted with ' or ". The package is pure: no I/O, no clocks.
package cql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxLength is the longest expression ECS accepts.
const MaxLength = 2000

// Env is what an expression is evaluated against: one container instance.
type Env struct {
	Attributes        map[string]string
	EC2InstanceID     string
	AgentConnected    bool
	AgentVersion      string
	RegisteredAt      time.Time
	RunningTasksCount int
	TaskGroups        map[string]int // group -> tasks of that group on the instance
}

// Expr is a compiled expression.
type Expr struct {
	src  string
	root node
	// UsesTasks reports whether the result depends on the tasks on the
	// instance (task:group, runningTasksCount), so it changes as tasks are placed.
	UsesTasks bool
}

// String returns the source text.
func (e *Expr) String() string { return e.src }

// Match evaluates the expression against env.
func (e *Expr) Match(env *Env) bool { return e.root.eval(env) }

// SyntaxError describes where an expression is malformed.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg) }

type node interface{ eval(*Env) bool }

type orNode struct{ a, b node }
type andNode struct{ a, b node }
type notNode struct{ a node }

func (n orNode) eval(e *Env) bool  { return n.a.eval(e) || n.b.eval(e) }
func (n andNode) eval(e *Env) bool { return n.a.eval(e) && n.b.eval(e) }
func (n notNode) eval(e *Env) bool { return !n.a.eval(e) }

type subject int

const (
	subjAttribute subject = iota
	subjEC2InstanceID
	subjAgentConnected
	subjAgentVersion
	subjRegisteredAt
	subjRunningTasksCount
	subjTaskGroup
)

type cmpNode struct {
	subj   subject
	attr   string
	op     string // positive form: == > >= < <= =~ in exists
	negate bool
	args   []string
	re     *regexp.Regexp
	memo   sync.Map // value -> bool: regexp results, since instances share few distinct values
}

func (n *cmpNode) values(e *Env) []string {
	switch n.subj {
	case subjAttribute:
		if v, ok := e.Attributes[n.attr]; ok {
			return []string{v}
		}
		return nil
	case subjEC2InstanceID:
		if e.EC2InstanceID == "" {
			return nil
		}
		return []string{e.EC2InstanceID}
	case subjAgentConnected:
		return []string{strconv.FormatBool(e.AgentConnected)}
	case subjAgentVersion:
		if e.AgentVersion == "" {
			return nil
		}
		return []string{e.AgentVersion}
	case subjRegisteredAt:
		if e.RegisteredAt.IsZero() {
			return nil
		}
		return []string{e.RegisteredAt.UTC().Format(time.RFC3339)}
	case subjRunningTasksCount:
		return []string{strconv.Itoa(e.RunningTasksCount)}
	case subjTaskGroup:
		out := make([]string, 0, len(e.TaskGroups))
		for g, c := range e.TaskGroups {
			if c > 0 {
				out = append(out, g)
			}
		}
		return out
	}
	return nil
}

func (n *cmpNode) eval(e *Env) bool {
	var r bool
	if n.subj == subjTaskGroup && (n.op == "==" || n.op == "in") {
		for _, a := range n.args {
			if e.TaskGroups[a] > 0 {
				r = true
				break
			}
		}
		return r != n.negate
	}
	vals := n.values(e)
	if n.op == "exists" {
		return (len(vals) > 0) != n.negate
	}
	for _, v := range vals {
		if n.match(v) {
			r = true
			break
		}
	}
	return r != n.negate
}

func (n *cmpNode) match(v string) bool {
	switch n.op {
	case "==":
		return v == n.args[0]
	case "in":
		for _, a := range n.args {
			if v == a {
				return true
			}
		}
		return false
	case "=~":
		if r, ok := n.memo.Load(v); ok {
			return r.(bool)
		}
		r := n.re.MatchString(v)
		n.memo.Store(v, r)
		return r
	}
	c := n.compare(v, n.args[0])
	switch n.op {
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	}
	return false
}

// compare orders v against arg by the subject's type: dates, versions,
// numbers, then plain strings.
func (n *cmpNode) compare(v, arg string) int {
	switch n.subj {
	case subjRegisteredAt:
		a, err1 := parseDate(v)
		b, err2 := parseDate(arg)
		if err1 == nil && err2 == nil {
			return a.Compare(b)
		}
	case subjAgentVersion:
		return compareVersions(v, arg)
	}
	if a, err := strconv.ParseFloat(v, 64); err == nil {
		if b, err := strconv.ParseFloat(arg, 64); err == nil {
			switch {
			case a < b:
				return -1
			case a > b:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(v, arg)
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", s)
}

func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
