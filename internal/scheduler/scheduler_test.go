package scheduler

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"testing/quick"

	"github.com/berth-project/berth/internal/cql"
)

func inst(id string, cpu, mem int, attrs ...string) *Instance {
	a := map[string]string{}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	return &Instance{ID: id, ARN: "arn:" + id, Status: "ACTIVE", AgentConnected: true, Attributes: a, CPU: cpu, Memory: mem,
		UsedPorts: map[string]bool{}, Groups: map[string]int{}}
}

func memberOf(t *testing.T, s string) Constraint {
	e, err := cql.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return Constraint{Type: "memberOf", Expr: e}
}

func TestFiltersAndFailureReasons(t *testing.T) {
	busyPort := inst("ports", 4096, 4096)
	busyPort.UsedPorts["80/tcp"] = true
	draining := inst("draining", 4096, 4096)
	draining.Status = "DRAINING"
	gone := inst("gone", 4096, 4096)
	gone.AgentConnected = false
	cases := []struct {
		name   string
		in     *Instance
		req    Request
		reason string
	}{
		{"cpu", inst("a", 100, 4096), Request{CPU: 200}, ReasonCPU},
		{"memory", inst("a", 4096, 100), Request{Memory: 200}, ReasonMemory},
		{"ports", busyPort, Request{Ports: []string{"80/tcp"}}, ReasonPorts},
		{"agent", gone, Request{}, ReasonAgent},
		{"draining", draining, Request{}, ReasonInactive},
		{"required attribute", inst("a", 4096, 4096), Request{RequiredAttributes: map[string]string{"ecs.capability.efs": ""}}, ReasonAttribute},
		{"memberOf", inst("a", 4096, 4096, "zone", "b"), Request{Constraints: []Constraint{memberOf(t, "attribute:zone == a")}}, ReasonAttribute},
		{"fits", inst("a", 4096, 4096, "zone", "a"), Request{CPU: 10, Memory: 10, Ports: []string{"81/tcp"}, Constraints: []Constraint{memberOf(t, "attribute:zone == a")}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Count = 1
			p := Place(&Snapshot{Instances: []*Instance{c.in}}, &c.req, rand.New(rand.NewSource(1)))
			if c.reason == "" {
				if len(p.Placements) != 1 || len(p.Failures) != 0 {
					t.Fatalf("plan %+v", p)
				}
				return
			}
			if len(p.Placements) != 0 || len(p.Failures) != 1 || p.Failures[0].Reason != c.reason || p.Failures[0].InstanceARN != c.in.ARN {
				t.Fatalf("plan %+v, want failure %s", p, c.reason)
			}
		})
	}
}

func TestDistinctInstanceAndTaskGroup(t *testing.T) {
	a, b := inst("a", 4096, 4096), inst("b", 4096, 4096)
	b.Groups["g"] = 1
	s := &Snapshot{Instances: []*Instance{a, b}}
	p := Place(s, &Request{Count: 2, Group: "g", Constraints: []Constraint{{Type: "distinctInstance"}}}, rand.New(rand.NewSource(1)))
	if len(p.Placements) != 1 || p.Placements[0] != "a" || len(p.Failures) != 2 {
		t.Fatalf("distinctInstance: %+v", p)
	}
	// memberOf on task:group follows tasks placed by this very plan.
	p = Place(s, &Request{Count: 3, Group: "g", Constraints: []Constraint{memberOf(t, "not(task:group == g)")}}, rand.New(rand.NewSource(1)))
	if len(p.Placements) != 1 || p.Placements[0] != "a" {
		t.Fatalf("task:group memberOf: %+v", p)
	}
}

func TestStrategies(t *testing.T) {
	mk := func() *Snapshot {
		a := inst("a", 4096, 1000, "zone", "z1")
		b := inst("b", 4096, 3000, "zone", "z1")
		c := inst("c", 4096, 2000, "zone", "z2")
		return &Snapshot{Instances: []*Instance{a, b, c}}
	}
	rng := func() *rand.Rand { return rand.New(rand.NewSource(7)) }
	// binpack memory fills the fullest instance first.
	p := Place(mk(), &Request{Count: 3, Memory: 300, Strategies: []Strategy{{Type: "binpack", Field: "memory"}}}, rng())
	if fmt.Sprint(p.Placements) != "[a a a]" {
		t.Fatalf("binpack memory: %v", p.Placements)
	}
	// spread on zone alternates zones, binpack breaks the tie inside a zone.
	p = Place(mk(), &Request{Count: 4, Memory: 100, Group: "g", Strategies: []Strategy{{Type: "spread", Field: "attribute:zone"}, {Type: "binpack", Field: "memory"}}}, rng())
	if fmt.Sprint(p.Placements) != "[a c a c]" {
		t.Fatalf("spread zone + binpack: %v", p.Placements)
	}
	// spread on instanceId puts one task on each before doubling up.
	p = Place(mk(), &Request{Count: 3, Group: "g", Strategies: []Strategy{{Type: "spread", Field: "instanceId"}}}, rng())
	got := append([]string(nil), p.Placements...)
	sort.Strings(got)
	if fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("spread instanceId: %v", p.Placements)
	}
	// binpack cpu with equal cpu falls through to the next strategy.
	p = Place(mk(), &Request{Count: 1, CPU: 10, Strategies: []Strategy{{Type: "binpack", Field: "cpu"}, {Type: "binpack", Field: "memory"}}}, rng())
	if fmt.Sprint(p.Placements) != "[a]" {
		t.Fatalf("binpack cpu then memory: %v", p.Placements)
	}
	// random covers every instance over many draws.
	seen := map[string]bool{}
	r := rng()
	for i := 0; i < 100; i++ {
		seen[Place(mk(), &Request{Count: 1, Strategies: []Strategy{{Type: "random"}}}, r).Placements[0]] = true
	}
	if len(seen) != 3 {
		t.Fatalf("random reached %v", seen)
	}
}

func TestDataResidency(t *testing.T) {
	a, b := inst("a", 4096, 1024), inst("b", 4096, 4096)
	data := []DataRequirement{{Key: "docker-volume/pg", Volume: "pg"}}
	// Unclaimed data: the plan claims it where the first task lands, and
	// later tasks of the same plan follow it.
	p := Place(&Snapshot{Instances: []*Instance{a, b}}, &Request{Count: 3, Memory: 100, Data: data, Strategies: []Strategy{{Type: "spread", Field: "instanceId"}}}, rand.New(rand.NewSource(3)))
	if len(p.Placements) != 3 || p.Placements[0] != p.Placements[1] || p.Placements[1] != p.Placements[2] || p.Claims["docker-volume/pg"] != p.Placements[0] {
		t.Fatalf("claim: %+v", p)
	}
	// Claimed data: only its instance qualifies, even when it is full.
	p = Place(&Snapshot{Instances: []*Instance{a, b}, Residency: map[string]string{"docker-volume/pg": "a"}}, &Request{Count: 1, Memory: 2048, Data: data}, rand.New(rand.NewSource(3)))
	if len(p.Placements) != 0 || len(p.Failures) != 2 {
		t.Fatalf("residency: %+v", p)
	}
	for _, f := range p.Failures {
		if (f.InstanceID == "a" && f.Reason != ReasonMemory) || (f.InstanceID == "b" && (f.Reason != ReasonAttribute || f.Detail != "volume 'pg' has its data on container instance a")) {
			t.Fatalf("failure %+v", f)
		}
	}
	if len(p.Claims) != 0 {
		t.Fatalf("claimed already-resident data: %v", p.Claims)
	}
}

func TestCandidates(t *testing.T) {
	a, b := inst("a", 4096, 4096), inst("b", 100, 100)
	p := Place(&Snapshot{Instances: []*Instance{a, b}}, &Request{Count: 3, Memory: 200, Candidates: []string{"b", "a", "x"}}, rand.New(rand.NewSource(1)))
	if fmt.Sprint(p.Placements) != "[a]" || len(p.Failures) != 2 {
		t.Fatalf("candidates: %+v", p)
	}
}

// TestNeverOvercommits is a property test: over random clusters and random
// requests, a plan never reserves more CPU or memory than an instance has,
// never reuses a host port, and never puts data-resident tasks elsewhere.
func TestNeverOvercommits(t *testing.T) {
	prop := func(seed int64) bool {
		r := rand.New(rand.NewSource(seed))
		n := 1 + r.Intn(20)
		s := &Snapshot{Residency: map[string]string{}}
		for i := 0; i < n; i++ {
			in := inst(fmt.Sprintf("i%d", i), r.Intn(4096), r.Intn(4096), "zone", fmt.Sprintf("z%d", r.Intn(3)))
			if r.Intn(3) == 0 {
				in.UsedPorts["80/tcp"] = true
			}
			s.Instances = append(s.Instances, in)
		}
		if r.Intn(2) == 0 {
			s.Residency["docker-volume/v"] = s.Instances[r.Intn(n)].ID
		}
		req := &Request{Count: 1 + r.Intn(10), CPU: r.Intn(1024), Memory: r.Intn(1024), Group: "g"}
		if r.Intn(2) == 0 {
			req.Ports = []string{"80/tcp"}
		}
		if r.Intn(2) == 0 {
			req.Data = []DataRequirement{{Key: "docker-volume/v", Volume: "v"}}
		}
		strategies := []Strategy{{Type: "random"}, {Type: "binpack", Field: "cpu"}, {Type: "binpack", Field: "memory"}, {Type: "spread", Field: "instanceId"}, {Type: "spread", Field: "attribute:zone"}}
		for k := r.Intn(3); k > 0; k-- {
			req.Strategies = append(req.Strategies, strategies[r.Intn(len(strategies))])
		}
		p := Place(s, req, r)
		byID := map[string]*Instance{}
		for _, in := range s.Instances {
			byID[in.ID] = in
		}
		count := map[string]int{}
		holder := s.Residency["docker-volume/v"]
		for _, id := range p.Placements {
			count[id]++
			if req.Data != nil {
				if holder == "" {
					holder = id
				}
				if id != holder {
					return false
				}
			}
		}
		for id, c := range count {
			in := byID[id]
			if c*req.CPU > in.CPU || c*req.Memory > in.Memory {
				return false
			}
			if len(req.Ports) > 0 && (c > 1 || in.UsedPorts["80/tcp"]) {
				return false
			}
		}
		return len(p.Placements)+boolInt(len(p.Failures) > 0) >= 1 || req.Count == 0
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// snapshot1000 is a 1,000-instance cluster over three zones.
func snapshot1000() *Snapshot {
	r := rand.New(rand.NewSource(42))
	s := &Snapshot{}
	for i := 0; i < 1000; i++ {
		in := inst(fmt.Sprintf("%032x", i), 4096, 8192, "ecs.availability-zone", fmt.Sprintf("us-east-1%c", 'a'+i%3),
			"ecs.instance-type", []string{"m5.large", "t2.small", "c5.xlarge"}[r.Intn(3)], "ecs.os-type", "linux")
		s.Instances = append(s.Instances, in)
	}
	return s
}

// BenchmarkPlace measures pure placements per second on a 1,000-instance
// snapshot with a memberOf constraint and spread+binpack strategies, ten
// tasks per call as RunTask's largest count.
func BenchmarkPlace(b *testing.B) {
	s := snapshot1000()
	e, err := cql.Parse("attribute:ecs.instance-type =~ '^(m5|c5)\\.' and attribute:ecs.os-type == linux")
	if err != nil {
		b.Fatal(err)
	}
	req := &Request{Count: 10, CPU: 256, Memory: 512, Group: "g", Constraints: []Constraint{{Type: "memberOf", Expr: e}},
		Strategies: []Strategy{{Type: "spread", Field: "attribute:ecs.availability-zone"}, {Type: "binpack", Field: "memory"}}}
	rng := rand.New(rand.NewSource(1))
	b.ResetTimer()
	placed := 0
	for i := 0; i < b.N; i++ {
		placed += len(Place(s, req, rng).Placements)
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}
