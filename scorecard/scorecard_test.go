package scorecard_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/scorecard"
)

func apply(c *scorecard.Card, id string, p proto.Message) {
	scorecard.Apply(c, uint64(c.EventCount+1), &pb.Event{EventId: id, SupplierId: "acme", OccurredAtUnixNano: time.Date(2027, 1, 4, 10, 0, 0, 0, time.UTC).UnixNano()}, p)
}

// TestReplayUnderANewEventIDChangesNothing: a validly signed event whose
// record was already applied (the same assessment, dispute, plan or review
// id under a fresh event id) is listed as ignored, not applied twice.
func TestReplayUnderANewEventIDChangesNothing(t *testing.T) {
	c := scorecard.New("acme")
	apply(c, "e1", &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "DICOM", TargetDate: "2027-03-31"})
	as := &pb.AssessmentRecorded{AssessmentId: "as1", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_NON_CONFORMANT, AssessedOn: "2027-01-04"}
	apply(c, "e2", as)
	apply(c, "e3", &pb.BreachRaised{BreachId: "br1", CommitmentId: "cm1", Severity: pb.Severity_SEVERITY_MAJOR})
	dp := &pb.DisputeOpened{DisputeId: "dp1", AssessmentId: "as1"}
	apply(c, "e4", dp)
	pl := &pb.RemediationPlanAgreed{PlanId: "pl1", BreachId: "br1", DueDate: "2027-06-30"}
	apply(c, "e5", pl)
	rv := &pb.DisinvestmentReviewOpened{ReviewId: "rv1", BreachIds: []string{"br1"}}
	apply(c, "e6", rv)
	for i, p := range []proto.Message{as, dp, pl, rv} {
		apply(c, "replay"+string(rune('a'+i)), p)
	}
	if len(c.Commitments[0].Assessments) != 1 || len(c.Disputes) != 1 || len(c.Plans) != 1 || len(c.Reviews) != 1 {
		t.Fatalf("a replayed record was applied twice: %d assessments, %d disputes, %d plans, %d reviews",
			len(c.Commitments[0].Assessments), len(c.Disputes), len(c.Plans), len(c.Reviews))
	}
	if len(c.Ignored) != 4 {
		t.Fatalf("ignored %+v, want the four replays listed", c.Ignored)
	}
}
