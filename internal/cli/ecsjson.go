package cli

import (
	"io"
	"reflect"
	"time"
	"unicode"
	"unicode/utf8"
)

// printECS prints AWS SDK values (tasks, instances, services) in ECS's
// own JSON shape, as the AWS CLI prints them: camelCase members, RFC 3339
// times, absent members left out; map keys (labels, options) as they are.
func printECS(w io.Writer, v any) error { return printJSON(w, ecsShape(reflect.ValueOf(v))) }

var timeType = reflect.TypeOf(time.Time{})

func ecsShape(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			return v.Interface().(time.Time).UTC().Format(time.RFC3339Nano)
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
			out[lowerFirst(f.Name)] = ecsShape(fv)
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
