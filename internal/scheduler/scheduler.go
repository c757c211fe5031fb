// Package scheduler places tasks on container instances. It is a pure
// function over a Snapshot: no I/O, and randomness comes in through the
// caller's *rand.Rand. The plan it returns is committed (or retried) by the
// plan applier in package server; the scheduler never writes anything.
//
// Placement runs in two steps for each task: feasibility (a list of filters,
// each able to reject an instance with an ECS failure reason) and ranking
// (the request's strategies, in order, as tie-breakers). Instance-local data
// is one filter among the others: a DataRequirement pins a task to the
// instance (and later the zone) that holds the data it needs.
package scheduler

import (
	"math/rand"
	"sort"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/cql"
)

// Failure reasons, as ECS reports them in RunTask's failures[].
const (
	ReasonCPU       = "RESOURCE:CPU"
	ReasonMemory    = "RESOURCE:MEMORY"
	ReasonPorts     = "RESOURCE:PORTS"
	ReasonAttribute = "ATTRIBUTE"
	ReasonAgent     = "AGENT"
	ReasonMissing   = "MISSING"
	ReasonInactive  = "INACTIVE"
)

// Instance is a container instance as the scheduler sees it. Treat it as
// immutable: Place copies what it changes.
type Instance struct {
	ID             string // container instance id
	ARN            string
	EC2InstanceID  string
	Status         string // ACTIVE, DRAINING, ...
	AgentConnected bool
	AgentVersion   string
	RegisteredAt   time.Time
	Attributes     map[string]string
	CPU            int             // remaining CPU units
	Memory         int             // remaining MiB
	UsedPorts      map[string]bool // "80/tcp" already reserved
	RunningTasks   int             // tasks placed and not stopped
	Groups         map[string]int  // task group -> tasks on the instance
	Rev            int64           // opaque version for the plan applier
}

// Snapshot is the cluster state a placement is computed against.
type Snapshot struct {
	Instances []*Instance
	// Residency maps a data key to the id of the instance holding that data.
	Residency map[string]string
}

// Constraint is a placement constraint: distinctInstance or memberOf.
type Constraint struct {
	Type string // "distinctInstance" or "memberOf"
	Expr *cql.Expr
}

// Strategy is a placement strategy: spread, binpack or random.
type Strategy struct {
	Type  string // "spread", "binpack", "random"
	Field string // instanceId, host, attribute:NAME, cpu, memory
}

// DataRequirement is instance-local data a task must run next to.
type DataRequirement struct {
	Key    string // residency key, e.g. "docker-volume/db"
	Volume string // task-definition volume name, for failure details
}

// Request asks for Count tasks of one shape.
type Request struct {
	Count       int
	Group       string
	CPU, Memory int
	Ports       []string
	// RequiredAttributes must exist on the instance; a non-empty value must match.
	RequiredAttributes map[string]string
	Constraints        []Constraint
	Strategies         []Strategy
	Data               []DataRequirement
	// Zones limits placement to instances in zones where each shared file
	// system the task mounts has a mount target.
	Zones []ZoneRequirement
	// Candidates, when set, limits placement to these instance ids in this
	// order (StartTask): each task goes to the next candidate.
	Candidates []string
	// Fargate places on instances that offer Fargate capacity; otherwise
	// instances reserved for Fargate are left out.
	Fargate bool
}

// CapacityAttribute is the attribute an agent sets to say which tasks it
// takes: "EC2", "FARGATE" or both ("EC2 FARGATE", also what an instance
// without the attribute takes).
const CapacityAttribute = "berth.capacity"

// Offers reports whether an instance with these attributes takes
// Fargate tasks (fargate) or the others.
func Offers(attrs map[string]string, fargate bool) bool {
	v, ok := attrs[CapacityAttribute]
	if !ok {
		return true
	}
	want := "EC2"
	if fargate {
		want = "FARGATE"
	}
	for _, c := range strings.Fields(v) {
		if c == want {
			return true
		}
	}
	return false
}

// ZoneRequirement is a volume whose file system can be mounted only in
// some zones.
type ZoneRequirement struct {
	Volume, FileSystem string
	Zones              map[string]bool
	// Why names the requirement in a failure when it is not a file
	// system's (the task's subnets).
	Why string
}

// Failure explains why an instance could not take a task.
type Failure struct {
	InstanceID  string
	InstanceARN string
	Reason      string
	Detail      string
}

// Plan is the scheduler's proposal: one instance id per placed task, the
// data keys newly claimed by this plan, and failures for tasks not placed.
type Plan struct {
	Placements []string
	Claims     map[string]string
	Failures   []Failure
}

// maxStrategies is ECS's limit of placement strategies per call.
const maxStrategies = 5

type cand struct {
	in       *Instance
	cpu, mem int
	used     map[string]bool // ports added by this plan
	groups   int             // tasks of the request's group (incl. this plan)
	running  int
	static   Failure              // zero Reason when statically feasible
	attr     [maxStrategies]int32 // per spread-by-attribute strategy: index of the value
}

// Place computes a plan for r against s. It never mutates s.
func Place(s *Snapshot, r *Request, rng *rand.Rand) *Plan {
	plan := &Plan{Claims: map[string]string{}}
	strategies := r.Strategies
	if len(strategies) > maxStrategies {
		strategies = strategies[:maxStrategies]
	}
	cands := make([]cand, len(s.Instances))
	var feasible []*cand
	env := &cql.Env{}
	for i, in := range s.Instances {
		c := &cands[i]
		*c = cand{in: in, cpu: in.CPU, mem: in.Memory, groups: in.Groups[r.Group], running: in.RunningTasks}
		c.static = staticCheck(s, r, in, env)
		if c.static.Reason == "" {
			feasible = append(feasible, c)
		}
	}
	// Spread-by-attribute counts tasks of the group per attribute value,
	// over every instance, feasible or not.
	var spread [maxStrategies][]int
	for i, st := range strategies {
		if st.Type != "spread" || !isAttr(st.Field) {
			continue
		}
		name := st.Field[len("attribute:"):]
		index := map[string]int32{}
		for j := range cands {
			c := &cands[j]
			v := c.in.Attributes[name]
			idx, ok := index[v]
			if !ok {
				idx = int32(len(index))
				index[v] = idx
				spread[i] = append(spread[i], 0)
			}
			c.attr[i] = idx
			spread[i][idx] += c.groups
		}
	}
	byID := func(id string) *cand {
		for j := range cands {
			if cands[j].in.ID == id {
				return &cands[j]
			}
		}
		return nil
	}
	dynamic := needsDynamicCheck(r)
	var keys, best [maxStrategies + 1]float64
	nkeys := max(len(strategies), 1)
	for t := 0; t < r.Count; t++ {
		var pick *cand
		pool := feasible
		if len(r.Candidates) > 0 {
			if t >= len(r.Candidates) {
				break
			}
			c := byID(r.Candidates[t])
			if c == nil {
				plan.Failures = append(plan.Failures, Failure{InstanceID: r.Candidates[t], Reason: ReasonMissing})
				continue
			}
			if c.static.Reason != "" {
				plan.Failures = append(plan.Failures, c.static)
				continue
			}
			pool = []*cand{c}
		}
		for _, c := range pool {
			if f := dynamicCheck(r, c, plan, dynamic); f.Reason != "" {
				continue
			}
			for i, st := range strategies {
				keys[i] = score(st, c, spread[i], i, rng)
			}
			if len(strategies) == 0 {
				keys[0] = rng.Float64()
			}
			if pick == nil || less(keys[:nkeys], best[:nkeys]) {
				pick = c
				best = keys
			}
		}
		if pick == nil {
			if len(r.Candidates) > 0 {
				plan.Failures = append(plan.Failures, dynamicCheck(r, pool[0], plan, dynamic))
				continue
			}
			plan.Failures = append(plan.Failures, explain(r, cands, plan, dynamic)...)
			break // nothing changes for the remaining tasks
		}
		pick.cpu -= r.CPU
		pick.mem -= r.Memory
		for _, p := range r.Ports {
			if pick.used == nil {
				pick.used = map[string]bool{}
			}
			pick.used[p] = true
		}
		pick.groups++
		pick.running++
		for i := range strategies {
			if spread[i] != nil {
				spread[i][pick.attr[i]]++
			}
		}
		for _, d := range r.Data {
			if _, ok := s.Residency[d.Key]; !ok {
				plan.Claims[d.Key] = pick.in.ID
			}
		}
		plan.Placements = append(plan.Placements, pick.in.ID)
	}
	plan.Failures = dedupe(plan.Failures)
	return plan
}

func isAttr(f string) bool {
	return len(f) > len("attribute:") && f[:len("attribute:")] == "attribute:"
}

func less(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// score returns the strategy's key for placing on c: lower is better.
func score(st Strategy, c *cand, counts []int, i int, rng *rand.Rand) float64 {
	switch st.Type {
	case "binpack":
		if st.Field == "cpu" {
			return float64(c.cpu)
		}
		return float64(c.mem)
	case "spread":
		if counts != nil {
			return float64(counts[c.attr[i]])
		}
		return float64(c.groups)
	}
	return rng.Float64()
}

// staticCheck applies the filters whose answer does not change as this
// plan places tasks.
func staticCheck(s *Snapshot, r *Request, in *Instance, env *cql.Env) Failure {
	f := Failure{InstanceID: in.ID, InstanceARN: in.ARN}
	if in.Status != "ACTIVE" {
		f.Reason = ReasonInactive
		if in.Status == "DRAINING" {
			f.Detail = "container instance is DRAINING"
		}
		return f
	}
	if !in.AgentConnected {
		f.Reason = ReasonAgent
		return f
	}
	for name, want := range r.RequiredAttributes {
		got, ok := in.Attributes[name]
		if !ok || (want != "" && got != want) {
			f.Reason, f.Detail = ReasonAttribute, "missing attribute "+name
			return f
		}
	}
	if !Offers(in.Attributes, r.Fargate) {
		f.Reason, f.Detail = ReasonAttribute, "container instance offers no Fargate capacity"
		if !r.Fargate {
			f.Detail = "container instance is reserved for Fargate tasks"
		}
		return f
	}
	for _, z := range r.Zones {
		if zone := in.Attributes["ecs.availability-zone"]; !z.Zones[zone] {
			f.Reason = ReasonAttribute
			f.Detail = "EFS file system " + z.FileSystem + " of volume '" + z.Volume + "' has no mount target in zone " + zone
			if z.FileSystem == "" {
				f.Detail = "zone " + zone + " is not one of " + z.Why
			}
			return f
		}
	}
	for _, d := range r.Data {
		if holder, ok := s.Residency[d.Key]; ok && holder != in.ID {
			f.Reason = ReasonAttribute
			f.Detail = "volume '" + d.Volume + "' has its data on container instance " + holder
			return f
		}
	}
	filled := false
	for _, c := range r.Constraints {
		if c.Type == "memberOf" && !c.Expr.UsesTasks {
			if !filled {
				*env = *envOf(in, in.RunningTasks, in.Groups)
				filled = true
			}
			if !c.Expr.Match(env) {
				f.Reason, f.Detail = ReasonAttribute, "memberOf("+c.Expr.String()+") not satisfied"
				return f
			}
		}
	}
	return Failure{}
}

func needsDynamicCheck(r *Request) bool {
	for _, c := range r.Constraints {
		if c.Type == "distinctInstance" || c.Expr.UsesTasks {
			return true
		}
	}
	return false
}

// dynamicCheck applies the filters that depend on what this plan placed.
func dynamicCheck(r *Request, c *cand, plan *Plan, constraints bool) Failure {
	f := Failure{InstanceID: c.in.ID, InstanceARN: c.in.ARN}
	if c.cpu < r.CPU {
		f.Reason = ReasonCPU
		return f
	}
	if c.mem < r.Memory {
		f.Reason = ReasonMemory
		return f
	}
	for _, p := range r.Ports {
		if c.in.UsedPorts[p] || c.used[p] {
			f.Reason, f.Detail = ReasonPorts, "host port "+p+" in use"
			return f
		}
	}
	for _, d := range r.Data {
		if holder, ok := plan.Claims[d.Key]; ok && holder != c.in.ID {
			f.Reason = ReasonAttribute
			f.Detail = "volume '" + d.Volume + "' has its data on container instance " + holder
			return f
		}
	}
	if constraints {
		for _, con := range r.Constraints {
			switch {
			case con.Type == "distinctInstance":
				if c.groups > 0 {
					f.Reason, f.Detail = ReasonAttribute, "distinctInstance: a task of group '"+r.Group+"' already runs here"
					return f
				}
			case con.Expr.UsesTasks:
				groups := c.in.Groups
				if c.groups != c.in.Groups[r.Group] {
					groups = make(map[string]int, len(c.in.Groups)+1)
					for k, v := range c.in.Groups {
						groups[k] = v
					}
					groups[r.Group] = c.groups
				}
				if !con.Expr.Match(envOf(c.in, c.running, groups)) {
					f.Reason, f.Detail = ReasonAttribute, "memberOf("+con.Expr.String()+") not satisfied"
					return f
				}
			}
		}
	}
	return Failure{}
}

func envOf(in *Instance, running int, groups map[string]int) *cql.Env {
	return &cql.Env{
		Attributes: in.Attributes, EC2InstanceID: in.EC2InstanceID, AgentConnected: in.AgentConnected,
		AgentVersion: in.AgentVersion, RegisteredAt: in.RegisteredAt, RunningTasksCount: running, TaskGroups: groups,
	}
}

func explain(r *Request, cands []cand, plan *Plan, dynamic bool) []Failure {
	out := make([]Failure, 0, len(cands))
	for i := range cands {
		c := &cands[i]
		if c.static.Reason != "" {
			out = append(out, c.static)
		} else if f := dynamicCheck(r, c, plan, dynamic); f.Reason != "" {
			out = append(out, f)
		}
	}
	return out
}

func dedupe(fs []Failure) []Failure {
	seen := map[[3]string]bool{}
	out := fs[:0]
	for _, f := range fs {
		k := [3]string{f.InstanceID, f.Reason, f.Detail}
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out
}
