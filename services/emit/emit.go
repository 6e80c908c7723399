// Package emit is how a service writes: it seals an event with the service's
// own key, publishes it on JetStream with its id as the message id, and
// waits until the ledger has committed it, so a caller who gets a success
// answer can read their write back at once.
package emit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/services/api"
)

// publisher is the broker side of emitting.
type publisher interface {
	Publish(ctx context.Context, subject, eventID string, raw []byte) error
}

// waiter reports what the ledger did with an event.
type waiter interface {
	Wait(ctx context.Context, eventID string) (ledger.Result, error)
	Lookup(eventID string) (ledger.Result, bool, error)
}

// failureReporter says whether the ledger's last append failed; a waiter
// that has it lets a write answer at once while the ledger's disk is full.
type failureReporter interface {
	AppendFailure() error
}

var _ publisher = (*broker.Publisher)(nil)
var _ waiter = (*ledger.Ledger)(nil)
var _ failureReporter = (*ledger.Ledger)(nil)

// Emitter emits one service's events.
type Emitter struct {
	signer  *envelope.Signer
	pub     publisher
	ledger  waiter
	timeout time.Duration
}

// New returns an emitter signing with signer.
func New(signer *envelope.Signer, pub publisher, l waiter) *Emitter {
	return &Emitter{signer: signer, pub: pub, ledger: l, timeout: 10 * time.Second}
}

// KeyID is the id of the key this emitter signs with.
func (e *Emitter) KeyID() string { return e.signer.KeyID() }

// Outcome is what a write answers with.
type Outcome struct {
	EventID string `json:"event_id"`
	Seq     uint64 `json:"seq,omitempty"`
	// Pending is true when the broker stored the event durably but the
	// ledger had not committed it within the wait (or reported its disk
	// full, so it cannot yet); it will be.
	Pending bool `json:"pending,omitempty"`
	// Replayed is true when the request repeated an earlier one (same
	// Idempotency-Key) and nothing new was emitted.
	Replayed bool `json:"replayed,omitempty"`
}

// Replayed reports whether eventID (derived from an Idempotency-Key) is
// already in the ledger: a handler checks it before validating state, so a
// retry of a committed write is answered as the first attempt was, not
// refused because the state has since changed.
func (e *Emitter) Replayed(eventID string) (Outcome, bool, error) {
	if eventID == "" {
		return Outcome{}, false, nil
	}
	r, ok, err := e.ledger.Lookup(eventID)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("emit: look up %s: %w", eventID, err)
	}
	if !ok || r.Quarantined {
		return Outcome{}, false, nil
	}
	return Outcome{EventID: eventID, Seq: r.Seq, Replayed: true}, true, nil
}

// ErrRefused means the ledger quarantined the event.
var ErrRefused = errors.New("emit: ledger refused the event")

// Emit seals payload about supplierID, publishes it and waits for the
// ledger. eventID may be empty (a fresh id is drawn); a caller retrying the
// same request passes the same id and the event is stored once.
func (e *Emitter) Emit(ctx context.Context, eventID, supplierID string, at time.Time, payload proto.Message) (Outcome, error) {
	// A retried request: if its event is already in the ledger, answer as
	// the first attempt was answered instead of emitting again.
	if out, ok, err := e.Replayed(eventID); err != nil || ok {
		return out, err
	}
	raw, ev, err := e.signer.Seal(envelope.Draft{EventID: eventID, SupplierID: supplierID, OccurredAt: at, Payload: payload})
	if err != nil {
		return Outcome{}, fmt.Errorf("emit: %w", err)
	}
	return e.send(ctx, ev, raw)
}

// EmitSealed publishes an envelope signed elsewhere — a service's
// root-signed key authorization, made once by `sal keys init` — and waits
// for the ledger as Emit does. Publishing it again stores it once.
func (e *Emitter) EmitSealed(ctx context.Context, raw []byte) (Outcome, error) {
	o, err := envelope.Open(raw)
	if err != nil {
		return Outcome{}, fmt.Errorf("emit: %w", err)
	}
	if out, ok, err := e.Replayed(o.Event.EventId); err != nil || ok {
		return out, err
	}
	return e.send(ctx, o.Event, raw)
}

// send publishes a sealed event and waits for the ledger's verdict.
func (e *Emitter) send(ctx context.Context, ev *pb.Event, raw []byte) (Outcome, error) {
	if err := e.pub.Publish(ctx, broker.Subject(ev.Type, ev.SupplierId), ev.EventId, raw); err != nil {
		// Not confirmed is not the same as not recorded: a clustered stream
		// that lost its quorum can still commit the event when the quorum
		// returns. Only a retry with the same Idempotency-Key is safe.
		if e.noSpace() != nil {
			// The ledger's own error names server paths: the operator's
			// log has it, the caller gets the gist.
			return Outcome{}, api.Errorf(http.StatusServiceUnavailable, "storage full: the ledger's disk has no space left and the event stream did not confirm the write, which may or may not be recorded (event %s); once disk space is freed, retry with the same Idempotency-Key header to have it recorded exactly once (%v)", ev.EventId, err)
		}
		return Outcome{}, api.Errorf(http.StatusServiceUnavailable, "event stream unavailable: the write was not confirmed and may or may not be recorded (event %s); retry with the same Idempotency-Key header to have it recorded exactly once (%v)", ev.EventId, err)
	}
	r, err := e.wait(ctx, ev.EventId)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errLedgerFull):
		// Stored durably by the broker; the ledger commits it when it can
		// (once its disk has space again, when that was the trouble).
		return Outcome{EventID: ev.EventId, Pending: true}, nil
	case err != nil:
		return Outcome{}, fmt.Errorf("emit: wait for %s: %w", ev.EventId, err)
	case r.Quarantined:
		return Outcome{}, fmt.Errorf("%w: %s: %s", ErrRefused, ev.EventId, r.Reason)
	}
	return Outcome{EventID: ev.EventId, Seq: r.Seq}, nil
}

// errLedgerFull ends a wait when the ledger reports its disk full.
var errLedgerFull = errors.New("emit: the ledger's disk is full")

// noSpace is the ledger's last append failure if its disk was full.
func (e *Emitter) noSpace() error {
	if fr, ok := e.ledger.(failureReporter); ok {
		if err := fr.AppendFailure(); errors.Is(err, ledger.ErrNoSpace) {
			return err
		}
	}
	return nil
}

// wait waits up to the emitter's timeout for the ledger to commit eventID,
// giving up early (errLedgerFull) when the ledger reports its disk full: it
// will not commit anything until space returns, so there is no point in
// holding the caller.
func (e *Emitter) wait(ctx context.Context, eventID string) (ledger.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if _, ok := e.ledger.(failureReporter); ok {
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if e.noSpace() != nil {
						stop(errLedgerFull)
						return
					}
				}
			}
		}()
	}
	r, err := e.ledger.Wait(ctx, eventID)
	if err != nil && context.Cause(ctx) != nil {
		return r, context.Cause(ctx)
	}
	return r, err
}

// Status is the HTTP status a write answers with: 201 when committed, 202
// when durably queued but not yet in the ledger.
func (o Outcome) Status() int {
	if o.Pending {
		return http.StatusAccepted
	}
	if o.Replayed {
		return http.StatusOK
	}
	return http.StatusCreated
}

// replayer answers whether an event id is already in the ledger.
type replayer interface {
	Replayed(eventID string) (Outcome, bool, error)
}

var _ replayer = (*Emitter)(nil)

// Write is a write handler's body: it validates, emits, and returns the
// status and answer.
type Write func(*http.Request, auth.Principal) (int, any, error)

// Handler wraps a write handler. A retry of a write already committed (same
// Idempotency-Key) is answered as such before any check of the current
// state. record names the id field and prefix of the record the write
// creates ("commitment_id", "cm"), if any, so a replayed retry answers with
// it too.
func Handler(e replayer, fn Write, record ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := api.Principal(r)
		if out, ok, err := e.Replayed(api.EventID(r, p)); err != nil {
			api.WriteError(w, err)
			return
		} else if ok {
			body := map[string]any{"event": out}
			if len(record) == 2 {
				_, id := api.IDs(r, p, record[1])
				body[record[0]] = id
			}
			api.WriteJSON(w, out.Status(), body)
			return
		}
		status, body, err := fn(r, p)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteJSON(w, status, body)
	}
}
