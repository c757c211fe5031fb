package spec

import "fmt"

// Error is an ECS exception: a wire name (the awsJson __type) and a message.
// Handlers return it unchanged; anything else becomes a ServerException.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Status is the HTTP status ECS uses for the exception.
func (e *Error) Status() int {
	switch e.Code {
	case "ServerException":
		return 500
	}
	return 400
}

func newErr(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ClientErr is ECS's ClientException: the request cannot be served as asked.
func ClientErr(format string, args ...any) *Error { return newErr("ClientException", format, args...) }

// InvalidParam is ECS's InvalidParameterException.
func InvalidParam(format string, args ...any) *Error {
	return newErr("InvalidParameterException", format, args...)
}

// Exception builds an error with any ECS exception name.
func Exception(code, format string, args ...any) *Error { return newErr(code, format, args...) }

// ErrClusterNotFound is returned for an unknown cluster.
func ErrClusterNotFound() *Error { return newErr("ClusterNotFoundException", "Cluster not found.") }
