// Package scorecard is the per-supplier projection of the ledger: what a
// supplier committed to, how it was assessed, what is open against it, and
// why.
//
// Apply is a pure function of the card and the next event: it reads no
// clock and no other state, so replaying the log from the start rebuilds
// every card byte for byte. Every line on a card names the events (and, for
// consequences, the rule and rule version) behind it.
package scorecard

import (
	"encoding/json"
	"fmt"
	"time"

	gojson "github.com/goccy/go-json"
	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/calendar"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// Commitment statuses.
const (
	StatusOnTrack   = "on_track"
	StatusAtRisk    = "at_risk"
	StatusMet       = "met"
	StatusBreached  = "breached"
	StatusWithdrawn = "withdrawn"
)

// Breach statuses.
const (
	BreachOpen       = "open"
	BreachRemediated = "remediated"
	BreachWithdrawn  = "withdrawn"
)

// Card is one supplier's scorecard.
type Card struct {
	SupplierID    string        `json:"supplier_id"`
	Name          string        `json:"name"`
	Registered    bool          `json:"registered"`
	RegisteredBy  string        `json:"registered_event,omitempty"`
	Commitments   []*Commitment `json:"commitments"`
	Breaches      []*Breach     `json:"breaches"`
	Plans         []*Plan       `json:"remediation_plans"`
	Disputes      []*Dispute    `json:"disputes"`
	Reviews       []*Review     `json:"disinvestment_reviews"`
	Ignored       []Ignored     `json:"ignored_events,omitempty"`
	LastSeq       uint64        `json:"last_seq"`
	LastEventTime string        `json:"last_event_time"`
	EventCount    int           `json:"event_count"`

	// encoded keeps each record's JSON from the last Encode, by pointer;
	// Apply drops the entries of the records an event changes (at most a
	// commitment and one other).
	encoded map[any][]byte
	// leaves keeps each record's leaf hash from the last Hash, dropped
	// with its encoding.
	leaves map[any][32]byte
	// idx finds the card's records by id for Apply; nil until Apply first
	// runs on the card (see index).
	idx *index
	// part is set on a card read record by record (NewPartial): its lists
	// hold only the records read or added, the rest are in a Store.
	part *partial
}

// Commitment is one promise: a standard at a version, for a product, by a date.
type Commitment struct {
	ID               string        `json:"id"`
	StandardID       string        `json:"standard_id"`
	StandardVersion  string        `json:"standard_version"`
	Product          string        `json:"product"`
	ProductVersion   string        `json:"product_version,omitempty"`
	TargetDate       string        `json:"target_date"`
	Status           string        `json:"status"`
	MadeBy           string        `json:"made_by"`
	MadeEvent        string        `json:"made_event"`
	LatestAssessment *Assessment   `json:"latest_assessment,omitempty"`
	Assessments      []*Assessment `json:"assessments"`
	Withdrawal       *Withdrawal   `json:"withdrawal,omitempty"`
}

// Assessment is a commercial team's finding on a commitment.
type Assessment struct {
	ID          string `json:"id"`
	Outcome     string `json:"outcome"`
	EvidenceRef string `json:"evidence_ref"`
	Assessor    string `json:"assessor"`
	AssessedOn  string `json:"assessed_on"`
	RecordedOn  string `json:"recorded_on"`
	RecordedBy  string `json:"recorded_by"`
	Event       string `json:"event"`
	Seq         uint64 `json:"seq"`
	Disputed    bool   `json:"under_dispute,omitempty"`
	Void        bool   `json:"void,omitempty"`
}

// Withdrawal records a supplier withdrawing a commitment.
type Withdrawal struct {
	On     string `json:"on"`
	By     string `json:"by"`
	Reason string `json:"reason"`
	Event  string `json:"event"`
}

// Citation names the rule and the events behind a consequence.
type Citation struct {
	RuleID      string   `json:"rule_id"`
	RuleVersion string   `json:"rule_version"`
	BecauseOf   []string `json:"because_of"`
}

// Breach is a consequence raised by an enforcement rule.
type Breach struct {
	ID              string        `json:"id"`
	CommitmentID    string        `json:"commitment_id"`
	AssessmentID    string        `json:"assessment_id,omitempty"`
	Severity        string        `json:"severity"`
	Reason          string        `json:"reason"`
	RaisedOn        string        `json:"raised_on"`
	Status          string        `json:"status"`
	ClosedOn        string        `json:"closed_on,omitempty"`
	EscalationLevel int           `json:"escalation_level"`
	Escalations     []*Escalation `json:"escalations,omitempty"`
	Rule            Citation      `json:"rule"`
	ClosedBy        *Citation     `json:"closed_by_rule,omitempty"`
	Event           string        `json:"event"`
	Seq             uint64        `json:"seq"`
}

// Escalation is a step up the remediation ladder.
type Escalation struct {
	Level    int      `json:"level"`
	IssuedOn string   `json:"issued_on"`
	Reason   string   `json:"reason"`
	Rule     Citation `json:"rule"`
	Event    string   `json:"event"`
}

// Plan is an agreed remediation plan.
type Plan struct {
	ID       string `json:"id"`
	BreachID string `json:"breach_id"`
	DueDate  string `json:"due_date"`
	Summary  string `json:"summary"`
	AgreedBy string `json:"agreed_by"`
	AgreedOn string `json:"agreed_on"`
	Event    string `json:"event"`
}

// Dispute is a supplier's right of reply to an assessment.
type Dispute struct {
	ID           string `json:"id"`
	AssessmentID string `json:"assessment_id"`
	Grounds      string `json:"grounds"`
	OpenedBy     string `json:"opened_by"`
	OpenedOn     string `json:"opened_on"`
	Status       string `json:"status"` // open | upheld | rejected
	Reason       string `json:"resolution_reason,omitempty"`
	ResolvedBy   string `json:"resolved_by,omitempty"`
	ResolvedOn   string `json:"resolved_on,omitempty"`
	Event        string `json:"event"`
	ResolveEvent string `json:"resolve_event,omitempty"`
}

// Review is a disinvestment review.
type Review struct {
	ID        string   `json:"id"`
	OpenedOn  string   `json:"opened_on"`
	BreachIDs []string `json:"breach_ids"`
	Status    string   `json:"status"` // open | closed
	Reason    string   `json:"close_reason,omitempty"`
	ClosedBy  string   `json:"closed_by,omitempty"`
	ClosedOn  string   `json:"closed_on,omitempty"`
	Rule      Citation `json:"rule"`
	Event     string   `json:"event"`
}

// Ignored records an event that was validly signed but made no sense against
// the card (an assessment of an unknown commitment, say). It is kept on the
// card so the discrepancy is visible, not silently absorbed.
type Ignored struct {
	Seq    uint64 `json:"seq"`
	Event  string `json:"event"`
	Reason string `json:"reason"`
}

// Decode reads a card stored by Encode.
//
// Decoding is the cost of every read of a card that is not in memory (a
// scorecard served cold, a supplier's card fetched for its next event), so
// it goes through github.com/goccy/go-json, about five times faster than
// encoding/json on a card with a long history (BenchmarkDecode). Input
// that the fast decoder refuses, or that makes it panic, is decoded again
// by encoding/json, which gives the error (or, should the two ever
// disagree on valid JSON, the answer).
func Decode(b []byte) (*Card, error) {
	if c := new(Card); fastDecode(b, c) {
		return c, nil
	}
	c := new(Card)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("scorecard: decode: %w", err)
	}
	return c, nil
}

// fastDecode decodes b into c with the fast decoder, reporting whether it
// did so without error or panic.
func fastDecode(b []byte, c *Card) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return gojson.Unmarshal(b, c) == nil
}

// Encode serializes a card: exactly json.Marshal(c), so the encoding is
// deterministic (the same card always gives the same bytes), but only the
// records (commitments, breaches, plans, disputes, reviews) changed since
// the card was last encoded are encoded again, and they are encoded with
// github.com/goccy/go-json, byte for byte what encoding/json writes for
// these types (checked after every event of random histories of every
// event type, and by FuzzDecodeCard on arbitrary cards) and about twice as
// fast. Like Apply, it must not run concurrently with anything else on c.
func Encode(c *Card) ([]byte, error) {
	if c.part != nil {
		return nil, fmt.Errorf("scorecard: encode %s: a partial card is stored with Writes", c.SupplierID)
	}
	head, err := encodeHead(c.SupplierID, c.Name, c.Registered, c.RegisteredBy)
	if err != nil {
		return nil, err
	}
	tail, err := encodeTail(c.Ignored, c.LastSeq, c.LastEventTime, c.EventCount)
	if err != nil {
		return nil, err
	}
	if c.encoded == nil {
		c.encoded = map[any][]byte{}
	}
	// Encode what Apply dropped first, so the card is put together in
	// one buffer of the right size.
	size := len(head) + len(tail) + 128
	size += encodeRecords(c.Commitments, c.encoded, &err)
	size += encodeRecords(c.Breaches, c.encoded, &err)
	size += encodeRecords(c.Plans, c.encoded, &err)
	size += encodeRecords(c.Disputes, c.encoded, &err)
	size += encodeRecords(c.Reviews, c.encoded, &err)
	if err != nil {
		return nil, fmt.Errorf("scorecard: encode %s: %w", c.SupplierID, err)
	}
	out := make([]byte, 0, size)
	out = append(out, head[:len(head)-1]...)
	out = records(out, sectionField[0], c.Commitments, c.encoded)
	out = records(out, sectionField[1], c.Breaches, c.encoded)
	out = records(out, sectionField[2], c.Plans, c.encoded)
	out = records(out, sectionField[3], c.Disputes, c.encoded)
	out = records(out, sectionField[4], c.Reviews, c.encoded)
	out = append(out, ',')
	out = append(out, tail[1:]...)
	return out, nil
}

// encodeHead is the JSON of a card's fields before its records, as
// json.Marshal writes the card; encodeTail of those after them.
func encodeHead(supplierID, name string, registered bool, registeredBy string) ([]byte, error) {
	head, err := json.Marshal(struct {
		SupplierID   string `json:"supplier_id"`
		Name         string `json:"name"`
		Registered   bool   `json:"registered"`
		RegisteredBy string `json:"registered_event,omitempty"`
	}{supplierID, name, registered, registeredBy})
	if err != nil {
		return nil, fmt.Errorf("scorecard: encode %s: %w", supplierID, err)
	}
	return head, nil
}

func encodeTail(ignored []Ignored, lastSeq uint64, lastEventTime string, eventCount int) ([]byte, error) {
	tail, err := json.Marshal(struct {
		Ignored       []Ignored `json:"ignored_events,omitempty"`
		LastSeq       uint64    `json:"last_seq"`
		LastEventTime string    `json:"last_event_time"`
		EventCount    int       `json:"event_count"`
	}{ignored, lastSeq, lastEventTime, eventCount})
	if err != nil {
		return nil, fmt.Errorf("scorecard: encode tail: %w", err)
	}
	return tail, nil
}

// encodeRecords puts the JSON of every record of xs missing from enc (new,
// or dropped by Apply) in enc and returns the bytes the array will take.
// After an error (kept in *err) it does nothing more.
func encodeRecords[T any](xs []*T, enc map[any][]byte, err *error) int {
	size := 2 + len(xs)
	for _, x := range xs {
		if *err != nil {
			return 0
		}
		b, ok := enc[x]
		if !ok {
			if b, *err = gojson.Marshal(x); *err != nil {
				return 0
			}
			if x == nil {
				continue // "null", not cached under a nil key
			}
			enc[x] = b
		}
		size += len(b)
	}
	return size
}

// records appends the field name and the JSON array of xs from the
// encodings encodeRecords left in enc.
func records[T any](out []byte, field string, xs []*T, enc map[any][]byte) []byte {
	out = append(out, field...)
	if xs == nil {
		return append(out, "null"...)
	}
	out = append(out, '[')
	for i, x := range xs {
		if i > 0 {
			out = append(out, ',')
		}
		if x == nil {
			out = append(out, "null"...)
			continue
		}
		out = append(out, enc[x]...)
	}
	return append(out, ']')
}

// New returns the empty card of a supplier.
func New(supplierID string) *Card {
	return &Card{
		SupplierID:  supplierID,
		Commitments: []*Commitment{},
		Breaches:    []*Breach{},
		Plans:       []*Plan{},
		Disputes:    []*Dispute{},
		Reviews:     []*Review{},
	}
}

func citation(r *pb.RuleCitation) Citation {
	if r == nil {
		return Citation{BecauseOf: []string{}}
	}
	because := append([]string{}, r.BecauseOf...)
	return Citation{RuleID: r.RuleId, RuleVersion: r.RuleVersion, BecauseOf: because}
}

// OutcomeName is the API name of an assessment outcome.
func OutcomeName(o pb.Outcome) string {
	switch o {
	case pb.Outcome_OUTCOME_CONFORMANT:
		return "conformant"
	case pb.Outcome_OUTCOME_PARTIALLY_CONFORMANT:
		return "partially_conformant"
	case pb.Outcome_OUTCOME_NON_CONFORMANT:
		return "non_conformant"
	}
	return "unspecified"
}

// SeverityName is the API name of a breach severity.
func SeverityName(s pb.Severity) string {
	switch s {
	case pb.Severity_SEVERITY_MINOR:
		return "minor"
	case pb.Severity_SEVERITY_MAJOR:
		return "major"
	}
	return "unspecified"
}

// Apply folds the event at sequence seq into the card. It never fails: an
// event that does not fit the card is listed under Ignored with its reason.
func Apply(c *Card, seq uint64, ev *pb.Event, payload proto.Message) {
	c.LastSeq = seq
	c.EventCount++
	c.LastEventTime = time.Unix(0, ev.OccurredAtUnixNano).UTC().Format(time.RFC3339Nano)
	if reason := apply(c, c.indexed(), seq, ev, payload); reason != "" {
		c.Ignored = append(c.Ignored, Ignored{Seq: seq, Event: ev.EventId, Reason: reason})
	}
	// Only the commitment an event is about can change its latest
	// assessment or status; the rest are left as they are. LatestAssessment
	// is a copy once the card has been stored and read back, so it is
	// recomputed from Assessments.
	if cm := c.commitment(c.subject(payload)); cm != nil {
		cm.LatestAssessment = latest(cm)
		cm.Status = c.status(cm)
		c.changed(cm)
	}
}

// changed drops what Encode and Hash kept of a record an event changed.
func (c *Card) changed(record any) {
	delete(c.encoded, record)
	delete(c.leaves, record)
}

// subject is the id of the commitment an event is about, or "".
func (c *Card) subject(payload proto.Message) string {
	switch p := payload.(type) {
	case *pb.CommitmentMade:
		return p.CommitmentId
	case *pb.CommitmentWithdrawn:
		return p.CommitmentId
	case *pb.AssessmentRecorded:
		return p.CommitmentId
	case *pb.BreachRaised:
		return p.CommitmentId
	case *pb.BreachClosed:
		if b := c.breach(p.BreachId); b != nil {
			return b.CommitmentID
		}
	case *pb.DisputeOpened:
		return c.commitmentOf(p.AssessmentId)
	case *pb.DisputeResolved:
		if d := c.dispute(p.DisputeId); d != nil {
			return c.commitmentOf(d.AssessmentID)
		}
	}
	return ""
}

// commitmentOf is the id of the commitment an assessment assesses, or "".
func (c *Card) commitmentOf(assessmentID string) string {
	if c.idx != nil {
		if x := c.assessed(assessmentID); x.cm != nil {
			return x.cm.ID
		}
		return ""
	}
	for _, cm := range c.Commitments {
		for _, a := range cm.Assessments {
			if a.ID == assessmentID {
				return cm.ID
			}
		}
	}
	return ""
}

// apply applies one event to the card and its index ix, or returns why the
// event does not fit the card.
func apply(c *Card, ix *index, seq uint64, ev *pb.Event, payload proto.Message) string {
	switch p := payload.(type) {
	case *pb.SupplierRegistered:
		if c.Registered {
			return "supplier already registered"
		}
		c.Registered, c.Name, c.RegisteredBy = true, p.Name, ev.EventId
	case *pb.CommitmentMade:
		if c.commitment(p.CommitmentId) != nil {
			return "commitment " + p.CommitmentId + " already exists"
		}
		cm := &Commitment{
			ID: p.CommitmentId, StandardID: p.StandardId, StandardVersion: p.StandardVersion,
			Product: p.Product, ProductVersion: p.ProductVersion, TargetDate: p.TargetDate,
			MadeBy: p.MadeBy, MadeEvent: ev.EventId, Assessments: []*Assessment{},
		}
		c.Commitments = append(c.Commitments, cm)
		ix.addCommitment(cm)
	case *pb.CommitmentWithdrawn:
		cm := c.commitment(p.CommitmentId)
		if cm == nil {
			return "withdrawal of unknown commitment " + p.CommitmentId
		}
		if cm.Withdrawal != nil {
			return "commitment " + p.CommitmentId + " already withdrawn"
		}
		cm.Withdrawal = &Withdrawal{On: p.WithdrawnOn, By: p.WithdrawnBy, Reason: p.Reason, Event: ev.EventId}
		c.changed(cm)
	case *pb.AssessmentRecorded:
		cm := c.commitment(p.CommitmentId)
		if cm == nil {
			return "assessment of unknown commitment " + p.CommitmentId
		}
		if c.assessment(p.AssessmentId) != nil {
			return "assessment " + p.AssessmentId + " already recorded (a replay under a new event id?)"
		}
		a := &Assessment{
			ID: p.AssessmentId, Outcome: OutcomeName(p.Outcome), EvidenceRef: p.EvidenceRef,
			Assessor: p.Assessor, AssessedOn: p.AssessedOn, RecordedBy: p.RecordedBy,
			RecordedOn: calendar.Today(time.Unix(0, ev.OccurredAtUnixNano)),
			Event:      ev.EventId, Seq: seq,
		}
		cm.Assessments = append(cm.Assessments, a)
		ix.addAssessment(a, cm)
		c.changed(cm)
	case *pb.BreachRaised:
		if c.commitment(p.CommitmentId) == nil {
			return "breach of unknown commitment " + p.CommitmentId
		}
		if c.breach(p.BreachId) != nil {
			return "breach " + p.BreachId + " already raised"
		}
		b := &Breach{
			ID: p.BreachId, CommitmentID: p.CommitmentId, AssessmentID: p.AssessmentId,
			Severity: SeverityName(p.Severity), Reason: p.Reason, RaisedOn: p.RaisedOn,
			Status: BreachOpen, Rule: citation(p.Rule), Event: ev.EventId, Seq: seq,
		}
		c.Breaches = append(c.Breaches, b)
		ix.addBreach(b)
	case *pb.BreachClosed:
		b := c.breach(p.BreachId)
		if b == nil {
			return "closure of unknown breach " + p.BreachId
		}
		if b.Status != BreachOpen {
			return "breach " + p.BreachId + " is not open"
		}
		b.Status = BreachRemediated
		if p.Closure == pb.BreachClosure_BREACH_CLOSURE_WITHDRAWN {
			b.Status = BreachWithdrawn
		}
		ix.open[b.CommitmentID]-- // no longer open against its commitment
		cit := citation(p.Rule)
		b.ClosedOn, b.ClosedBy = p.ClosedOn, &cit
		c.changed(b)
	case *pb.EscalationIssued:
		b := c.breach(p.BreachId)
		if b == nil {
			return "escalation of unknown breach " + p.BreachId
		}
		b.Escalations = append(b.Escalations, &Escalation{
			Level: int(p.Level), IssuedOn: p.IssuedOn, Reason: p.Reason, Rule: citation(p.Rule), Event: ev.EventId,
		})
		if int(p.Level) > b.EscalationLevel {
			b.EscalationLevel = int(p.Level)
		}
		c.changed(b)
	case *pb.RemediationPlanAgreed:
		if c.breach(p.BreachId) == nil {
			return "plan for unknown breach " + p.BreachId
		}
		if c.hasPlan(p.PlanId) {
			return "plan " + p.PlanId + " already agreed (a replay under a new event id?)"
		}
		c.Plans = append(c.Plans, &Plan{
			ID: p.PlanId, BreachID: p.BreachId, DueDate: p.DueDate, Summary: p.Summary,
			AgreedBy: p.AgreedBy, AgreedOn: p.AgreedOn, Event: ev.EventId,
		})
		ix.plans[p.PlanId] = struct{}{}
	case *pb.DisputeOpened:
		a := c.assessment(p.AssessmentId)
		if a == nil {
			return "dispute of unknown assessment " + p.AssessmentId
		}
		if c.dispute(p.DisputeId) != nil {
			return "dispute " + p.DisputeId + " already opened (a replay under a new event id?)"
		}
		a.Disputed = true
		d := &Dispute{
			ID: p.DisputeId, AssessmentID: p.AssessmentId, Grounds: p.Grounds,
			OpenedBy: p.OpenedBy, OpenedOn: p.OpenedOn, Status: "open", Event: ev.EventId,
		}
		c.Disputes = append(c.Disputes, d)
		ix.addDispute(d)
	case *pb.DisputeResolved:
		d := c.dispute(p.DisputeId)
		if d == nil {
			return "resolution of unknown dispute " + p.DisputeId
		}
		if d.Status != "open" {
			return "dispute " + p.DisputeId + " already resolved"
		}
		a := c.assessment(d.AssessmentID)
		if a == nil {
			return "dispute " + p.DisputeId + " names assessment " + d.AssessmentID + ", not on the card"
		}
		d.Status = "rejected"
		a.Disputed = false
		if p.Outcome == pb.DisputeOutcome_DISPUTE_OUTCOME_UPHELD {
			d.Status = "upheld"
			a.Void = true
		}
		d.Reason, d.ResolvedBy, d.ResolvedOn, d.ResolveEvent = p.Reason, p.ResolvedBy, p.ResolvedOn, ev.EventId
		c.changed(d)
	case *pb.DisinvestmentReviewOpened:
		if c.review(p.ReviewId) != nil {
			return "review " + p.ReviewId + " already opened (a replay under a new event id?)"
		}
		r := &Review{
			ID: p.ReviewId, OpenedOn: p.OpenedOn, BreachIDs: append([]string{}, p.BreachIds...),
			Status: "open", Rule: citation(p.Rule), Event: ev.EventId,
		}
		c.Reviews = append(c.Reviews, r)
		ix.addReview(r)
	case *pb.DisinvestmentReviewClosed:
		r := c.review(p.ReviewId)
		if r == nil {
			return "closure of unknown review " + p.ReviewId
		}
		if r.Status != "open" {
			return "review " + p.ReviewId + " already closed"
		}
		r.Status, r.Reason, r.ClosedBy, r.ClosedOn = "closed", p.Reason, p.ClosedBy, p.ClosedOn
		c.changed(r)
	default:
		return fmt.Sprintf("event type %s does not belong on a scorecard", ev.Type)
	}
	return ""
}

// latest is the most recent assessment that has not been voided by an upheld
// dispute.
func latest(cm *Commitment) *Assessment {
	for i := len(cm.Assessments) - 1; i >= 0; i-- {
		if !cm.Assessments[i].Void {
			return cm.Assessments[i]
		}
	}
	return nil
}

func (c *Card) status(cm *Commitment) string {
	if cm.Withdrawal != nil {
		return StatusWithdrawn
	}
	if c.breached(cm.ID) {
		return StatusBreached
	}
	switch a := cm.LatestAssessment; {
	case a == nil:
		return StatusOnTrack
	case a.Outcome == "conformant":
		return StatusMet
	default:
		return StatusAtRisk
	}
}

// breached reports whether any breach is open against the commitment.
func (c *Card) breached(commitmentID string) bool {
	if c.idx != nil {
		return c.idx.open[commitmentID] > 0
	}
	for _, b := range c.Breaches {
		if b.CommitmentID == commitmentID && b.Status == BreachOpen {
			return true
		}
	}
	return false
}

// The lookups below use the card's index once Apply has built it, and scan
// the card's lists before: a card read back by Decode and shared by
// readers is never written to by a lookup.

func (c *Card) commitment(id string) *Commitment {
	if c.idx != nil {
		if cm, ok := c.idx.commitments[id]; ok || c.part == nil {
			return cm
		}
		return c.partCommitment(id)
	}
	for _, cm := range c.Commitments {
		if cm.ID == id {
			return cm
		}
	}
	return nil
}

// Commitment returns the commitment with the given id, or nil.
func (c *Card) Commitment(id string) *Commitment { return c.commitment(id) }

// Assessment returns the assessment with the given id, or nil.
func (c *Card) Assessment(id string) *Assessment { return c.assessment(id) }

func (c *Card) assessment(id string) *Assessment {
	if c.idx != nil {
		return c.assessed(id).a
	}
	for _, cm := range c.Commitments {
		for _, a := range cm.Assessments {
			if a.ID == id {
				return a
			}
		}
	}
	return nil
}

func (c *Card) breach(id string) *Breach {
	if c.idx != nil {
		if b, ok := c.idx.breaches[id]; ok || c.part == nil {
			return b
		}
		return c.partBreach(id)
	}
	for _, b := range c.Breaches {
		if b.ID == id {
			return b
		}
	}
	return nil
}

// Breach returns the breach with the given id, or nil.
func (c *Card) Breach(id string) *Breach { return c.breach(id) }

func (c *Card) dispute(id string) *Dispute {
	if c.idx != nil {
		if d, ok := c.idx.disputes[id]; ok || c.part == nil {
			return d
		}
		return c.partDispute(id)
	}
	for _, d := range c.Disputes {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// Dispute returns the dispute with the given id, or nil.
func (c *Card) Dispute(id string) *Dispute { return c.dispute(id) }

func (c *Card) review(id string) *Review {
	if c.idx != nil {
		if r, ok := c.idx.reviews[id]; ok || c.part == nil {
			return r
		}
		return c.partReview(id)
	}
	for _, r := range c.Reviews {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// assessed is the indexed assessment of that id and its commitment (read
// from the store for a partial card).
func (c *Card) assessed(id string) assessed {
	if x, ok := c.idx.assessments[id]; ok || c.part == nil {
		return x
	}
	return c.partAssessment(id)
}

// hasPlan says whether the card has a plan of that id. Only Apply calls
// it: it builds the index.
func (c *Card) hasPlan(id string) bool {
	if _, ok := c.indexed().plans[id]; ok || c.part == nil {
		return ok
	}
	_, ok := c.read(KindPlan, id, nil)
	return ok
}

// Review returns the review with the given id, or nil.
func (c *Card) Review(id string) *Review { return c.review(id) }
