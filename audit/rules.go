package audit

import (
	"context"
	"fmt"
	"sort"

	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
)

// Finding is a difference between the consequences in the log and those
// the rules require.
type Finding struct {
	Kind       string `json:"kind"` // "unjustified": in the log, not required; "missing": required, not in the log
	Seq        uint64 `json:"seq,omitempty"`
	EventID    string `json:"event_id"`
	SupplierID string `json:"supplier_id"`
	Detail     string `json:"detail"`
}

func isConsequence(t pb.EventType) bool {
	switch t {
	case pb.EventType_EVENT_TYPE_BREACH_RAISED, pb.EventType_EVENT_TYPE_BREACH_CLOSED,
		pb.EventType_EVENT_TYPE_ESCALATION_ISSUED, pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_OPENED:
		return true
	}
	return false
}

// Rules re-runs the enforcement rules over the history in src. Every
// consequence in the log must be one the rules required at the moment it
// was recorded (consequence ids are derived from rule and subject, so the
// comparison is exact); at the date at (YYYY-MM-DD; empty: the date of the
// last event) nothing the rules require may be missing. Consequences
// recorded under an earlier rule version show as unjustified, naming the
// version, for a person to judge.
func Rules(ctx context.Context, src Source, engine *rules.Engine, at string) ([]Finding, error) {
	cards := map[string]*scorecard.Card{}
	pending := map[string]map[string]bool{} // supplier -> consequence ids still expected
	var out []Finding
	last := ""
	err := src.Scan(ctx, func(e ledger.Entry) error {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			return &ledger.ChainError{Seq: e.Seq, Err: err}
		}
		id := o.Event.SupplierId
		last = calendar.Today(o.OccurredAt())
		if id != "" && isConsequence(o.Event.Type) {
			if !pending[id][o.Event.EventId] {
				card := cards[id]
				if card == nil {
					card = scorecard.New(id)
				}
				cs, err := engine.Evaluate(card, last)
				if err != nil {
					return fmt.Errorf("audit: seq %d: %w", e.Seq, err)
				}
				pending[id] = map[string]bool{}
				for _, c := range cs {
					pending[id][c.EventID] = true
				}
				if !pending[id][o.Event.EventId] {
					out = append(out, Finding{Kind: "unjustified", Seq: e.Seq, EventID: o.Event.EventId, SupplierID: id,
						Detail: fmt.Sprintf("%s on %s is not what the rules in force (%s) required then%s", o.Event.Type, last, rulebook(), cited(o))})
				}
			}
			delete(pending[id], o.Event.EventId)
		} else if id != "" {
			delete(pending, id)
		}
		return ledger.Project(cards, e)
	})
	if err != nil {
		return nil, err
	}
	if at == "" {
		at = last
	}
	ids := make([]string, 0, len(cards))
	for id := range cards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		cs, err := engine.Evaluate(cards[id], at)
		if err != nil {
			return out, fmt.Errorf("audit: supplier %s on %s: %w", id, at, err)
		}
		for _, c := range cs {
			t, _ := envelope.TypeOf(c.Payload)
			out = append(out, Finding{Kind: "missing", EventID: c.EventID, SupplierID: id,
				Detail: fmt.Sprintf("the rules require %s on %s and the log does not have it", t, at)})
		}
	}
	return out, nil
}

func rulebook() string {
	s := ""
	for i, r := range rules.All() {
		if i > 0 {
			s += ", "
		}
		s += r.ID + " v" + r.Version
	}
	return s
}

func cited(o *envelope.Opened) string {
	var c *pb.RuleCitation
	switch p := o.Payload.(type) {
	case *pb.BreachRaised:
		c = p.Rule
	case *pb.BreachClosed:
		c = p.Rule
	case *pb.EscalationIssued:
		c = p.Rule
	case *pb.DisinvestmentReviewOpened:
		c = p.Rule
	}
	if c == nil {
		return "; it cites no rule"
	}
	return fmt.Sprintf("; it cites %s v%s", c.RuleId, c.RuleVersion)
}
