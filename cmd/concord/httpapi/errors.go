package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(errorBody{Error: msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// statusOf maps an error of the node or of a document to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, crdt.ErrTypeConflict), errors.Is(err, crdt.ErrSeqIndex), errors.Is(err, concord.ErrStaleBase):
		return http.StatusConflict
	case errors.Is(err, crdt.ErrInvalidPath), errors.Is(err, crdt.ErrInvalidValue), errors.Is(err, crdt.ErrInvalidOp),
		errors.Is(err, crdt.ErrInvalidUTF8), errors.Is(err, concord.ErrInvalidDocName), errors.Is(err, concord.ErrPresenceInvalid):
		return http.StatusBadRequest
	case errors.Is(err, concord.ErrTooLarge), errors.Is(err, concord.ErrPresenceTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, concord.ErrPresenceFull):
		return http.StatusConflict
	case errors.Is(err, concord.ErrNotWriter):
		return http.StatusForbidden
	case errors.Is(err, concord.ErrTooManyDocs):
		return http.StatusTooManyRequests
	case errors.Is(err, concord.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
