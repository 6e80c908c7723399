package rules_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/calendar"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
)

// cardOf folds payloads into a fresh card, as the ledger would.
func cardOf(t *testing.T, at string, payloads ...proto.Message) *scorecard.Card {
	t.Helper()
	c := scorecard.New("acme")
	when, err := time.Parse("2006-01-02", at)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range payloads {
		scorecard.Apply(c, uint64(i+1), &pb.Event{EventId: "ev" + string(rune('a'+i)), SupplierId: "acme", OccurredAtUnixNano: when.Add(10 * time.Hour).UnixNano()}, p)
	}
	return c
}

func engine(t *testing.T) *rules.Engine {
	t.Helper()
	cal, err := calendar.England()
	if err != nil {
		t.Fatal(err)
	}
	return rules.New(cal)
}

var made = &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name     string
		today    string
		events   []proto.Message
		wantType string // payload type of the first consequence, "" for none
		wantRule string
	}{
		{"nothing due before the target", "2027-03-31", []proto.Message{made}, "", ""},
		{"missed target the day after", "2027-04-01", []proto.Message{made}, "*accountabilityv1.BreachRaised", rules.MissedTarget.ID},
		{"met before target", "2027-04-01", []proto.Message{made, &pb.AssessmentRecorded{AssessmentId: "a1", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_CONFORMANT, AssessedOn: "2027-03-01"}}, "", ""},
		{"non-conformant after target", "2027-04-02", []proto.Message{made, &pb.AssessmentRecorded{AssessmentId: "a1", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_NON_CONFORMANT, AssessedOn: "2027-04-02"}}, "*accountabilityv1.BreachRaised", rules.NonConformance.ID},
		{"withdrawn on target", "2027-05-01", []proto.Message{made, &pb.CommitmentWithdrawn{CommitmentId: "cm1", WithdrawnOn: "2027-03-31"}}, "", ""},
		{"withdrawn after target", "2027-05-01", []proto.Message{made, &pb.AssessmentRecorded{AssessmentId: "a1", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_CONFORMANT, AssessedOn: "2027-03-01"}, &pb.CommitmentWithdrawn{CommitmentId: "cm1", WithdrawnOn: "2027-04-10"}}, "*accountabilityv1.BreachRaised", rules.Withdrawal.ID},
	}
	e := engine(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			card := cardOf(t, "2027-03-01", c.events...)
			cs, err := e.Evaluate(card, c.today)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantType == "" {
				if len(cs) != 0 {
					t.Fatalf("got %d consequences, want none: %v", len(cs), cs[0].Payload)
				}
				return
			}
			if len(cs) == 0 {
				t.Fatal("got no consequence")
			}
			b, ok := cs[0].Payload.(*pb.BreachRaised)
			if !ok || b.Rule.RuleId != c.wantRule || b.Rule.RuleVersion == "" || len(b.Rule.BecauseOf) == 0 {
				t.Fatalf("got %v, want a breach under %s citing its events", cs[0].Payload, c.wantRule)
			}
		})
	}
}

// TestConsequencesAreStable: the same consequence always gets the same
// event id, so emitting it twice stores it once.
func TestConsequencesAreStable(t *testing.T) {
	e := engine(t)
	a, _ := e.Evaluate(cardOf(t, "2027-03-01", made), "2027-04-01")
	b, _ := e.Evaluate(cardOf(t, "2027-03-01", made), "2027-04-05")
	if len(a) != 1 || len(b) != 1 || a[0].EventID != b[0].EventID || !proto.Equal(a[0].Payload, b[0].Payload) {
		t.Fatalf("consequences differ: %v / %v", a, b)
	}
}

// TestRecordedConsequencesKeepTheirRuleVersion: a breach raised under an
// earlier version of R1 is not raised again by the current version, and
// the card goes on citing the version that raised it.
func TestRecordedConsequencesKeepTheirRuleVersion(t *testing.T) {
	card := cardOf(t, "2027-03-01", made, &pb.BreachRaised{
		BreachId: "br_old", CommitmentId: "cm1", Severity: pb.Severity_SEVERITY_MAJOR, RaisedOn: "2027-04-01",
		Rule: &pb.RuleCitation{RuleId: rules.MissedTarget.ID, RuleVersion: "0", BecauseOf: []string{"eva"}},
	})
	cs, err := engine(t).Evaluate(card, "2027-04-02")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if b, ok := c.Payload.(*pb.BreachRaised); ok {
			t.Fatalf("breach raised again under v%s", b.Rule.RuleVersion)
		}
	}
	if v := card.Breaches[0].Rule.RuleVersion; v != "0" {
		t.Fatalf("recorded breach now cites version %s", v)
	}
}

func TestEvaluationOutsideTheCalendarIsAnError(t *testing.T) {
	card := cardOf(t, "2027-03-01", made, &pb.BreachRaised{BreachId: "b1", CommitmentId: "cm1", Severity: pb.Severity_SEVERITY_MAJOR, RaisedOn: "2028-12-20", Rule: &pb.RuleCitation{RuleId: rules.MissedTarget.ID, RuleVersion: "1"}})
	_, err := engine(t).Evaluate(card, "2029-02-01")
	if !errors.Is(err, calendar.ErrOutOfRange) {
		t.Fatalf("Evaluate beyond the bank-holiday data: %v, want ErrOutOfRange", err)
	}
}

func TestRate(t *testing.T) {
	conformant := func(id string) proto.Message {
		return &pb.AssessmentRecorded{AssessmentId: "a" + id, CommitmentId: id, Outcome: pb.Outcome_OUTCOME_CONFORMANT, AssessedOn: "2027-03-01"}
	}
	commit := func(id, std string) proto.Message {
		return &pb.CommitmentMade{CommitmentId: id, StandardId: std, TargetDate: "2027-03-31"}
	}
	breach := func(id, cm string, sev pb.Severity) proto.Message {
		return &pb.BreachRaised{BreachId: id, CommitmentId: cm, Severity: sev, RaisedOn: "2027-04-01", Rule: &pb.RuleCitation{RuleId: "R", RuleVersion: "1"}}
	}
	cases := []struct {
		name   string
		events []proto.Message
		want   string
	}{
		{"no commitments", nil, rules.Other},
		{"all met", []proto.Message{commit("c1", "DICOM"), conformant("c1")}, rules.Good},
		{"open minor", []proto.Message{commit("c1", "DICOM"), conformant("c1"), breach("b1", "c1", pb.Severity_SEVERITY_MINOR)}, rules.ApproachingTarget},
		{"open major", []proto.Message{commit("c1", "DICOM"), breach("b1", "c1", pb.Severity_SEVERITY_MAJOR)}, rules.RequiresImprovement},
		{"three open majors", []proto.Message{commit("c1", "DICOM"), commit("c2", "DSPT"), commit("c3", "DTAC"),
			breach("b1", "c1", pb.Severity_SEVERITY_MAJOR), breach("b2", "c2", pb.Severity_SEVERITY_MAJOR), breach("b3", "c3", pb.Severity_SEVERITY_MAJOR)}, rules.Inadequate},
		{"level 2", []proto.Message{commit("c1", "DICOM"), breach("b1", "c1", pb.Severity_SEVERITY_MINOR), &pb.EscalationIssued{BreachId: "b1", Level: 2}}, rules.Inadequate},
		{"clinical-safety cap", []proto.Message{commit("c1", "DCB0160"), conformant("c1"), breach("b1", "c1", pb.Severity_SEVERITY_MINOR)}, rules.RequiresImprovement},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rules.Rate(cardOf(t, "2027-03-01", c.events...), "2027-05-01")
			if r.Label != c.want || len(r.Reasons) == 0 || r.RuleID != rules.KPIRating.ID {
				t.Fatalf("rating %q (%v), want %q", r.Label, r.Reasons, c.want)
			}
		})
	}
}
