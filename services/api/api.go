// Package api holds the JSON conventions every service's HTTP handlers
// share: bounded strict decoding, one-line error bodies, and the role checks
// that decide who may read or write what.
package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/auth"
)

// MaxBody is the largest request body accepted.
const MaxBody = 64 << 10

// Error is an error with the HTTP status it should be answered with.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Decode reads one JSON object from r into v (whatever the Content-Type
// says: curl sends form encoding by default), refusing unknown fields,
// trailing data and bodies over MaxBody, with a one-line reason.
func Decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return Errorf(http.StatusBadRequest, "reading the request body: %v", err)
	}
	if len(body) > MaxBody {
		return Errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return Errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
		case errors.As(err, &se):
			return Errorf(http.StatusBadRequest, "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return Errorf(http.StatusBadRequest, "field %q must be %s", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return Errorf(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return Errorf(http.StatusBadRequest, "malformed JSON: %v", err)
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteRawJSON answers with already-encoded JSON.
func WriteRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}

// WriteError answers with err: its own status if it is an *Error, else 500
// with a generic message (the detail goes to the server log, not the
// caller).
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if errors.As(err, &e) {
		WriteJSON(w, e.Status, map[string]string{"error": e.Msg})
		return
	}
	WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error: " + err.Error()})
}

// Principal returns the caller, who has passed auth.Store.Require.
func Principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// CanRead says whether p may read supplierID's records: commercial and
// auditors read all; a supplier reads only its own.
func CanRead(p auth.Principal, supplierID string) bool {
	switch p.Role {
	case auth.Commercial, auth.Auditor:
		return true
	case auth.Supplier:
		return p.SupplierID == supplierID
	}
	return false
}

// RequireRole returns a 403 error unless p has one of roles.
func RequireRole(p auth.Principal, roles ...auth.Role) error {
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return Errorf(http.StatusForbidden, "role %s may not do this (needs %s)", p.Role, strings.Join(names, " or "))
}

// RequireSupplierSelf returns a 403 error unless p is the supplier itself.
// The message says nothing about whether supplierID exists.
func RequireSupplierSelf(p auth.Principal, supplierID string) error {
	if p.Role != auth.Supplier {
		return Errorf(http.StatusForbidden, "only the supplier itself may do this")
	}
	if p.SupplierID != supplierID {
		return Errorf(http.StatusForbidden, "forbidden: a supplier may act only on its own records")
	}
	return nil
}

// DateLayout is the calendar date format of every date field.
const DateLayout = "2006-01-02"

// ParseDate reads a YYYY-MM-DD field.
func ParseDate(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, Errorf(http.StatusBadRequest, "missing field %q (a date, YYYY-MM-DD)", field)
	}
	t, err := time.Parse(DateLayout, v)
	if err != nil {
		return time.Time{}, Errorf(http.StatusBadRequest, "field %q must be a date YYYY-MM-DD, got %q", field, v)
	}
	return t, nil
}

// Required returns a 400 error naming the first empty field.
func Required(fields ...[2]string) error {
	for _, f := range fields {
		if strings.TrimSpace(f[1]) == "" {
			return Errorf(http.StatusBadRequest, "missing field %q", f[0])
		}
	}
	return nil
}

// MaxLen returns a 400 error when a text field is longer than n characters.
func MaxLen(field, v string, n int) error {
	if len([]rune(v)) > n {
		return Errorf(http.StatusBadRequest, "field %q longer than %d characters", field, n)
	}
	return nil
}

// EventID derives the event id of a write from its Idempotency-Key header,
// so a client retrying the same request (same principal, same key) produces
// the same event, stored once. Without the header it returns "" and a fresh
// id is drawn.
func EventID(r *http.Request, p auth.Principal) string {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(p.String() + "\x00" + r.Method + " " + r.URL.Path + "\x00" + k))
	return "ev_" + hex.EncodeToString(sum[:16])
}

// IDs returns the event id of a write and the id of the record it creates
// (prefix "cm" gives "cm_3f9a0c1d2e4b"). The record id is derived from the
// event id, so a retried request names the same record.
func IDs(r *http.Request, p auth.Principal, prefix string) (eventID, recordID string) {
	eventID = EventID(r, p)
	if eventID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		eventID = "ev_" + hex.EncodeToString(b[:])
	}
	return eventID, prefix + "_" + eventID[3:15]
}

// Router is where a service adds its routes: an *http.ServeMux when the
// service answers them, or a recorder when the gateway learns which
// service answers which route.
type Router interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

var _ Router = (*http.ServeMux)(nil)
