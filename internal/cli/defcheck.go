package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/berth-project/berth/internal/spec"
)

// checkParams refuses a definition file with a member the API does not
// have, as the AWS CLI does: Unknown parameter in containerDefinitions[0]:
// "comand", must be one of: ….
func checkParams(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return unknownParam(v, reflect.TypeOf(spec.RegisterTaskDefinitionRequest{}), "")
}

func unknownParam(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a wrong type is the API's to report
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields[name] = t.Field(i).Type
				names = append(names, name)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				where := "input"
				if path != "" {
					where = path
				}
				//lint:ignore ST1005 the AWS CLI's own words
				return fmt.Errorf("Unknown parameter in %s: %q, must be one of: %s", where, k, strings.Join(names, ", "))
			}
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if err := unknownParam(m[k], ft, sub); err != nil {
				return err
			}
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range l {
			if err := unknownParam(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// SourceTag is the task definition tag berth run keeps the SHA-256 of
// the file it registered in, so that running the same file again uses
// the same revision.
const SourceTag = "berth:source-sha256"

// sourceSum is the SHA-256 of a definition file's content, its JSON made
// canonical (keys sorted, no white space).
func sourceSum(raw []byte) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		v = string(raw)
	}
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
