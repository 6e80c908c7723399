// Package enforcement is the service that applies the rulebook: as events
// arrive and as days pass it evaluates every supplier's scorecard against
// the rules (package rules) at the injected clock's date, and signs and
// emits each consequence the rules require. Its state is the ledger itself,
// so a restart emits nothing twice; consequence ids are derived from the
// rule and what it is about, so even a concurrent duplicate is stored once.
package enforcement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/services/emit"
)

// EventTypes are the events this service's key is authorized to emit.
var EventTypes = []pb.EventType{
	pb.EventType_EVENT_TYPE_BREACH_RAISED,
	pb.EventType_EVENT_TYPE_BREACH_CLOSED,
	pb.EventType_EVENT_TYPE_ESCALATION_ISSUED,
	pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_OPENED,
}

type emitter interface {
	Emit(ctx context.Context, eventID, supplierID string, at time.Time, payload proto.Message) (emit.Outcome, error)
}

type cards interface {
	Card(supplierID string) (*scorecard.Card, error)
	Suppliers() ([]string, error)
}

// maxRounds bounds how many times one supplier is re-evaluated in one pass
// (a breach can open a review; a closure can change a rating). The rulebook
// settles in three; more means a rule that keeps firing, which is a bug.
const maxRounds = 8

// ErrNoFixpoint means the rules kept producing consequences.
var ErrNoFixpoint = errors.New("enforcement: rules did not settle")

// Service evaluates the rules.
type Service struct {
	engine *rules.Engine
	emit   emitter
	cards  cards
	now    func() time.Time
	log    *slog.Logger
	mu     sync.Mutex // one evaluation at a time
}

// New returns the service.
func New(engine *rules.Engine, e emitter, c cards, now func() time.Time, log *slog.Logger) *Service {
	return &Service{engine: engine, emit: e, cards: c, now: now, log: log}
}

// Evaluate applies the rules to every supplier at the clock's current date
// and emits what they require, waiting for the ledger to commit each
// consequence. It returns how many consequences it emitted. Evaluating
// twice for the same moment emits nothing the second time.
func (s *Service) Evaluate(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	today := calendar.Today(now)
	ids, err := s.cards.Suppliers()
	if err != nil {
		return 0, fmt.Errorf("enforcement: list suppliers: %w", err)
	}
	emitted := 0
	var errs []error
	for _, id := range ids {
		n, err := s.evaluateSupplier(ctx, id, today, now)
		emitted += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return emitted, errors.Join(errs...)
}

func (s *Service) evaluateSupplier(ctx context.Context, supplierID, today string, now time.Time) (int, error) {
	emitted := 0
	for range maxRounds {
		card, err := s.cards.Card(supplierID)
		if err != nil {
			return emitted, fmt.Errorf("enforcement: supplier %s: %w", supplierID, err)
		}
		cs, err := s.engine.Evaluate(card, today)
		if err != nil {
			return emitted, fmt.Errorf("enforcement: %w", err)
		}
		if len(cs) == 0 {
			return emitted, nil
		}
		for _, c := range cs {
			out, err := s.emit.Emit(ctx, c.EventID, supplierID, now, c.Payload)
			if err != nil {
				return emitted, fmt.Errorf("enforcement: supplier %s: emit %s: %w", supplierID, c.EventID, err)
			}
			if out.Pending {
				return emitted, fmt.Errorf("enforcement: supplier %s: event %s not committed in time; will retry", supplierID, c.EventID)
			}
			emitted++
			s.log.Info("consequence emitted", "supplier_id", supplierID, "event_id", c.EventID, "seq", out.Seq, "type", fmt.Sprintf("%T", c.Payload))
		}
	}
	return emitted, fmt.Errorf("%w for supplier %s after %d rounds", ErrNoFixpoint, supplierID, maxRounds)
}

// Run evaluates whenever the ledger commits something (as told by updated)
// and at least every interval, until ctx ends.
func (s *Service) Run(ctx context.Context, updated func() <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Evaluate(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("rule evaluation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-updated():
			// Let a burst of commits settle before evaluating again.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		case <-t.C:
		}
	}
}

// Register adds the service's routes to mux.
func (s *Service) Register(mux api.Router) {
	mux.HandleFunc("GET /v1/rules", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]any{"rules": rules.All()})
	})
	mux.HandleFunc("POST /v1/enforcement/evaluate", func(w http.ResponseWriter, r *http.Request) {
		if err := api.RequireRole(api.Principal(r), auth.Commercial); err != nil {
			api.WriteError(w, err)
			return
		}
		n, err := s.Evaluate(r.Context())
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"emitted": n, "as_of": calendar.Today(s.now())})
	})
}
