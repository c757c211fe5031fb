package cql

import (
	"fmt"
	"regexp"
	"strings"
)

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tQuoted
	tPunct // ( ) [ ] ,
	tOp    // == != > >= < <= =~ !~ ! && ||
)

type token struct {
	kind tokKind
	text string
	off  int
}

func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, &SyntaxError{i, "unterminated quoted value"}
			}
			toks = append(toks, token{tQuoted, s[i+1 : i+1+j], i})
			i += j + 2
		case strings.IndexByte("()[],", c) >= 0:
			toks = append(toks, token{tPunct, string(c), i})
			i++
		case strings.IndexByte("=!<>&|", c) >= 0:
			op := ""
			for _, cand := range []string{"==", "!=", ">=", "<=", "=~", "!~", "&&", "||", ">", "<", "!"} {
				if strings.HasPrefix(s[i:], cand) {
					op = cand
					break
				}
			}
			if op == "" {
				return nil, &SyntaxError{i, fmt.Sprintf("unexpected character %q", c)}
			}
			if op == "!" {
				// "!in" and "!exists" are operators, not negations.
				rest := s[i+1:]
				for _, w := range []string{"in", "exists"} {
					if strings.HasPrefix(strings.ToLower(rest), w) && (len(rest) == len(w) || isBreak(rest[len(w)])) {
						op = "!" + w
					}
				}
				if op != "!" {
					toks = append(toks, token{tWord, op, i})
					i += len(op)
					continue
				}
			}
			toks = append(toks, token{tOp, op, i})
			i += len(op)
		default:
			j := i
			for j < len(s) && !isBreak(s[j]) {
				j++
			}
			toks = append(toks, token{tWord, s[i:j], i})
			i = j
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

func isBreak(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || strings.IndexByte("()[],=!<>&|'\"", c) >= 0
}

type parser struct {
	toks      []token
	pos       int
	usesTasks bool
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) isWord(t token, words ...string) bool {
	if t.kind != tWord {
		return false
	}
	for _, w := range words {
		if strings.EqualFold(t.text, w) {
			return true
		}
	}
	return false
}

// Parse compiles an expression, or returns a *SyntaxError.
func Parse(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &SyntaxError{0, "empty expression"}
	}
	if len(src) > MaxLength {
		return nil, &SyntaxError{MaxLength, fmt.Sprintf("expression longer than %d characters", MaxLength)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, &SyntaxError{t.off, fmt.Sprintf("unexpected %q", t.text)}
	}
	return &Expr{src: src, root: n, UsesTasks: p.usesTasks}, nil
}

const maxDepth = 100

func (p *parser) or(depth int) (node, error) {
	a, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !(p.isWord(t, "or") || (t.kind == tOp && t.text == "||")) {
			return a, nil
		}
		p.next()
		b, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		a = orNode{a, b}
	}
}

func (p *parser) and(depth int) (node, error) {
	a, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !(p.isWord(t, "and") || (t.kind == tOp && t.text == "&&")) {
			return a, nil
		}
		p.next()
		b, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		a = andNode{a, b}
	}
}

func (p *parser) unary(depth int) (node, error) {
	if depth > maxDepth {
		return nil, &SyntaxError{p.peek().off, "expression nested too deeply"}
	}
	t := p.peek()
	switch {
	case p.isWord(t, "not") || (t.kind == tOp && t.text == "!"):
		p.next()
		a, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notNode{a}, nil
	case t.kind == tPunct && t.text == "(":
		p.next()
		a, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tPunct || c.text != ")" {
			return nil, &SyntaxError{c.off, "expected ')'"}
		}
		return a, nil
	}
	return p.comparison()
}

var subjects = map[string]subject{
	"ec2instanceid":     subjEC2InstanceID,
	"agentconnected":    subjAgentConnected,
	"agentversion":      subjAgentVersion,
	"registeredat":      subjRegisteredAt,
	"runningtaskscount": subjRunningTasksCount,
	"task:group":        subjTaskGroup,
}

func (p *parser) comparison() (node, error) {
	t := p.next()
	if t.kind != tWord {
		if t.kind == tEOF {
			return nil, &SyntaxError{t.off, "expected a subject, found end of expression"}
		}
		return nil, &SyntaxError{t.off, fmt.Sprintf("expected a subject, found %q", t.text)}
	}
	n := &cmpNode{}
	low := strings.ToLower(t.text)
	if strings.HasPrefix(low, "attribute:") {
		n.subj, n.attr = subjAttribute, t.text[len("attribute:"):]
		if n.attr == "" {
			return nil, &SyntaxError{t.off, "attribute name missing after 'attribute:'"}
		}
	} else if s, ok := subjects[low]; ok {
		n.subj = s
		if s == subjTaskGroup || s == subjRunningTasksCount {
			p.usesTasks = true
		}
	} else {
		return nil, &SyntaxError{t.off, fmt.Sprintf("unknown subject %q", t.text)}
	}
	opTok := p.next()
	op := strings.ToLower(opTok.text)
	if opTok.kind != tOp && opTok.kind != tWord {
		return nil, &SyntaxError{opTok.off, fmt.Sprintf("expected an operator after %q", t.text)}
	}
	switch op {
	case "==", ">", ">=", "<", "<=", "=~", "in", "exists":
		n.op = op
	case "!=":
		n.op, n.negate = "==", true
	case "!~":
		n.op, n.negate = "=~", true
	case "!in":
		n.op, n.negate = "in", true
	case "!exists":
		n.op, n.negate = "exists", true
	default:
		return nil, &SyntaxError{opTok.off, fmt.Sprintf("expected an operator after %q, found %q", t.text, opTok.text)}
	}
	switch n.op {
	case "exists":
		return n, nil
	case "in":
		if b := p.next(); b.kind != tPunct || (b.text != "[" && b.text != "(") {
			return nil, &SyntaxError{b.off, "expected '[' to open the list after 'in'"}
		} else {
			closer := map[string]string{"[": "]", "(": ")"}[b.text]
			for {
				v := p.next()
				if v.kind != tWord && v.kind != tQuoted {
					return nil, &SyntaxError{v.off, "expected a value in the list"}
				}
				n.args = append(n.args, v.text)
				sep := p.next()
				if sep.kind == tPunct && sep.text == closer {
					break
				}
				if sep.kind != tPunct || sep.text != "," {
					return nil, &SyntaxError{sep.off, fmt.Sprintf("expected ',' or '%s' in the list", closer)}
				}
			}
		}
	default:
		v := p.next()
		if v.kind != tWord && v.kind != tQuoted {
			return nil, &SyntaxError{v.off, fmt.Sprintf("expected a value after %q", opTok.text)}
		}
		n.args = []string{v.text}
	}
	if n.op == "=~" {
		re, err := regexp.Compile(n.args[0])
		if err != nil {
			return nil, &SyntaxError{opTok.off, fmt.Sprintf("invalid regular expression %q", n.args[0])}
		}
		n.re = re
	}
	if n.subj == subjRegisteredAt && n.op != "exists" {
		for _, a := range n.args {
			if _, err := parseDate(a); err != nil {
				return nil, &SyntaxError{opTok.off, fmt.Sprintf("registeredAt needs a date (2006-01-02 or RFC 3339), not %q", a)}
			}
		}
	}
	return n, nil
}
