// Package spec holds Berth's domain types: the ECS wire shapes (generated
// from the ECS model into wire_gen.go), their validation and the resource
// arithmetic the scheduler needs. It does no I/O.
package spec

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"time"
)

// Timestamp is an instant encoded as awsJson1.1 does: fractional epoch seconds.
type Timestamp struct{ time.Time }

// TS returns a pointer to the Timestamp for t.
func TS(t time.Time) *Timestamp { return &Timestamp{t} }

// MarshalJSON encodes the instant as epoch seconds with millisecond precision.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)), nil
}

// UnmarshalJSON accepts epoch seconds (number) or an RFC 3339 string.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		sec, frac := math.Modf(f)
		t.Time = time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6).UTC()
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = p
	return nil
}

// Str returns a pointer to s.
func Str(s string) *string { return &s }

// I32 returns a pointer to n.
func I32(n int32) *int32 { return &n }

// I64 returns a pointer to n.
func I64(n int64) *int64 { return &n }

// Bool returns a pointer to b.
func Bool(b bool) *bool { return &b }

// Val returns *p or the zero value when p is nil.
func Val[T any](p *T) T {
	if p == nil {
		var z T
		return z
	}
	return *p
}

// EmptyLists gives a response's nil top-level lists an empty value, so
// they are written as [] the way ECS writes them ({"taskArns": []}, not {}).
func EmptyLists(resp any) {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	v = v.Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Slice && f.IsNil() && f.CanSet() {
			f.Set(reflect.MakeSlice(f.Type(), 0, 0))
		}
	}
}
