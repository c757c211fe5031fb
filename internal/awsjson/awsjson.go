// Package awsjson serves an AWS awsJson1.1 service: operations named by
// the X-Amz-Target header, JSON bodies, and errors as {"__type", "message"}
// with the X-Amzn-ErrorType header, which is how the AWS SDKs and CLI read
// them.
package awsjson

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Op is one operation: the raw request body in, a response to marshal out.
type Op func(ctx context.Context, body []byte) (any, error)

// Handle turns a typed operation into an Op.
func Handle[Req, Resp any](f func(context.Context, *Req) (*Resp, error)) Op {
	return func(ctx context.Context, body []byte) (any, error) {
		req := new(Req)
		if err := Decode(body, req); err != nil {
			return nil, err
		}
		return f(ctx, req)
	}
}

// Decode parses a request body. An empty body is an empty object;
// malformed JSON or a wrongly typed field is a SerializationException.
func Decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return &spec.Error{Code: "SerializationException", Message: "Unable to parse request body: " + err.Error()}
	}
	if dec.More() {
		return &spec.Error{Code: "SerializationException", Message: "Unable to parse request body: trailing data after the JSON object"}
	}
	return nil
}

// Service is one awsJson1.1 service.
type Service struct {
	Prefix  string // X-Amz-Target prefix, with its trailing dot
	Ops     map[string]Op
	MaxBody int64
	// InternalError is the exception type of an unexpected failure
	// (InternalServiceError for Secrets Manager, InternalServerError for
	// SSM and FSx).
	InternalError string
	Log           *slog.Logger
}

// ServeHTTP handles POST / with an X-Amz-Target of this service.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	name, _ := strings.CutPrefix(target, s.Prefix)
	f, ok := s.Ops[name]
	if r.Method != http.MethodPost || !ok {
		WriteError(w, &spec.Error{Code: "UnknownOperationException", Message: "Unknown operation " + target})
		return
	}
	limit := s.MaxBody
	if limit == 0 {
		limit = 1 << 20
	}
	body, e := spec.ReadBody(r.Body, limit)
	if e != nil {
		WriteError(w, e)
		return
	}
	resp, err := f(r.Context(), body)
	if err != nil {
		var fe *Error
		if errors.As(err, &fe) {
			writeFields(w, fe)
			return
		}
		var se *spec.Error
		if !errors.As(err, &se) {
			if s.Log != nil {
				s.Log.Error("operation failed", "op", target, "err", err)
			}
			se = &spec.Error{Code: s.InternalError, Message: "An error occurred on the server side."}
			if m := state.QuorumMessage(err); m != "" {
				se.Message = m
			}
		}
		WriteError(w, se)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		WriteError(w, &spec.Error{Code: s.InternalError, Message: "An error occurred on the server side."})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", RequestID())
	w.Write(b)
}

// WriteError writes an awsJson1.1 error.
func WriteError(w http.ResponseWriter, e *spec.Error) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", RequestID())
	w.Header().Set("X-Amzn-Errortype", e.Code)
	status := e.Status()
	if strings.HasPrefix(e.Code, "Internal") {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.Code, "message": e.Message})
}

// Error is an exception with members besides its message (FSx's
// InvalidNetworkSettings names the subnet, IncompatibleParameterError the
// parameter).
type Error struct {
	Code, Message string
	Fields        map[string]string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func writeFields(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", RequestID())
	w.Header().Set("X-Amzn-Errortype", e.Code)
	status := http.StatusBadRequest
	if strings.HasPrefix(e.Code, "Internal") {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	body := map[string]string{"__type": e.Code, "Message": e.Message}
	for k, v := range e.Fields {
		body[k] = v
	}
	json.NewEncoder(w).Encode(body)
}

// RequestID returns a request id.
func RequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Err is an exception of the given type.
func Err(code, message string) *spec.Error { return &spec.Error{Code: code, Message: message} }
