// Package rules is the enforcement rulebook: the versioned rules that turn
// commitments and assessments into consequences (breaches, escalations,
// closures, disinvestment reviews) and the KPI rating formula.
//
// Evaluate is a pure function of a supplier's scorecard, today's date and
// the bank-holiday calendar. It returns the consequences the rules require
// that the scorecard does not yet record; the enforcement service signs and
// emits them as events, so replaying the ledger never consults a clock.
// Every consequence cites its rule id, rule version and the events behind it.
// A changed rule gets a new version; consequences already recorded keep the
// version that raised them.
//
// The rules are specified, with examples, in features/rules_*.feature.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/calendar"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/scorecard"
)

// Rule names one rule at one version.
type Rule struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Title   string `json:"title"`
	Text    string `json:"text"`
}

// The rulebook in force.
var (
	MissedTarget = Rule{"R1-missed-target", "1", "Missed target",
		"A commitment whose target date passes without a conformant assessment raises a major breach on the day after the target date. A commitment withdrawn on or before its target date is exempt."}
	NonConformance = Rule{"R2-non-conformance", "1", "Non-conformance",
		"An assessment assessed after the target date raises a breach: non_conformant is major, partially_conformant minor. Before the target date the commitment is shown at risk, with no breach. A commitment has at most one open breach at a time."}
	Remediation = Rule{"R3-remediation", "1", "Remediation",
		"A breach with no remediation plan agreed by the 20th working day after it was raised escalates to level 1 (notice to improve) on the next working day. A breach whose agreed plan's due date passes while the breach is still open escalates to level 2 (contract performance notice, published) on the day after the due date. Working days exclude weekends and bank holidays in England."}
	Closure = Rule{"R4-closure", "1", "Closure",
		"A conformant assessment of a commitment, recorded after a breach was raised, closes the breach as remediated and stops its escalation clock."}
	Disputes = Rule{"R5-disputes", "1", "Disputes (right of reply)",
		"A supplier may dispute an assessment up to and including the 10th working day after the assessment was recorded. While the dispute is open, breaches the assessment caused do not escalate. Upheld: the assessment is void and its breaches are withdrawn. Rejected: the escalation clocks resume, extended by the working days the dispute was open."}
	Withdrawal = Rule{"R6-withdrawal", "1", "Withdrawal",
		"A supplier may withdraw a commitment on or before its target date at no cost. A withdrawal after the target date raises a major breach."}
	RepeatBreaches = Rule{"R7-repeat-breaches", "1", "Repeat breaches",
		"Three or more breaches (withdrawn ones excepted) raised against a supplier within any rolling 12 months open a disinvestment review, unless one is already open. Breaches cited by an earlier review do not count again. The review stays on the scorecard until a commercial user closes it with a reason."}
	KPIRating = Rule{"R8-kpi-rating", "1", "KPI rating", RatingFormula}
)

// All lists the rulebook in order.
func All() []Rule {
	return []Rule{MissedTarget, NonConformance, Remediation, Closure, Disputes, Withdrawal, RepeatBreaches, KPIRating}
}

// Working-day periods of the rules.
const (
	PlanDeadlineWorkingDays  = 20
	DisputeWindowWorkingDays = 10
)

// Consequence is one event the rules require.
type Consequence struct {
	// EventID is derived from the rule and what it is about, so the same
	// consequence always has the same id and is stored once however often
	// it is emitted.
	EventID string
	Payload proto.Message
}

// Engine evaluates the rules against a calendar.
type Engine struct {
	cal *calendar.Calendar
}

// New returns an engine using cal for working days.
func New(cal *calendar.Calendar) *Engine { return &Engine{cal: cal} }

// id derives a consequence's event id and record id from its rule and key.
func id(r Rule, prefix, key string) (eventID, recordID string) {
	sum := sha256.Sum256([]byte(r.ID + "\x00" + key))
	h := hex.EncodeToString(sum[:])
	return "ev_" + h[:32], prefix + "_" + h[:12]
}

func cite(r Rule, because ...string) *pb.RuleCitation {
	return &pb.RuleCitation{RuleId: r.ID, RuleVersion: r.Version, BecauseOf: because}
}

func date(s string) (time.Time, error) { return calendar.ParseDate(s) }

func fmtDate(t time.Time) string { return t.Format(calendar.DateLayout) }

// Evaluate returns the consequences that the rules require of card on date
// today (YYYY-MM-DD) and that card does not yet record. The rules are tried
// in a fixed order (closures, withdrawals by dispute, non-conformance,
// missed target, withdrawal, escalation, review) and only the first that
// has something to say answers, because its consequences change what the
// later ones see; call again after they are applied until nothing is
// returned.
func (e *Engine) Evaluate(c *scorecard.Card, today string) ([]Consequence, error) {
	if _, err := date(today); err != nil {
		return nil, fmt.Errorf("rules: today: %w", err)
	}
	for _, step := range []func(*scorecard.Card, string) ([]Consequence, error){
		e.closures, e.disputeWithdrawals, e.nonConformance, e.missedTargets, e.withdrawals, e.escalations, e.reviews,
	} {
		cs, err := step(c, today)
		if err != nil {
			return nil, fmt.Errorf("rules: supplier %s: %w", c.SupplierID, err)
		}
		if len(cs) > 0 {
			return cs, nil
		}
	}
	return nil, nil
}

func openBreachOn(c *scorecard.Card, commitmentID string) *scorecard.Breach {
	for _, b := range c.Breaches {
		if b.CommitmentID == commitmentID && b.Status == scorecard.BreachOpen {
			return b
		}
	}
	return nil
}

// closures: R4.
func (e *Engine) closures(c *scorecard.Card, today string) ([]Consequence, error) {
	var out []Consequence
	for _, b := range c.Breaches {
		if b.Status != scorecard.BreachOpen {
			continue
		}
		cm := c.Commitment(b.CommitmentID)
		if cm == nil {
			continue
		}
		for _, a := range cm.Assessments {
			if a.Void || a.Outcome != "conformant" || a.Seq < b.Seq {
				continue
			}
			evID, _ := id(Closure, "x", b.ID)
			out = append(out, Consequence{evID, &pb.BreachClosed{
				BreachId: b.ID, Closure: pb.BreachClosure_BREACH_CLOSURE_REMEDIATED,
				ClosedOn: a.RecordedOn, Rule: cite(Closure, b.Event, a.Event),
			}})
			break
		}
	}
	return out, nil
}

// disputeWithdrawals: R5, upheld disputes withdraw the breaches their
// assessment caused.
func (e *Engine) disputeWithdrawals(c *scorecard.Card, today string) ([]Consequence, error) {
	var out []Consequence
	for _, d := range c.Disputes {
		if d.Status != "upheld" {
			continue
		}
		for _, b := range c.Breaches {
			if b.Status != scorecard.BreachOpen || b.AssessmentID != d.AssessmentID {
				continue
			}
			evID, _ := id(Disputes, "x", b.ID)
			out = append(out, Consequence{evID, &pb.BreachClosed{
				BreachId: b.ID, Closure: pb.BreachClosure_BREACH_CLOSURE_WITHDRAWN,
				ClosedOn: d.ResolvedOn, Rule: cite(Disputes, b.Event, d.Event, d.ResolveEvent),
			}})
		}
	}
	return out, nil
}

func hasBreach(c *scorecard.Card, ruleID, commitmentID, assessmentID string) bool {
	for _, b := range c.Breaches {
		if b.Rule.RuleID == ruleID && b.CommitmentID == commitmentID && b.AssessmentID == assessmentID {
			return true
		}
	}
	return false
}

// missedTargets: R1.
func (e *Engine) missedTargets(c *scorecard.Card, today string) ([]Consequence, error) {
	var out []Consequence
	for _, cm := range c.Commitments {
		if today <= cm.TargetDate || hasBreach(c, MissedTarget.ID, cm.ID, "") {
			continue
		}
		if cm.Withdrawal != nil && cm.Withdrawal.On <= cm.TargetDate {
			continue
		}
		if la := cm.LatestAssessment; la != nil && la.Outcome == "conformant" {
			continue
		}
		if openBreachOn(c, cm.ID) != nil {
			continue
		}
		target, err := date(cm.TargetDate)
		if err != nil {
			return nil, fmt.Errorf("commitment %s: %w", cm.ID, err)
		}
		because := []string{cm.MadeEvent}
		if la := cm.LatestAssessment; la != nil {
			because = append(because, la.Event)
		}
		evID, breachID := id(MissedTarget, "br", cm.ID)
		out = append(out, Consequence{evID, &pb.BreachRaised{
			BreachId: breachID, CommitmentId: cm.ID, Severity: pb.Severity_SEVERITY_MAJOR,
			Reason:   fmt.Sprintf("target date %s passed without a conformant assessment of %s %s for %s", cm.TargetDate, cm.StandardID, cm.StandardVersion, cm.Product),
			RaisedOn: fmtDate(target.AddDate(0, 0, 1)), Rule: cite(MissedTarget, because...),
		}})
	}
	return out, nil
}

// nonConformance: R2, judged on each commitment's latest effective
// assessment.
func (e *Engine) nonConformance(c *scorecard.Card, today string) ([]Consequence, error) {
	var out []Consequence
	for _, cm := range c.Commitments {
		a := cm.LatestAssessment
		if a == nil || a.Outcome == "conformant" || a.AssessedOn <= cm.TargetDate {
			continue
		}
		if hasBreach(c, NonConformance.ID, cm.ID, a.ID) || openBreachOn(c, cm.ID) != nil {
			continue
		}
		sev, word := pb.Severity_SEVERITY_MAJOR, "non-conformant"
		if a.Outcome == "partially_conformant" {
			sev, word = pb.Severity_SEVERITY_MINOR, "partially conformant"
		}
		evID, breachID := id(NonConformance, "br", a.ID)
		out = append(out, Consequence{evID, &pb.BreachRaised{
			BreachId: breachID, CommitmentId: cm.ID, AssessmentId: a.ID, Severity: sev,
			Reason:   fmt.Sprintf("assessed %s on %s, after the target date %s (evidence %s)", word, a.AssessedOn, cm.TargetDate, a.EvidenceRef),
			RaisedOn: a.RecordedOn, Rule: cite(NonConformance, cm.MadeEvent, a.Event),
		}})
	}
	return out, nil
}

// withdrawals: R6.
func (e *Engine) withdrawals(c *scorecard.Card, today string) ([]Consequence, error) {
	var out []Consequence
	for _, cm := range c.Commitments {
		w := cm.Withdrawal
		if w == nil || w.On <= cm.TargetDate || hasBreach(c, Withdrawal.ID, cm.ID, "") {
			continue
		}
		evID, breachID := id(Withdrawal, "br", cm.ID)
		out = append(out, Consequence{evID, &pb.BreachRaised{
			BreachId: breachID, CommitmentId: cm.ID, Severity: pb.Severity_SEVERITY_MAJOR,
			Reason:   fmt.Sprintf("commitment withdrawn on %s, after its target date %s", w.On, cm.TargetDate),
			RaisedOn: w.On, Rule: cite(Withdrawal, cm.MadeEvent, w.Event),
		}})
	}
	return out, nil
}

// Clock is where a breach's escalation stands on a given day.
type Clock struct {
	Paused       bool     `json:"paused"`                  // an open dispute holds it
	PausedDays   int      `json:"paused_working_days"`     // working days lost to disputes, added to deadlines
	PlanDeadline string   `json:"plan_deadline,omitempty"` // last day to agree a plan before level 1
	PlanDueDate  string   `json:"plan_due_date,omitempty"` // latest agreed plan's due date, extended by paused days
	NextDeadline string   `json:"next_deadline,omitempty"` // the next date something happens
	NextStep     string   `json:"next_step,omitempty"`     // what happens then
	Disputes     []string `json:"disputes,omitempty"`      // events of the disputes that paused it
}

// ClockOf computes the escalation clock of breach b.
func (e *Engine) ClockOf(c *scorecard.Card, b *scorecard.Breach) (Clock, error) {
	var k Clock
	if b.AssessmentID != "" {
		for _, d := range c.Disputes {
			if d.AssessmentID != b.AssessmentID {
				continue
			}
			k.Disputes = append(k.Disputes, d.Event)
			if d.Status == "open" {
				k.Paused = true
				continue
			}
			from, err := date(d.OpenedOn)
			if err != nil {
				return k, err
			}
			to, err := date(d.ResolvedOn)
			if err != nil {
				return k, err
			}
			n, err := e.cal.WorkingDaysBetween(from, to)
			if err != nil {
				return k, err
			}
			k.PausedDays += n
		}
	}
	raised, err := date(b.RaisedOn)
	if err != nil {
		return k, err
	}
	deadline, err := e.cal.AddWorkingDays(raised, PlanDeadlineWorkingDays+k.PausedDays)
	if err != nil {
		return k, err
	}
	k.PlanDeadline = fmtDate(deadline)
	if p := latestPlan(c, b.ID); p != nil {
		due, err := date(p.DueDate)
		if err != nil {
			return k, err
		}
		if k.PausedDays > 0 {
			if due, err = e.cal.AddWorkingDays(due, k.PausedDays); err != nil {
				return k, err
			}
		}
		k.PlanDueDate = fmtDate(due)
	}
	if b.Status != scorecard.BreachOpen {
		return k, nil
	}
	switch {
	case k.Paused:
		k.NextStep = "escalation paused while the dispute is open"
	case b.EscalationLevel < 1 && k.PlanDueDate == "":
		k.NextDeadline, k.NextStep = k.PlanDeadline, "last day to agree a remediation plan; level 1 (notice to improve) the next working day"
	case b.EscalationLevel < 2 && k.PlanDueDate != "":
		k.NextDeadline, k.NextStep = k.PlanDueDate, "plan due date; level 2 (contract performance notice, published) the day after if still open"
	}
	return k, nil
}

func latestPlan(c *scorecard.Card, breachID string) *scorecard.Plan {
	var p *scorecard.Plan
	for _, x := range c.Plans {
		if x.BreachID == breachID {
			p = x
		}
	}
	return p
}

func planAgreedBy(c *scorecard.Card, breachID, deadline string) *scorecard.Plan {
	for _, p := range c.Plans {
		if p.BreachID == breachID && p.AgreedOn <= deadline {
			return p
		}
	}
	return nil
}

// escalations: R3, with R5's pauses.
func (e *Engine) escalations(c *scorecard.Card, today string) ([]Consequence, error) {
	var out []Consequence
	for _, b := range c.Breaches {
		if b.Status != scorecard.BreachOpen || b.EscalationLevel >= 2 {
			continue
		}
		k, err := e.ClockOf(c, b)
		if err != nil {
			return nil, fmt.Errorf("breach %s: %w", b.ID, err)
		}
		if k.Paused {
			continue
		}
		because := append([]string{b.Event}, k.Disputes...)
		if b.EscalationLevel < 1 && today > k.PlanDeadline && planAgreedBy(c, b.ID, k.PlanDeadline) == nil {
			deadline, _ := date(k.PlanDeadline)
			issued, err := e.cal.AddWorkingDays(deadline, 1)
			if err != nil {
				return nil, fmt.Errorf("breach %s: %w", b.ID, err)
			}
			if fmtDate(issued) <= today {
				evID, _ := id(Remediation, "x", b.ID+"/1")
				out = append(out, Consequence{evID, &pb.EscalationIssued{
					BreachId: b.ID, Level: 1, IssuedOn: fmtDate(issued),
					Reason: fmt.Sprintf("no remediation plan agreed by %s, %d working days after the breach was raised on %s", k.PlanDeadline, PlanDeadlineWorkingDays+k.PausedDays, b.RaisedOn),
					Rule:   cite(Remediation, because...),
				}})
				continue
			}
		}
		if k.PlanDueDate != "" && today > k.PlanDueDate {
			p := latestPlan(c, b.ID)
			due, _ := date(k.PlanDueDate)
			evID, _ := id(Remediation, "x", b.ID+"/2")
			out = append(out, Consequence{evID, &pb.EscalationIssued{
				BreachId: b.ID, Level: 2, IssuedOn: fmtDate(due.AddDate(0, 0, 1)),
				Reason: fmt.Sprintf("remediation plan %s was due on %s and no conformant assessment has closed the breach; contract performance notice to be published", p.ID, k.PlanDueDate),
				Rule:   cite(Remediation, append(because, p.Event)...),
			}})
		}
	}
	return out, nil
}

// reviews: R7.
func (e *Engine) reviews(c *scorecard.Card, today string) ([]Consequence, error) {
	for _, r := range c.Reviews {
		if r.Status == "open" {
			return nil, nil
		}
	}
	cited := map[string]bool{}
	for _, r := range c.Reviews {
		for _, id := range r.BreachIDs {
			cited[id] = true
		}
	}
	var bs []*scorecard.Breach
	for _, b := range c.Breaches {
		if b.Status != scorecard.BreachWithdrawn && !cited[b.ID] {
			bs = append(bs, b)
		}
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].RaisedOn < bs[j].RaisedOn })
	for i := 0; i+2 < len(bs); i++ {
		first, err := date(bs[i].RaisedOn)
		if err != nil {
			return nil, err
		}
		end := fmtDate(first.AddDate(1, 0, 0))
		var window []*scorecard.Breach
		for _, b := range bs[i:] {
			if b.RaisedOn < end {
				window = append(window, b)
			}
		}
		if len(window) < 3 {
			continue
		}
		ids := make([]string, len(window))
		events := make([]string, len(window))
		for j, b := range window {
			ids[j], events[j] = b.ID, b.Event
		}
		evID, reviewID := id(RepeatBreaches, "rv", fmt.Sprint(ids))
		return []Consequence{{evID, &pb.DisinvestmentReviewOpened{
			ReviewId: reviewID, OpenedOn: today, BreachIds: ids, Rule: cite(RepeatBreaches, events...),
		}}}, nil
	}
	return nil, nil
}
