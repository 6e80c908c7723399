// Package commitments is the suppliers' service: a supplier registers, makes
// commitments to standards (standard, version, product, target date) and
// withdraws them. Every write is a signed event emitted through the ledger.
package commitments

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/services/emit"
	"github.com/supplier-accountability/sal/standards"
)

// EventTypes are the events this service's key is authorized to emit.
var EventTypes = []pb.EventType{
	pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED,
	pb.EventType_EVENT_TYPE_COMMITMENT_MADE,
	pb.EventType_EVENT_TYPE_COMMITMENT_WITHDRAWN,
	pb.EventType_EVENT_TYPE_DISPUTE_OPENED,
}

type emitter interface {
	Emit(ctx context.Context, eventID, supplierID string, at time.Time, payload proto.Message) (emit.Outcome, error)
	Replayed(eventID string) (emit.Outcome, bool, error)
}

type cards interface {
	Card(supplierID string) (*scorecard.Card, error)
}

// Service handles the supplier-facing writes.
type Service struct {
	emit  emitter
	cards cards
	cal   *calendar.Calendar
	now   func() time.Time
}

// New returns the service. cal decides the dispute window's working days.
func New(e emitter, c cards, cal *calendar.Calendar, now func() time.Time) *Service {
	return &Service{emit: e, cards: c, cal: cal, now: now}
}

// Register adds the service's routes to mux. Every route expects an
// authenticated request.
func (s *Service) Register(mux api.Router) {
	mux.HandleFunc("POST /v1/suppliers", s.handle(s.register))
	mux.HandleFunc("POST /v1/suppliers/{supplier}/commitments", s.handle(s.commit, "commitment_id", "cm"))
	mux.HandleFunc("POST /v1/suppliers/{supplier}/commitments/{commitment}/withdrawal", s.handle(s.withdraw))
	mux.HandleFunc("POST /v1/suppliers/{supplier}/assessments/{assessment}/disputes", s.handle(s.dispute, "dispute_id", "dp"))
}

func (s *Service) handle(fn emit.Write, record ...string) http.HandlerFunc {
	return emit.Handler(s.emit, fn, record...)
}

type registerRequest struct {
	SupplierID string `json:"supplier_id"`
	Name       string `json:"name"`
}

func (s *Service) register(r *http.Request, p auth.Principal) (int, any, error) {
	var req registerRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"supplier_id", req.SupplierID}, [2]string{"name", req.Name}); err != nil {
		return 0, nil, err
	}
	if !auth.SupplierIDPattern.MatchString(req.SupplierID) {
		return 0, nil, api.Errorf(http.StatusBadRequest, "supplier_id %q must be 2-63 lower-case letters, digits or dashes", req.SupplierID)
	}
	if err := api.MaxLen("name", req.Name, 200); err != nil {
		return 0, nil, err
	}
	if p.Role != auth.Commercial {
		if err := api.RequireSupplierSelf(p, req.SupplierID); err != nil {
			return 0, nil, err
		}
	}
	switch c, err := s.cards.Card(req.SupplierID); {
	case err == nil && c.Registered:
		return 0, nil, api.Errorf(http.StatusConflict, "supplier %s is already registered", req.SupplierID)
	case err != nil && !errors.Is(err, ledger.ErrNotFound):
		return 0, nil, err
	}
	eventID := api.EventID(r, p)
	out, err := s.emit.Emit(r.Context(), eventID, req.SupplierID, s.now(), &pb.SupplierRegistered{Name: strings.TrimSpace(req.Name)})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"supplier_id": req.SupplierID, "name": req.Name, "event": out}, nil
}

// registered returns the supplier's card, or 404 when it is not registered.
// Call it only after the caller is known to be allowed to see supplierID.
func (s *Service) registered(supplierID string) (*scorecard.Card, error) {
	c, err := s.cards.Card(supplierID)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && !c.Registered) {
		return nil, api.Errorf(http.StatusNotFound, "supplier %s is not registered", supplierID)
	}
	return c, err
}

type commitRequest struct {
	Standard       string `json:"standard"`
	Version        string `json:"version"`
	Product        string `json:"product"`
	ProductVersion string `json:"product_version"`
	TargetDate     string `json:"target_date"`
}

func (s *Service) commit(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID := r.PathValue("supplier")
	if err := api.RequireSupplierSelf(p, supplierID); err != nil {
		return 0, nil, err
	}
	var req commitRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"standard", req.Standard}, [2]string{"version", req.Version}, [2]string{"product", req.Product}); err != nil {
		return 0, nil, err
	}
	std, ok := standards.Lookup(req.Standard)
	if !ok {
		return 0, nil, api.Errorf(http.StatusBadRequest, "%v", standards.ErrUnknown(req.Standard))
	}
	for _, f := range [][2]string{{"version", req.Version}, {"product", req.Product}, {"product_version", req.ProductVersion}} {
		if err := api.MaxLen(f[0], f[1], 100); err != nil {
			return 0, nil, err
		}
	}
	if _, err := api.ParseDate("target_date", req.TargetDate); err != nil {
		return 0, nil, err
	}
	if _, err := s.registered(supplierID); err != nil {
		return 0, nil, err
	}
	eventID, commitmentID := api.IDs(r, p, "cm")
	out, err := s.emit.Emit(r.Context(), eventID, supplierID, s.now(), &pb.CommitmentMade{
		CommitmentId:    commitmentID,
		StandardId:      std.ID,
		StandardVersion: req.Version,
		Product:         req.Product,
		ProductVersion:  req.ProductVersion,
		TargetDate:      req.TargetDate,
		MadeBy:          p.String(),
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"commitment_id": commitmentID, "standard": std.ID, "event": out}, nil
}

type withdrawRequest struct {
	Reason string `json:"reason"`
}

func (s *Service) withdraw(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID, commitmentID := r.PathValue("supplier"), r.PathValue("commitment")
	if err := api.RequireSupplierSelf(p, supplierID); err != nil {
		return 0, nil, err
	}
	var req withdrawRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"reason", req.Reason}); err != nil {
		return 0, nil, err
	}
	if err := api.MaxLen("reason", req.Reason, 2000); err != nil {
		return 0, nil, err
	}
	card, err := s.registered(supplierID)
	if err != nil {
		return 0, nil, err
	}
	cm := card.Commitment(commitmentID)
	if cm == nil {
		return 0, nil, api.Errorf(http.StatusNotFound, "supplier %s has no commitment %s", supplierID, commitmentID)
	}
	if cm.Withdrawal != nil {
		return 0, nil, api.Errorf(http.StatusConflict, "commitment %s was already withdrawn on %s", commitmentID, cm.Withdrawal.On)
	}
	now := s.now()
	out, err := s.emit.Emit(r.Context(), api.EventID(r, p), supplierID, now, &pb.CommitmentWithdrawn{
		CommitmentId: commitmentID, Reason: req.Reason, WithdrawnBy: p.String(), WithdrawnOn: calendar.Today(now),
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"commitment_id": commitmentID, "event": out}, nil
}

type disputeRequest struct {
	Grounds string `json:"grounds"`
}

// dispute is the supplier's right of reply (rule R5): within the dispute
// window, a supplier may dispute an assessment of its own commitment.
func (s *Service) dispute(r *http.Request, p auth.Principal) (int, any, error) {
	supplierID, assessmentID := r.PathValue("supplier"), r.PathValue("assessment")
	if err := api.RequireSupplierSelf(p, supplierID); err != nil {
		return 0, nil, err
	}
	var req disputeRequest
	if err := api.Decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := api.Required([2]string{"grounds", req.Grounds}); err != nil {
		return 0, nil, err
	}
	if err := api.MaxLen("grounds", req.Grounds, 4000); err != nil {
		return 0, nil, err
	}
	card, err := s.registered(supplierID)
	if err != nil {
		return 0, nil, err
	}
	a := card.Assessment(assessmentID)
	if a == nil {
		return 0, nil, api.Errorf(http.StatusNotFound, "supplier %s has no assessment %s", supplierID, assessmentID)
	}
	if a.Void {
		return 0, nil, api.Errorf(http.StatusConflict, "assessment %s is already void", assessmentID)
	}
	for _, d := range card.Disputes {
		if d.AssessmentID == assessmentID && d.Status == "open" {
			return 0, nil, api.Errorf(http.StatusConflict, "assessment %s is already under dispute (%s)", assessmentID, d.ID)
		}
	}
	now := s.now()
	today := calendar.Today(now)
	recorded, err := calendar.ParseDate(a.RecordedOn)
	if err != nil {
		return 0, nil, err
	}
	last, err := s.cal.AddWorkingDays(recorded, rules.DisputeWindowWorkingDays)
	if err != nil {
		return 0, nil, err
	}
	if lastDay := last.Format(calendar.DateLayout); today > lastDay {
		return 0, nil, api.Errorf(http.StatusConflict, "the dispute window for assessment %s closed on %s (%d working days after it was recorded on %s; rule %s v%s)",
			assessmentID, lastDay, rules.DisputeWindowWorkingDays, a.RecordedOn, rules.Disputes.ID, rules.Disputes.Version)
	}
	eventID, disputeID := api.IDs(r, p, "dp")
	out, err := s.emit.Emit(r.Context(), eventID, supplierID, now, &pb.DisputeOpened{
		DisputeId: disputeID, AssessmentId: assessmentID, Grounds: req.Grounds, OpenedBy: p.String(), OpenedOn: today,
	})
	if err != nil {
		return 0, nil, err
	}
	return out.Status(), map[string]any{"dispute_id": disputeID, "assessment_id": assessmentID, "event": out}, nil
}
