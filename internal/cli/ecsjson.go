package cli

import (
	"io"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berth-project/berth/internal/spec"
)

// printECS prints AWS SDK values (tasks, instances, services) in ECS's
// own JSON shape, as the AWS CLI prints them: camelCase members, RFC 3339
// times, absent members left out; map keys (labels, options) as they are.
// Berth's own records (volumes, snapshots) keep their json names and get
// RFC 3339 times too.
func printECS(w io.Writer, v any) error { return printJSON(w, ecsShape(reflect.ValueOf(v))) }

var (
	timeType      = reflect.TypeOf(time.Time{})
	timestampType = reflect.TypeOf(spec.Timestamp{})
)

func ecsShape(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		switch v.Type() {
		case timeType:
			return v.Interface().(time.Time).UTC().Format(time.RFC3339Nano)
		case timestampType:
			return v.Interface().(spec.Timestamp).UTC().Format(time.RFC3339Nano)
		}
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Name == "ResultMetadata" {
				continue
			}
			fv := v.Field(i)
			switch fv.Kind() {
			case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
				if fv.IsNil() {
					continue
				}
			}
			// Berth's own records name their members in json tags.
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || strings.Contains(opts, "omitempty") && fv.IsZero() {
				continue
			}
			if name == "" {
				name = lowerFirst(f.Name)
			}
			if f.Anonymous && fv.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
				for k, x := range ecsShape(fv).(map[string]any) {
					out[k] = x
				}
				continue
			}
			out[name] = ecsShape(fv)
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = ecsShape(v.MapIndex(k))
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = ecsShape(v.Index(i))
		}
		return out
	}
	return v.Interface()
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
