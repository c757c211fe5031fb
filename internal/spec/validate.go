package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)

// ValidName reports whether s is a valid family, container, volume or cluster name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Launch types and compatibilities.
const (
	EC2      = "EC2"
	Fargate  = "FARGATE"
	External = "EXTERNAL"
)

// StickyVolumesTag names the task-definition tag that marks host volumes whose
// data must stay on the instance that first ran them: a comma-separated list
// of volume names, or "*" for every host volume with a sourcePath.
const StickyVolumesTag = "berth:sticky-volumes"

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ParseCPU converts a task-level cpu string ("1024", "1 vCPU", "0.5 vcpu") to CPU units.
func ParseCPU(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if strings.HasSuffix(t, "vcpu") {
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "vcpu")), 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("invalid cpu %q", s)
		}
		return int(f * 1024), nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid cpu %q", s)
	}
	return n, nil
}

// ParseMemory converts a task-level memory string ("512", "1 GB", "2gb") to MiB.
func ParseMemory(s string) (int, error) {
	t := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if strings.HasSuffix(t, "gb") {
		f, err := strconv.ParseFloat(strings.TrimSuffix(t, "gb"), 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("invalid memory %q", s)
		}
		return int(f * 1024), nil
	}
	t = strings.TrimSuffix(t, "mb")
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid memory %q", s)
	}
	return n, nil
}

// fargateMemory lists the memory sizes (MiB) Fargate allows for each cpu size.
func fargateMemory(cpu int) []int {
	var out []int
	add := func(from, to, step int) {
		for m := from; m <= to; m += step {
			out = append(out, m)
		}
	}
	switch cpu {
	case 256:
		out = []int{512, 1024, 2048}
	case 512:
		add(1024, 4096, 1024)
	case 1024:
		add(2048, 8192, 1024)
	case 2048:
		add(4096, 16384, 1024)
	case 4096:
		add(8192, 30720, 1024)
	case 8192:
		add(16384, 61440, 4096)
	case 16384:
		add(32768, 122880, 8192)
	}
	return out
}

var ulimitNames = []string{"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

func validateEFS(name string, e *EFSVolumeConfiguration) *Error {
	if Val(e.FileSystemId) == "" {
		return ClientErr("efsVolumeConfiguration.fileSystemId is required for volume '%s'.", name)
	}
	if rd := e.RootDirectory; rd != nil && *rd != "" && !strings.HasPrefix(*rd, "/") {
		return ClientErr("Invalid rootDirectory '%s' for volume '%s'. The path must be absolute.", *rd, name)
	}
	te := Val(e.TransitEncryption)
	if te != "" && te != "ENABLED" && te != "DISABLED" {
		return ClientErr("Invalid transitEncryption '%s' for volume '%s'. Valid values are ENABLED and DISABLED.", te, name)
	}
	if p := e.TransitEncryptionPort; p != nil {
		if *p < 0 || *p > 65535 {
			return ClientErr("Invalid transitEncryptionPort %d for volume '%s'.", *p, name)
		}
		if te != "ENABLED" {
			return ClientErr("transitEncryptionPort requires transitEncryption to be ENABLED for volume '%s'.", name)
		}
	}
	if a := e.AuthorizationConfig; a != nil {
		iam := Val(a.Iam)
		if iam != "" && iam != "ENABLED" && iam != "DISABLED" {
			return ClientErr("Invalid authorizationConfig.iam '%s' for volume '%s'. Valid values are ENABLED and DISABLED.", iam, name)
		}
		if Val(a.AccessPointId) != "" {
			if rd := Val(e.RootDirectory); rd != "" && rd != "/" {
				return ClientErr("The root directory must be omitted or set to '/' when an access point is specified for volume '%s'.", name)
			}
			if te != "ENABLED" {
				return ClientErr("Transit encryption must be enabled when an access point is specified for volume '%s'.", name)
			}
		}
		if iam == "ENABLED" && te != "ENABLED" {
			return ClientErr("Transit encryption must be enabled when IAM authorization is used for volume '%s'.", name)
		}
	}
	return nil
}

// dependencyCycle returns a description of a dependsOn cycle, or "".
func dependencyCycle(cs []ContainerDefinition) string {
	deps := map[string][]string{}
	for _, c := range cs {
		for _, d := range c.DependsOn {
			deps[*c.Name] = append(deps[*c.Name], Val(d.ContainerName))
		}
	}
	state := map[string]int{} // 1 visiting, 2 done
	var stack []string
	var visit func(n string) string
	visit = func(n string) string {
		switch state[n] {
		case 1:
			return strings.Join(append(stack, n), " -> ")
		case 2:
			return ""
		}
		state[n] = 1
		stack = append(stack, n)
		for _, d := range deps[n] {
			if c := visit(d); c != "" {
				return c
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return ""
	}
	for _, c := range cs {
		if cyc := visit(*c.Name); cyc != "" {
			return cyc
		}
	}
	return ""
}

// ValidateTags checks resource tags as ECS does.
// logDrivers are ECS's LogDriver values.
var logDrivers = map[string]bool{"json-file": true, "syslog": true, "journald": true, "gelf": true, "fluentd": true, "awslogs": true, "splunk": true, "awsfirelens": true}

func unprintableOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

func ValidateTags(tags []Tag) *Error {
	if len(tags) > 50 {
		return InvalidParam("Too many tags: a resource can have at most 50 tags.")
	}
	seen := map[string]bool{}
	for _, t := range tags {
		k := Val(t.Key)
		if len(k) < 1 || len(k) > 128 {
			return InvalidParam("Tag keys must be between 1 and 128 characters.")
		}
		if len(Val(t.Value)) > 256 {
			return InvalidParam("Tag values must be at most 256 characters.")
		}
		if hasControl(k) || hasControl(Val(t.Value)) || !utf8.ValidString(k) || !utf8.ValidString(Val(t.Value)) {
			return InvalidParam("Tag keys and values must be UTF-8 text without control characters.")
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return InvalidParam("Tag keys may not begin with the reserved prefix 'aws:'.")
		}
		if seen[k] {
			return InvalidParam("Duplicate tag key '%s'.", k)
		}
		seen[k] = true
	}
	return nil
}

// StickyVolumes returns the set of volume names marked sticky by the
// berth:sticky-volumes tag ("*" marks all; resolved by the caller).
func StickyVolumes(tags []Tag) map[string]bool {
	out := map[string]bool{}
	for _, t := range tags {
		if Val(t.Key) != StickyVolumesTag {
			continue
		}
		for _, n := range strings.Split(Val(t.Value), ",") {
			if n = strings.TrimSpace(n); n != "" {
				out[n] = true
			}
		}
	}
	return out
}
