package scorecard_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

// TestEncodeIsJSONMarshalAfterEveryEvent: the incremental encoder, which
// re-encodes only the commitment an event changed, gives exactly
// json.Marshal's bytes after every event of long random histories using
// every event type (replays, unknown references and <&> in text too), on a
// card kept in memory and on one decoded from its stored bytes midway.
func TestEncodeIsJSONMarshalAfterEveryEvent(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		c := scorecard.New("acme")
		var cms, ass, brs, dps, rvs []string
		pick := func(ids []string) string {
			if len(ids) == 0 || rng.IntN(20) == 0 {
				return fmt.Sprint("unknown-", rng.IntN(3))
			}
			return ids[rng.IntN(len(ids))]
		}
		outcomes := []pb.Outcome{pb.Outcome_OUTCOME_CONFORMANT, pb.Outcome_OUTCOME_PARTIALLY_CONFORMANT, pb.Outcome_OUTCOME_NON_CONFORMANT}
		for i := range 600 {
			var p proto.Message
			n := fmt.Sprint(i)
			switch rng.IntN(12) {
			case 0:
				p = &pb.SupplierRegistered{Name: "Acme <Health> & Co " + n}
			case 1, 2:
				cms = append(cms, "cm"+n)
				p = &pb.CommitmentMade{CommitmentId: "cm" + n, StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS " + n, TargetDate: "2027-03-31"}
			case 3:
				p = &pb.CommitmentWithdrawn{CommitmentId: pick(cms), Reason: "product retired", WithdrawnOn: "2027-02-01"}
			case 4, 5, 6:
				ass = append(ass, "as"+n)
				p = &pb.AssessmentRecorded{AssessmentId: "as" + n, CommitmentId: pick(cms), Outcome: outcomes[rng.IntN(3)], EvidenceRef: "E-" + n, AssessedOn: "2027-01-04"}
			case 7:
				brs = append(brs, "br"+n)
				p = &pb.BreachRaised{BreachId: "br" + n, CommitmentId: pick(cms), Severity: pb.Severity_SEVERITY_MAJOR, RaisedOn: "2027-01-05", Rule: &pb.RuleCitation{RuleId: "R2", RuleVersion: "1", BecauseOf: []string{"e" + n}}}
			case 8:
				switch rng.IntN(3) {
				case 0:
					p = &pb.BreachClosed{BreachId: pick(brs), ClosedOn: "2027-02-02", Closure: pb.BreachClosure_BREACH_CLOSURE_WITHDRAWN}
				case 1:
					p = &pb.EscalationIssued{BreachId: pick(brs), Level: int32(1 + rng.IntN(2)), IssuedOn: "2027-02-03"}
				default:
					p = &pb.RemediationPlanAgreed{PlanId: "pl" + n, BreachId: pick(brs), DueDate: "2027-06-30"}
				}
			case 9:
				dps = append(dps, "dp"+n)
				p = &pb.DisputeOpened{DisputeId: "dp" + n, AssessmentId: pick(ass), Grounds: "wrong profile", OpenedOn: "2027-01-06"}
			case 10:
				outcome := pb.DisputeOutcome_DISPUTE_OUTCOME_UPHELD
				if rng.IntN(2) == 0 {
					outcome = pb.DisputeOutcome_DISPUTE_OUTCOME_REJECTED
				}
				p = &pb.DisputeResolved{DisputeId: pick(dps), Outcome: outcome, ResolvedOn: "2027-01-20"}
			default:
				if rng.IntN(2) == 0 {
					rvs = append(rvs, "rv"+n)
					p = &pb.DisinvestmentReviewOpened{ReviewId: "rv" + n, BreachIds: []string{pick(brs)}, OpenedOn: "2027-03-01"}
				} else {
					p = &pb.DisinvestmentReviewClosed{ReviewId: pick(rvs), Reason: "improved", ClosedOn: "2027-04-01"}
				}
			}
			apply(c, "e"+n, p)
			got, err := scorecard.Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(c)
			if !bytes.Equal(got, want) {
				t.Fatalf("seed %d, event %d (%T): incremental encoding differs from json.Marshal\n got %s\nwant %s", seed, i, p, got, want)
			}
			if i == 300 {
				if c, err = scorecard.Decode(got); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
