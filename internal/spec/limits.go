package spec

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// ECS's documented size limits, checked before anything is written. With
// them every stored record stays far below etcd's request limit (1.5 MiB):
// a task definition is at most 64 KiB, and a task record holds at most
// 8,192 characters of overrides and 50 tags.
const (
	MaxTaskDefinitionBytes = 64 << 10
	MaxOverrideChars       = 8192
	// MaxReservedPorts is how many host ports an instance may reserve in
	// each of its PORTS and PORTS_UDP resources.
	MaxReservedPorts = 100
	// MaxInstanceAttributes bounds the attributes an instance registers
	// with (ECS agents register a few dozen capabilities).
	MaxInstanceAttributes = 256
)

// CheckTaskDefinitionSize refuses a task definition over 64 KiB of JSON.
func CheckTaskDefinitionSize(r *RegisterTaskDefinitionRequest) *Error {
	b, err := json.Marshal(r)
	if err != nil {
		return InvalidParam("The task definition cannot be encoded.")
	}
	if len(b) > MaxTaskDefinitionBytes {
		return Exception("ClientException", "Actual length: '%d'. Max allowed length is '%d' bytes.", len(b), MaxTaskDefinitionBytes)
	}
	return nil
}

// CheckOverridesSize refuses container overrides over ECS's 8,192
// characters (JSON included).
func CheckOverridesSize(o *TaskOverride) *Error {
	if o == nil || len(o.ContainerOverrides) == 0 {
		return nil
	}
	b, err := json.Marshal(o.ContainerOverrides)
	if err != nil {
		return InvalidParam("The container overrides cannot be encoded.")
	}
	if len(b) > MaxOverrideChars {
		return InvalidParam("Container Overrides length must be at most %d", MaxOverrideChars)
	}
	return nil
}

// TooLarge is the error for a request body over a limit.
func TooLarge(limit int64) *Error {
	return &Error{Code: "SerializationException", Message: fmt.Sprintf("The request body is too large: the limit is %d bytes.", limit)}
}

// ReadBody reads a request body of at most limit bytes; a longer one is
// refused as too large rather than cut short.
func ReadBody(r io.Reader, limit int64) ([]byte, *Error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, &Error{Code: "SerializationException", Message: "Unable to read the request body."}
	}
	if int64(len(b)) > limit {
		return nil, TooLarge(limit)
	}
	return b, nil
}

// ValidateNetworkConfiguration checks an awsvpcConfiguration against ECS's
// limits: at most 16 subnets and 5 security groups.
func ValidateNetworkConfiguration(nc *NetworkConfiguration) *Error {
	if nc == nil || nc.AwsvpcConfiguration == nil {
		return nil
	}
	c := nc.AwsvpcConfiguration
	if len(c.Subnets) > 16 {
		return InvalidParam("subnets can have at most 16 items.")
	}
	if len(c.SecurityGroups) > 5 {
		return InvalidParam("securityGroups can have at most 5 items.")
	}
	for _, id := range append(append([]string(nil), c.Subnets...), c.SecurityGroups...) {
		if id == "" || len(id) > 255 || strings.IndexFunc(id, unprintableOrSpace) >= 0 {
			return InvalidParam("Invalid subnet or security group id '%.64s'.", id)
		}
	}
	if v := Val(c.AssignPublicIp); v != "" && v != "ENABLED" && v != "DISABLED" {
		return InvalidParam("Invalid assignPublicIp '%.64s'. Valid values: ENABLED, DISABLED.", v)
	}
	return nil
}
