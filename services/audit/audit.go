// Package audit serves auditors: the event log with each entry's sequence
// number, signer and hash, the quarantine of refused events with reasons,
// and a verification of the whole log. Auditors and commercial users may
// read it; nobody writes through it.
package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/services/api"
)

type log interface {
	Entries(from uint64, limit int) ([]ledger.Entry, error)
	Quarantine(from uint64, limit int) ([]ledger.QuarantineRecord, error)
	Verify(ctx context.Context) (uint64, error)
	Registry() *keys.Registry
}

var _ log = (*ledger.Ledger)(nil)

// Service serves the audit routes.
type Service struct {
	log log
}

// New returns the service.
func New(l log) *Service { return &Service{log: l} }

// Register adds the routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/audit/events", s.guard(s.events))
	mux.HandleFunc("GET /v1/audit/quarantine", s.guard(s.quarantine))
	mux.HandleFunc("GET /v1/audit/keys", s.guard(s.keys))
	mux.HandleFunc("POST /v1/audit/verify", s.guard(s.verify))
}

func (s *Service) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := api.RequireRole(api.Principal(r), auth.Auditor, auth.Commercial); err != nil {
			api.WriteError(w, err)
			return
		}
		next(w, r)
	}
}

func page(r *http.Request) (uint64, int, error) {
	from, limit := uint64(1), 100
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return 0, 0, api.Errorf(http.StatusBadRequest, "from must be a sequence number from 1, got %q", v)
		}
		from = n
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, 0, api.Errorf(http.StatusBadRequest, "limit must be 1 to 1000, got %q", v)
		}
		limit = n
	}
	return from, limit, nil
}

// EventView is one log entry as an auditor sees it.
type EventView struct {
	Seq        uint64          `json:"seq"`
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	SupplierID string          `json:"supplier_id,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	AppendedAt time.Time       `json:"appended_at"`
	KeyID      string          `json:"key_id"`
	Signer     string          `json:"signer"`
	Hash       string          `json:"entry_hash"`
	PrevHash   string          `json:"prev_hash"`
	Payload    json.RawMessage `json:"payload"`
}

func (s *Service) events(w http.ResponseWriter, r *http.Request) {
	from, limit, err := page(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	entries, err := s.log.Entries(from, limit)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	reg := s.log.Registry()
	out := make([]EventView, 0, len(entries))
	for _, e := range entries {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		payload, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(o.Payload)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		signer := "registry root"
		if a, ok := reg.Lookup(o.Event.KeyId); ok {
			signer = a.Holder
		}
		out = append(out, EventView{
			Seq: e.Seq, EventID: o.Event.EventId, Type: o.Event.Type.String(), SupplierID: o.Event.SupplierId,
			OccurredAt: o.OccurredAt(), AppendedAt: e.AppendedAt, KeyID: o.Event.KeyId, Signer: signer,
			Hash: hex.EncodeToString(e.Hash[:]), PrevHash: hex.EncodeToString(e.PrevHash[:]), Payload: payload,
		})
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"events": out})
}

func (s *Service) quarantine(w http.ResponseWriter, r *http.Request) {
	from, limit, err := page(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	recs, err := s.log.Quarantine(from, limit)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if recs == nil {
		recs = []ledger.QuarantineRecord{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"quarantine": recs})
}

func (s *Service) keys(w http.ResponseWriter, r *http.Request) {
	reg := s.log.Registry()
	api.WriteJSON(w, http.StatusOK, map[string]any{"root_key_id": reg.RootKeyID(), "keys": reg.Keys()})
}

func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	n, err := s.log.Verify(r.Context())
	var ce *ledger.ChainError
	switch {
	case errors.As(err, &ce):
		api.WriteJSON(w, http.StatusOK, map[string]any{"ok": false, "verified": n, "first_bad_seq": ce.Seq, "reason": ce.Err.Error()})
	case err != nil:
		api.WriteError(w, err)
	default:
		api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "verified": n})
	}
}
