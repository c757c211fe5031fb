package fsmeta

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Event tells mounts that something changed, so they drop cached entries,
// attributes or pages. By is the session that made the change (empty for
// deletions), so a mount can skip its own.
type Event struct {
	Ino    uint64 `json:"i,omitempty"`
	Parent uint64 `json:"p,omitempty"`
	Name   string `json:"n,omitempty"`
	Data   bool   `json:"d,omitempty"`
	By     string `json:"by,omitempty"`
}

// WatchPrefix is the prefix a server watches to produce a file system's events.
func WatchPrefix(fs string) string { return fsPrefix(fs) }

// EventFor turns a changed key into an event; ok is false for keys mounts
// need not hear about.
func EventFor(fs, key string, val []byte) (Event, bool) {
	rest, found := strings.CutPrefix(key, fsPrefix(fs))
	if !found {
		return Event{}, false
	}
	var by struct {
		By string `json:"by"`
	}
	if len(val) > 0 {
		json.Unmarshal(val, &by)
	}
	kind, rest, _ := strings.Cut(rest, "/")
	switch kind {
	case "i":
		is, _, _ := strings.Cut(rest, "/")
		ino, err := strconv.ParseUint(is, 16, 64)
		return Event{Ino: ino, By: by.By}, err == nil
	case "b":
		is, _, _ := strings.Cut(rest, "/")
		ino, err := strconv.ParseUint(is, 16, 64)
		return Event{Ino: ino, Data: true, By: by.By}, err == nil
	case "d":
		ps, name, _ := strings.Cut(rest, "/")
		p, err := strconv.ParseUint(ps, 16, 64)
		return Event{Parent: p, Name: name, By: by.By}, err == nil
	}
	return Event{}, false
}
