package features_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cucumber/godog"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/scorecards"
)

func registerRuleSteps(sc *godog.ScenarioContext, w *world) {
	sc.Step(`^the commercial team assesses that commitment as "([^"]*)"$`, w.assessesShort)
	sc.Step(`^the commitment's status is "([^"]*)"$`, w.commitmentStatus)
	sc.Step(`^(?:a|the) (major|minor) breach is raised under rule "([^"]*)" version "([^"]*)"$`, w.breachRaised)
	sc.Step(`^no breach is raised$`, w.noBreach)
	sc.Step(`^the breach was raised on (\d{4}-\d{2}-\d{2})$`, w.breachRaisedOn)
	sc.Step(`^the breach cites the event that made the commitment$`, func() error { return w.breachCites("made") })
	sc.Step(`^the breach cites the event that made the commitment and the latest assessment$`, func() error { return w.breachCites("made", "assessment") })
	sc.Step(`^the breach cites the event that made the commitment and the withdrawal$`, func() error { return w.breachCites("made", "withdrawal") })
	sc.Step(`^supplier "([^"]*)" withdraws that commitment because "([^"]*)"$`, w.withdraws)
	sc.Step(`^supplier "([^"]*)" tries to withdraw the commitment of "([^"]*)"$`, w.triesToWithdrawOther)
	sc.Step(`^the enforcement rules are evaluated again$`, w.evaluateAgain)
	sc.Step(`^nothing new is emitted$`, w.nothingEmitted)
	sc.Step(`^the ledger holds (\d+) "([^"]*)" events?$`, w.ledgerHolds)
	sc.Step(`^the system restarts$`, w.restart)
	sc.Step(`^the scorecard of "([^"]*)" lists (\d+) breach(?:es)?$`, w.listsBreaches)
	sc.Step(`^the breach is at escalation level (\d)$`, func(n int) error { return w.escalationLevel("", n) })
	sc.Step(`^the breach of the "([^"]*)" commitment is at escalation level (\d)$`, w.escalationLevel)
	sc.Step(`^the breach's next deadline is (\d{4}-\d{2}-\d{2})$`, w.nextDeadline)
	sc.Step(`^the breach's escalation is paused$`, w.escalationPaused)
	sc.Step(`^the escalation to level (\d) was issued on (\d{4}-\d{2}-\d{2}) under rule "([^"]*)" version "([^"]*)"$`, w.escalationIssued)
	sc.Step(`^the commercial team agrees a remediation plan for the breach due (\d{4}-\d{2}-\d{2})$`, func(due string) error { return w.agreePlan("commercial", due, true) })
	sc.Step(`^supplier "([^"]*)" tries to agree a remediation plan for the breach due (\d{4}-\d{2}-\d{2})$`, func(s, due string) error { return w.agreePlan("supplier:"+s, due, false) })
	sc.Step(`^the breach has no remediation plan$`, w.noPlan)
	sc.Step(`^the breach is "([^"]*)"$`, w.breachStatus)
	sc.Step(`^the breach was closed under rule "([^"]*)" version "([^"]*)" citing the (latest assessment|dispute)$`, w.breachClosedBy)
	sc.Step(`^supplier "([^"]*)" disputes the latest assessment on the grounds "([^"]*)"$`, w.disputes)
	sc.Step(`^the latest assessment is (not )?under dispute$`, w.underDispute)
	sc.Step(`^the answer says "([^"]*)"$`, w.answerSays)
	sc.Step(`^the commercial team (upholds|rejects) the dispute because "([^"]*)"$`, func(o, why string) error { return w.resolve("commercial", o, why, true) })
	sc.Step(`^supplier "([^"]*)" tries to uphold the dispute$`, func(s string) error { return w.resolve("supplier:"+s, "upholds", "we agree with ourselves", false) })
	sc.Step(`^a disinvestment review is open for "([^"]*)" citing (\d+) breaches under rule "([^"]*)" version "([^"]*)"$`, w.reviewOpen)
	sc.Step(`^no disinvestment review is open for "([^"]*)"$`, w.noReview)
	sc.Step(`^the commercial team closes the review because "([^"]*)"$`, func(why string) error { return w.closeReview("commercial", why, true) })
	sc.Step(`^supplier "([^"]*)" tries to close the review$`, func(s string) error { return w.closeReview("supplier:"+s, "nothing to see", false) })
	sc.Step(`^the closed review shows the reason "([^"]*)"$`, w.closedReviewReason)
	sc.Step(`^the rating of "([^"]*)" is "([^"]*)"$`, w.ratingIs)
	sc.Step(`^the rating cites rule "([^"]*)" version "([^"]*)" with (\d+) conformant of (\d+) assessed past-target commitments?$`, w.ratingCites)
	sc.Step(`^the rating reasons mention "([^"]*)"$`, w.ratingMentions)
}

// settle lets the enforcement service apply the rules at the scenario's
// current moment, as its background loop would, and waits for it.
func (w *world) settle() error {
	n, err := w.evaluate(context.Background())
	w.lastEmitted = n
	return err
}

// view reads a supplier's scorecard as served to a commercial user.
func (w *world) view(supplier string) (*scorecards.View, error) {
	if _, err := w.mustCall("commercial", "GET", "/v1/suppliers/"+supplier+"/scorecard", nil); err != nil {
		return nil, err
	}
	var v scorecards.View
	if err := json.Unmarshal(w.lastBody, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// thatCommitmentOn returns the scenario's latest commitment on the card.
func (w *world) thatCommitmentOn() (*scorecards.View, *scorecard.Commitment, error) {
	supplier, id, err := w.thatCommitment()
	if err != nil {
		return nil, nil, err
	}
	v, err := w.view(supplier)
	if err != nil {
		return nil, nil, err
	}
	cm := v.Commitment(id)
	if cm == nil {
		return nil, nil, fmt.Errorf("commitment %s is not on the scorecard", id)
	}
	return v, cm, nil
}

// theBreach is the latest breach of the scenario's latest commitment, or
// of its commitment to standard when one is named.
func (w *world) theBreach(standard string) (*scorecards.View, *scorecard.Breach, error) {
	v, cm, err := w.thatCommitmentOn()
	if err != nil {
		return nil, nil, err
	}
	if standard != "" {
		cm = nil
		for _, c := range v.Commitments {
			if c.StandardID == standard {
				cm = c
			}
		}
		if cm == nil {
			return nil, nil, fmt.Errorf("no commitment to %s", standard)
		}
	}
	var b *scorecard.Breach
	for _, x := range v.Breaches {
		if x.CommitmentID == cm.ID {
			b = x
		}
	}
	if b == nil {
		return nil, nil, fmt.Errorf("no breach of commitment %s (%s) on the scorecard", cm.ID, cm.StandardID)
	}
	return v, b, nil
}

func (w *world) assessesShort(outcome string) error {
	return w.assesses(outcome, "EVIDENCE-"+strings.ToUpper(outcome), "Assurance team")
}

func (w *world) commitmentStatus(status string) error {
	_, cm, err := w.thatCommitmentOn()
	if err != nil {
		return err
	}
	if cm.Status != status {
		return fmt.Errorf("commitment %s status is %q, want %q", cm.ID, cm.Status, status)
	}
	return nil
}

func (w *world) breachRaised(severity, rule, version string) error {
	_, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	if b.Severity != severity || b.Rule.RuleID != rule || b.Rule.RuleVersion != version {
		return fmt.Errorf("breach %s is %s under %s v%s, want %s under %s v%s", b.ID, b.Severity, b.Rule.RuleID, b.Rule.RuleVersion, severity, rule, version)
	}
	return nil
}

func (w *world) noBreach() error {
	v, cm, err := w.thatCommitmentOn()
	if err != nil {
		return err
	}
	for _, b := range v.Breaches {
		if b.CommitmentID == cm.ID {
			return fmt.Errorf("breach %s was raised: %s", b.ID, b.Reason)
		}
	}
	return nil
}

func (w *world) breachRaisedOn(date string) error {
	_, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	if b.RaisedOn != date {
		return fmt.Errorf("breach raised on %s, want %s", b.RaisedOn, date)
	}
	return nil
}

func (w *world) breachCites(what ...string) error {
	v, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	cm := v.Commitment(b.CommitmentID)
	want := []string{}
	for _, x := range what {
		switch x {
		case "made":
			want = append(want, cm.MadeEvent)
		case "assessment":
			if cm.LatestAssessment == nil {
				return fmt.Errorf("commitment has no assessment")
			}
			want = append(want, cm.LatestAssessment.Event)
		case "withdrawal":
			want = append(want, cm.Withdrawal.Event)
		}
	}
	if !slices.Equal(b.Rule.BecauseOf, want) {
		return fmt.Errorf("breach cites %v, want %v", b.Rule.BecauseOf, want)
	}
	return nil
}

func (w *world) withdraws(supplier, reason string) error {
	_, cm, err := w.thatCommitment()
	if err != nil {
		return err
	}
	_, err = w.mustCall("supplier:"+supplier, "POST", "/v1/suppliers/"+supplier+"/commitments/"+cm+"/withdrawal", map[string]string{"reason": reason})
	return err
}

func (w *world) triesToWithdrawOther(supplier, owner string) error {
	_, cm, err := w.thatCommitment()
	if err != nil {
		return err
	}
	return w.call("supplier:"+supplier, "POST", "/v1/suppliers/"+owner+"/commitments/"+cm+"/withdrawal", map[string]string{"reason": "not mine"})
}

func (w *world) evaluateAgain() error { return w.settle() }

func (w *world) nothingEmitted() error {
	if w.lastEmitted != 0 {
		return fmt.Errorf("evaluation emitted %d consequences", w.lastEmitted)
	}
	return nil
}

func (w *world) ledgerHolds(n int, typ string) error {
	entries, err := w.ledger().Entries(1, 1<<20)
	if err != nil {
		return err
	}
	got := 0
	for _, e := range entries {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			return err
		}
		if strings.TrimPrefix(o.Event.Type.String(), "EVENT_TYPE_") == typ {
			got++
		}
	}
	if got != n {
		return fmt.Errorf("ledger holds %d %s events, want %d", got, typ, n)
	}
	return nil
}

func (w *world) listsBreaches(supplier string, n int) error {
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	if len(v.Breaches) != n {
		return fmt.Errorf("scorecard lists %d breaches, want %d", len(v.Breaches), n)
	}
	return nil
}

func (w *world) escalationLevel(standard string, n int) error {
	_, b, err := w.theBreach(standard)
	if err != nil {
		return err
	}
	if b.EscalationLevel != n {
		return fmt.Errorf("breach %s at escalation level %d, want %d", b.ID, b.EscalationLevel, n)
	}
	return nil
}

func (w *world) nextDeadline(date string) error {
	v, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	if k := v.Clocks[b.ID]; k.NextDeadline != date {
		return fmt.Errorf("next deadline %q (%s), want %s", k.NextDeadline, k.NextStep, date)
	}
	return nil
}

func (w *world) escalationPaused() error {
	v, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	if !v.Clocks[b.ID].Paused {
		return fmt.Errorf("breach %s clock is not paused: %+v", b.ID, v.Clocks[b.ID])
	}
	return nil
}

func (w *world) escalationIssued(level int, date, rule, version string) error {
	_, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	for _, e := range b.Escalations {
		if e.Level == level {
			if e.IssuedOn != date || e.Rule.RuleID != rule || e.Rule.RuleVersion != version {
				return fmt.Errorf("level %d issued on %s under %s v%s", level, e.IssuedOn, e.Rule.RuleID, e.Rule.RuleVersion)
			}
			if len(e.Rule.BecauseOf) == 0 || e.Rule.BecauseOf[0] != b.Event {
				return fmt.Errorf("escalation cites %v, not the breach %s", e.Rule.BecauseOf, b.Event)
			}
			return nil
		}
	}
	return fmt.Errorf("breach %s has no level %d escalation", b.ID, level)
}

func (w *world) agreePlan(who, due string, must bool) error {
	v, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	path := "/v1/suppliers/" + v.SupplierID + "/breaches/" + b.ID + "/plans"
	body := map[string]string{"due_date": due, "summary": "root cause: missing profile validation; fix in release 4.2; re-test by the due date"}
	if must {
		_, err = w.mustCall(who, "POST", path, body)
		return err
	}
	return w.call(who, "POST", path, body)
}

func (w *world) noPlan() error {
	v, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	for _, p := range v.Plans {
		if p.BreachID == b.ID {
			return fmt.Errorf("breach %s has plan %s", b.ID, p.ID)
		}
	}
	return nil
}

func (w *world) breachStatus(status string) error {
	_, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	if b.Status != status {
		return fmt.Errorf("breach %s is %s, want %s", b.ID, b.Status, status)
	}
	return nil
}

func (w *world) breachClosedBy(rule, version, what string) error {
	v, b, err := w.theBreach("")
	if err != nil {
		return err
	}
	if b.ClosedBy == nil || b.ClosedBy.RuleID != rule || b.ClosedBy.RuleVersion != version {
		return fmt.Errorf("breach %s closed by %+v, want %s v%s", b.ID, b.ClosedBy, rule, version)
	}
	var want string
	switch what {
	case "latest assessment":
		want = v.Commitment(b.CommitmentID).LatestAssessment.Event
	case "dispute":
		want = v.Disputes[len(v.Disputes)-1].Event
	}
	if !slices.Contains(b.ClosedBy.BecauseOf, want) {
		return fmt.Errorf("closure cites %v, not %s", b.ClosedBy.BecauseOf, want)
	}
	return nil
}

func (w *world) disputes(supplier, grounds string) error {
	_, cm, err := w.thatCommitmentOn()
	if err != nil {
		return err
	}
	if cm.LatestAssessment == nil {
		return fmt.Errorf("commitment %s has no assessment to dispute", cm.ID)
	}
	return w.call("supplier:"+supplier, "POST", "/v1/suppliers/"+supplier+"/assessments/"+cm.LatestAssessment.ID+"/disputes", map[string]string{"grounds": grounds})
}

func (w *world) underDispute(not string) error {
	_, cm, err := w.thatCommitmentOn()
	if err != nil {
		return err
	}
	a := cm.Assessments[len(cm.Assessments)-1]
	if a.Disputed == (not != "") {
		return fmt.Errorf("assessment %s under dispute = %v", a.ID, a.Disputed)
	}
	return nil
}

func (w *world) answerSays(s string) error {
	if !strings.Contains(string(w.lastBody), s) {
		return fmt.Errorf("answer %s does not say %q", w.lastBody, s)
	}
	return nil
}

func (w *world) resolve(who, outcome, reason string, must bool) error {
	supplier, _, err := w.thatCommitment()
	if err != nil {
		return err
	}
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	if len(v.Disputes) == 0 {
		return fmt.Errorf("no dispute to resolve")
	}
	d := v.Disputes[len(v.Disputes)-1]
	body := map[string]string{"outcome": map[string]string{"upholds": "upheld", "rejects": "rejected"}[outcome], "reason": reason}
	path := "/v1/suppliers/" + supplier + "/disputes/" + d.ID + "/resolution"
	if must {
		_, err = w.mustCall(who, "POST", path, body)
		return err
	}
	return w.call(who, "POST", path, body)
}

func (w *world) reviewOpen(supplier string, n int, rule, version string) error {
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	for _, r := range v.Reviews {
		if r.Status == "open" {
			if len(r.BreachIDs) != n || r.Rule.RuleID != rule || r.Rule.RuleVersion != version || len(r.Rule.BecauseOf) != n {
				return fmt.Errorf("open review %s cites %d breaches under %s v%s", r.ID, len(r.BreachIDs), r.Rule.RuleID, r.Rule.RuleVersion)
			}
			return nil
		}
	}
	return fmt.Errorf("no open disinvestment review for %s", supplier)
}

func (w *world) noReview(supplier string) error {
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	for _, r := range v.Reviews {
		if r.Status == "open" {
			return fmt.Errorf("review %s is open", r.ID)
		}
	}
	return nil
}

func (w *world) closeReview(who, reason string, must bool) error {
	supplier, _, err := w.thatCommitment()
	if err != nil {
		return err
	}
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	if len(v.Reviews) == 0 {
		return fmt.Errorf("no review to close")
	}
	path := "/v1/suppliers/" + supplier + "/reviews/" + v.Reviews[len(v.Reviews)-1].ID + "/closure"
	if must {
		_, err = w.mustCall(who, "POST", path, map[string]string{"reason": reason})
		return err
	}
	return w.call(who, "POST", path, map[string]string{"reason": reason})
}

func (w *world) closedReviewReason(reason string) error {
	supplier, _, err := w.thatCommitment()
	if err != nil {
		return err
	}
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	r := v.Reviews[len(v.Reviews)-1]
	if r.Status != "closed" || r.Reason != reason || r.ClosedBy == "" {
		return fmt.Errorf("review %s: %s, reason %q, closed by %q", r.ID, r.Status, r.Reason, r.ClosedBy)
	}
	return nil
}

func (w *world) ratingIs(supplier, label string) error {
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	if v.Rating.Label != label {
		return fmt.Errorf("rating is %q (%s), want %q", v.Rating.Label, strings.Join(v.Rating.Reasons, "; "), label)
	}
	return nil
}

func (w *world) ratingCites(rule, version string, conformant, assessed int) error {
	supplier, _, err := w.thatCommitment()
	if err != nil {
		return err
	}
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	r := v.Rating
	if r.RuleID != rule || r.RuleVersion != version || r.Inputs.ConformantPastTarget != conformant || r.Inputs.AssessedPastTarget != assessed || r.Formula == "" {
		return fmt.Errorf("rating %s v%s with %d of %d", r.RuleID, r.RuleVersion, r.Inputs.ConformantPastTarget, r.Inputs.AssessedPastTarget)
	}
	return nil
}

func (w *world) ratingMentions(s string) error {
	supplier, _, err := w.thatCommitment()
	if err != nil {
		return err
	}
	v, err := w.view(supplier)
	if err != nil {
		return err
	}
	if !strings.Contains(strings.Join(v.Rating.Reasons, "\n"), s) {
		return fmt.Errorf("rating reasons %q do not mention %q", v.Rating.Reasons, s)
	}
	return nil
}
