// Package assessments is the commercial teams' service: they record
// assessments of suppliers' commitments (outcome, evidence, assessor).
// Every write is a signed event emitted through the ledger.
package assessments

import (
	"context"
	"errors"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/services/emit"
)

// EventTypes are the events this service's key is authorized to emit.
var EventTypes = []pb.EventType{
	pb.EventType_EVENT_TYPE_ASSESSMENT_RECORDED,
	pb.EventType_EVENT_TYPE_REMEDIATION_PLAN_AGREED,
	pb.EventType_EVENT_TYPE_DISPUTE_RESOLVED,
	pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_CLOSED,
}

type emitter interface {
	Emit(ctx context.Context, eventID, supplierID string, at time.Time, payload proto.Message) (emit.Outcome, error)
	Replayed(eventID string) (emit.Outcome, bool, error)
}

type cards interface {
	Card(supplierID string) (*scorecard.Card, error)
}

// Service handles the commercial writes.
type Service struct {
	emit  emitter
	cards cards
	now   func() time.Time
}

// New returns the service.
func New(e emitter, c cards, now func() time.Time) *Service {
	return &Service{emit: e, cards: c, now: now}
}

// Register adds the service's routes to mux.
func (s *Service) Register(mux api.Router) {
	mux.HandleFunc("POST /v1/suppliers/{supplier}/commitments/{commitment}/assessments", s.handle(s.assess, "assessment_id", "as"))
	mux.HandleFunc("POST /v1/suppliers/{supplier}/disputes/{dispute}/resolution", s.handle(s.resolve))
	mux.HandleFunc("POST /v1/suppliers/{supplier}/breaches/{breach}/plans", s.handle(s.plan, "plan_id", "pl"))
	mux.HandleFunc("POST /v1/suppliers/{supplier}/reviews/{review}/closure", s.handle(s.closeReview))
}

func (s *Service) handle(fn emit.Write, record ...string) http.HandlerFunc {
	return emit.Handler(s.emit, fn, record...)
}

// ParseOutcome reads an outcome's API name.
func ParseOutcome(s string) (pb.Outcome, error) {
	switch s {
	case "conformant":
		return pb.Outcome_OUTCOME_CONFORMANT, nil
	case "partially_conformant":
		return pb.Outcome_OUTCOME_PARTIALLY_CONFORMANT, nil
	case "non_conformant":
		return pb.Outcome_OUTCOME_NON_CONFORMANT, nil
	case "":
		return 0, api.Errorf(http.StatusBadRequest, "missing field \"outcome\" (conformant, partially_conformant or non_conformant)")
	}
	return 0, api.Errorf(http.StatusBadRequest, "outcome %q is not conformant, partially_conformant or non_conformant", s)
}

type assessRequest struct {
	Outcome     string `json:"outcome"`
	EvidenceRef string `json:"evidence_ref"`
	Assessor    string `json:"assessor"`
	AssessedOn  string `json:"assessed_on"`
}

func (s *Service) card(supplierID string) (*scorecard.Card, error) {
	c, err := s.cards.Card(supplierID)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && !c.Registered) {
		return nil, api.Errorf(http.StatusNotFound, "supplier %s is not registered", supplierID)
	}
	return c, err
}

func (s *Service) commitment(supplierID, commitmentID string) (*scorecard.Commitment, error) {
	c, err := s.card(supplierID)
	if err != nil {
		return nil, err
	}
	cm := c.Commitment(commitmentID)
	if cm == nil {
		return nil, api.Errorf(http.StatusNotFound, "supplier %s has no commitment %s", supplierID, commitmentID)
	}
	return cm, nil
}

func (s *Service) assess(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID, commitmentID := r.PathValue("supplier"), r.PathValue("commitment")
	if err := api.RequireRole(p, auth.Commercial); err != nil {
		return 0, nil, err
	}
	var req assessRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	outcome, err := ParseOutcome(req.Outcome)
	if err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"evidence_ref", req.EvidenceRef}, [2]string{"assessor", req.Assessor}); err != nil {
		return 0, nil, err
	}
	for _, f := range [][2]string{{"evidence_ref", req.EvidenceRef}, {"assessor", req.Assessor}} {
		if err := api.MaxLen(f[0], f[1], 500); err != nil {
			return 0, nil, err
		}
	}
	now := s.now()
	today := calendar.Today(now)
	if req.AssessedOn == "" {
		req.AssessedOn = today
	}
	if _, err := api.ParseDate("assessed_on", req.AssessedOn); err != nil {
		return 0, nil, err
	}
	if req.AssessedOn > today {
		return 0, nil, api.Errorf(http.StatusBadRequest, "assessed_on %s is in the future (today is %s)", req.AssessedOn, today)
	}
	cm, err := s.commitment(supplierID, commitmentID)
	if err != nil {
		return 0, nil, err
	}
	if cm.Withdrawal != nil {
		return 0, nil, api.Errorf(http.StatusConflict, "commitment %s was withdrawn on %s and cannot be assessed", commitmentID, cm.Withdrawal.On)
	}
	eventID, assessmentID := api.IDs(r, p, "as")
	out, err := s.emit.Emit(r.Context(), eventID, supplierID, now, &pb.AssessmentRecorded{
		AssessmentId: assessmentID,
		CommitmentId: commitmentID,
		Outcome:      outcome,
		EvidenceRef:  req.EvidenceRef,
		Assessor:     req.Assessor,
		AssessedOn:   req.AssessedOn,
		RecordedBy:   p.String(),
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"assessment_id": assessmentID, "commitment_id": commitmentID, "event": out}, nil
}

type resolveRequest struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

// resolve decides a supplier's dispute: upheld voids the assessment (and
// rule R5 withdraws its breaches); rejected resumes the escalation clocks.
func (s *Service) resolve(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID, disputeID := r.PathValue("supplier"), r.PathValue("dispute")
	if err := api.RequireRole(p, auth.Commercial); err != nil {
		return 0, nil, err
	}
	var req resolveRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	var outcome pb.DisputeOutcome
	switch req.Outcome {
	case "upheld":
		outcome = pb.DisputeOutcome_DISPUTE_OUTCOME_UPHELD
	case "rejected":
		outcome = pb.DisputeOutcome_DISPUTE_OUTCOME_REJECTED
	default:
		return 0, nil, api.Errorf(http.StatusBadRequest, "outcome must be upheld or rejected, got %q", req.Outcome)
	}
	if err := api.Required([2]string{"reason", req.Reason}); err != nil {
		return 0, nil, err
	}
	if err := api.MaxLen("reason", req.Reason, 4000); err != nil {
		return 0, nil, err
	}
	c, err := s.card(supplierID)
	if err != nil {
		return 0, nil, err
	}
	d := c.Dispute(disputeID)
	if d == nil {
		return 0, nil, api.Errorf(http.StatusNotFound, "supplier %s has no dispute %s", supplierID, disputeID)
	}
	if d.Status != "open" {
		return 0, nil, api.Errorf(http.StatusConflict, "dispute %s was already %s on %s", disputeID, d.Status, d.ResolvedOn)
	}
	now := s.now()
	out, err := s.emit.Emit(r.Context(), api.EventID(r, p), supplierID, now, &pb.DisputeResolved{
		DisputeId: disputeID, Outcome: outcome, Reason: req.Reason, ResolvedBy: p.String(), ResolvedOn: calendar.Today(now),
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"dispute_id": disputeID, "outcome": req.Outcome, "event": out}, nil
}

type planRequest struct {
	DueDate string `json:"due_date"`
	Summary string `json:"summary"`
}

// plan records a remediation plan agreed for an open breach (rule R3).
func (s *Service) plan(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID, breachID := r.PathValue("supplier"), r.PathValue("breach")
	if err := api.RequireRole(p, auth.Commercial); err != nil {
		return 0, nil, err
	}
	var req planRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"summary", req.Summary}); err != nil {
		return 0, nil, err
	}
	if err := api.MaxLen("summary", req.Summary, 4000); err != nil {
		return 0, nil, err
	}
	if _, err := api.ParseDate("due_date", req.DueDate); err != nil {
		return 0, nil, err
	}
	now := s.now()
	today := calendar.Today(now)
	if req.DueDate < today {
		return 0, nil, api.Errorf(http.StatusBadRequest, "due_date %s is in the past (today is %s)", req.DueDate, today)
	}
	c, err := s.card(supplierID)
	if err != nil {
		return 0, nil, err
	}
	b := c.Breach(breachID)
	if b == nil {
		return 0, nil, api.Errorf(http.StatusNotFound, "supplier %s has no breach %s", supplierID, breachID)
	}
	if b.Status != scorecard.BreachOpen {
		return 0, nil, api.Errorf(http.StatusConflict, "breach %s is %s; plans are agreed for open breaches", breachID, b.Status)
	}
	eventID, planID := api.IDs(r, p, "pl")
	out, err := s.emit.Emit(r.Context(), eventID, supplierID, now, &pb.RemediationPlanAgreed{
		PlanId: planID, BreachId: breachID, DueDate: req.DueDate, Summary: req.Summary, AgreedBy: p.String(), AgreedOn: today,
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"plan_id": planID, "breach_id": breachID, "event": out}, nil
}

type closeRequest struct {
	Reason string `json:"reason"`
}

// closeReview closes a disinvestment review (rule R7) with a reason.
func (s *Service) closeReview(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID, reviewID := r.PathValue("supplier"), r.PathValue("review")
	if err := api.RequireRole(p, auth.Commercial); err != nil {
		return 0, nil, err
	}
	var req closeRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"reason", req.Reason}); err != nil {
		return 0, nil, err
	}
	if err := api.MaxLen("reason", req.Reason, 4000); err != nil {
		return 0, nil, err
	}
	c, err := s.card(supplierID)
	if err != nil {
		return 0, nil, err
	}
	rv := c.Review(reviewID)
	if rv == nil {
		return 0, nil, api.Errorf(http.StatusNotFound, "supplier %s has no disinvestment review %s", supplierID, reviewID)
	}
	if rv.Status != "open" {
		return 0, nil, api.Errorf(http.StatusConflict, "review %s was already closed on %s", reviewID, rv.ClosedOn)
	}
	now := s.now()
	out, err := s.emit.Emit(r.Context(), api.EventID(r, p), supplierID, now, &pb.DisinvestmentReviewClosed{
		ReviewId: reviewID, Reason: req.Reason, ClosedBy: p.String(), ClosedOn: calendar.Today(now),
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"review_id": reviewID, "event": out}, nil
}
