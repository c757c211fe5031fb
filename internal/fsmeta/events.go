package fsmeta

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/fsproto"
	"github.com/berth-project/berth/internal/state"
)

// WatchPrefix is the prefix a server watches to produce a file system's events.
func WatchPrefix(fs string) string { return state.FSMetaPrefix(fs) }

// EventFor turns a changed key into an event; ok is false for keys mounts
// need not hear about.
func EventFor(fs, key string, val []byte) (fsproto.Event, bool) {
	rest, found := strings.CutPrefix(key, state.FSMetaPrefix(fs))
	if !found {
		return fsproto.Event{}, false
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
		return fsproto.Event{Ino: ino, By: by.By}, err == nil
	case "b":
		is, _, _ := strings.Cut(rest, "/")
		ino, err := strconv.ParseUint(is, 16, 64)
		return fsproto.Event{Ino: ino, Data: true, By: by.By}, err == nil
	case "d":
		ps, name, _ := strings.Cut(rest, "/")
		p, err := strconv.ParseUint(ps, 16, 64)
		return fsproto.Event{Parent: p, Name: name, By: by.By}, err == nil
	}
	return fsproto.Event{}, false
}
