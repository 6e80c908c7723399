// Package audit serves auditors: the event log with each entry's sequence
// number, signer and hash, the quarantine of refused events with reasons,
// and a verification of the whole log. Auditors and commercial users may
// read it; nobody writes through it.
package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"

	verify "github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/services/api"
)

type log interface {
	Entries(from uint64, limit int) ([]ledger.Entry, error)
	Head() (uint64, [32]byte, error)
	SignedCheckpoint(size uint64) ([]byte, error)
	InclusionProof(seq, size uint64) (tlog.RecordProof, error)
	ConsistencyProof(older, newer uint64) (tlog.TreeProof, error)
	TreeHead(size uint64) (tlog.Hash, error)
	Quarantine(from uint64, limit int) ([]ledger.QuarantineRecord, error)
	Registry() *keys.Registry
	verify.Source
}

var _ log = (*ledger.Ledger)(nil)

// Service serves the audit routes.
type Service struct {
	log           log
	root          ed25519.PublicKey
	checkpointKey string
}

// New returns the service. root is the registry root key the ledger trusts;
// checkpointKey is the signed-note verifier key of the ledger's
// checkpoints, published so auditors can check them. POST /v1/audit/verify
// judges the log with exactly these, as `sal verify` does offline.
func New(l log, root ed25519.PublicKey, checkpointKey string) *Service {
	return &Service{log: l, root: root, checkpointKey: checkpointKey}
}

// VerifyRoute re-verifies the whole ledger: its answer takes as long as the
// ledger is big, so a gateway in front must not time it out either.
const VerifyRoute = "POST /v1/audit/verify"

// Register adds the routes to mux.
func (s *Service) Register(mux api.Router) {
	mux.HandleFunc("GET /v1/audit/events", s.guard(s.events))
	mux.HandleFunc("GET /v1/audit/quarantine", s.guard(s.quarantine))
	mux.HandleFunc("GET /v1/audit/keys", s.guard(s.keys))
	mux.HandleFunc("POST /v1/audit/verify", s.guard(s.verify)) // VerifyRoute
	mux.HandleFunc("GET /v1/audit/checkpoint", s.guard(s.checkpoint))
	mux.HandleFunc("GET /v1/audit/proofs/inclusion", s.guard(s.inclusion))
	mux.HandleFunc("GET /v1/audit/proofs/consistency", s.guard(s.consistency))
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
	Envelope   []byte          `json:"envelope"` // the stored bytes, base64: what the signature and the Merkle leaf cover
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
			Hash: hex.EncodeToString(e.Hash[:]), PrevHash: hex.EncodeToString(e.PrevHash[:]), Payload: payload, Envelope: e.Envelope,
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
	api.WriteJSON(w, http.StatusOK, map[string]any{"root_key_id": reg.RootKeyID(), "root_public_key": reg.Root(), "checkpoint_verifier_key": s.checkpointKey, "keys": reg.Keys()})
}

func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	// Verifying takes as long as the ledger is big: the server's write
	// timeout must not lose its answer. It still stops when the caller
	// goes away.
	_ = api.LiftWriteDeadline(w)
	rep, err := verify.Verify(r.Context(), s.log, verify.Trust{RootKey: s.root, CheckpointKey: s.checkpointKey})
	if err != nil {
		api.WriteError(w, err)
		return
	}
	out := map[string]any{"ok": rep.OK(), "verified": rep.Entries, "checkpoints": rep.Checkpoints, "suppliers": rep.Suppliers, "root": hex.EncodeToString(rep.Root[:])}
	if rep.Failure != nil {
		out["first_bad_seq"], out["reason"] = rep.Failure.Seq, rep.Failure.Reason
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if def == 0 {
			return 0, api.Errorf(http.StatusBadRequest, "missing query parameter %q", name)
		}
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, api.Errorf(http.StatusBadRequest, "%s must be a whole number from 1, got %q", name, v)
	}
	return n, nil
}

// checkpoint serves a signed checkpoint note as text: the latest, or the
// one at ?size=.
func (s *Service) checkpoint(w http.ResponseWriter, r *http.Request) {
	var size uint64
	if r.URL.Query().Get("size") != "" {
		var err error
		if size, err = uintParam(r, "size", 0); err != nil {
			api.WriteError(w, err)
			return
		}
	}
	b, err := s.log.SignedCheckpoint(size)
	if errors.Is(err, ledger.ErrNoCheckpoint) {
		api.WriteError(w, api.Errorf(http.StatusNotFound, "no checkpoint at size %d (checkpoints are published after each batch, or at least every 250 ms while events keep arriving)", size))
		return
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b)
}

func b64(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func (s *Service) headSize() (uint64, error) {
	n, _, err := s.log.Head()
	return n, err
}

// inclusion proves ?seq= is in the tree of ?size= (default: the head).
func (s *Service) inclusion(w http.ResponseWriter, r *http.Request) {
	head, err := s.headSize()
	if err != nil {
		api.WriteError(w, err)
		return
	}
	seq, err := uintParam(r, "seq", 0)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	size, err := uintParam(r, "size", head)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if seq > size || size > head {
		api.WriteError(w, api.Errorf(http.StatusBadRequest, "need 1 <= seq <= size <= %d (the head), got seq %d size %d", head, seq, size))
		return
	}
	p, err := s.log.InclusionProof(seq, size)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	root, err := s.log.TreeHead(size)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	es, err := s.log.Entries(seq, 1)
	if err != nil || len(es) != 1 {
		api.WriteError(w, fmt.Errorf("entry %d: %v", seq, err))
		return
	}
	leaf := ledger.LeafHash(es[0].Envelope)
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"seq": seq, "leaf_index": seq - 1, "tree_size": size,
		"leaf_hash": base64.StdEncoding.EncodeToString(leaf[:]),
		"root_hash": base64.StdEncoding.EncodeToString(root[:]),
		"hashes":    b64(p),
	})
}

// consistency proves the tree of ?from= is a prefix of the tree of ?to=.
func (s *Service) consistency(w http.ResponseWriter, r *http.Request) {
	head, err := s.headSize()
	if err != nil {
		api.WriteError(w, err)
		return
	}
	from, err := uintParam(r, "from", 0)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	to, err := uintParam(r, "to", head)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if from > to || to > head {
		api.WriteError(w, api.Errorf(http.StatusBadRequest, "need 1 <= from <= to <= %d (the head), got from %d to %d", head, from, to))
		return
	}
	p, err := s.log.ConsistencyProof(from, to)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	r1, err := s.log.TreeHead(from)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	r2, err := s.log.TreeHead(to)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"from": from, "to": to,
		"from_root": base64.StdEncoding.EncodeToString(r1[:]),
		"to_root":   base64.StdEncoding.EncodeToString(r2[:]),
		"hashes":    b64(p),
	})
}
