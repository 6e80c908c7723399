package web

import (
	"fmt"
	"strings"

	"github.com/supplier-accountability/sal/envelope"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/scorecard"
)

// summary says in a line what an event records.
func summary(o *envelope.Opened) string {
	cite := func(r *pb.RuleCitation) string {
		if r == nil {
			return ""
		}
		return fmt.Sprintf(" (rule %s v%s)", r.RuleId, r.RuleVersion)
	}
	switch p := o.Payload.(type) {
	case *pb.KeyAuthorized:
		return fmt.Sprintf("key %s authorized for %s", p.KeyId, p.Holder)
	case *pb.KeyRetired:
		return fmt.Sprintf("key %s retired: %s", p.KeyId, p.Reason)
	case *pb.SupplierRegistered:
		return "registered as " + p.Name
	case *pb.CommitmentMade:
		return fmt.Sprintf("committed to %s %s for %s by %s", p.StandardId, p.StandardVersion, p.Product, p.TargetDate)
	case *pb.CommitmentWithdrawn:
		return fmt.Sprintf("withdrew commitment %s: %s", p.CommitmentId, p.Reason)
	case *pb.AssessmentRecorded:
		return fmt.Sprintf("assessed %s %s (evidence %s, assessor %s)", p.CommitmentId, strings.ReplaceAll(scorecard.OutcomeName(p.Outcome), "_", " "), p.EvidenceRef, p.Assessor)
	case *pb.BreachRaised:
		return fmt.Sprintf("%s breach %s raised: %s%s", scorecard.SeverityName(p.Severity), p.BreachId, p.Reason, cite(p.Rule))
	case *pb.BreachClosed:
		how := "remediated"
		if p.Closure == pb.BreachClosure_BREACH_CLOSURE_WITHDRAWN {
			how = "withdrawn"
		}
		return fmt.Sprintf("breach %s %s%s", p.BreachId, how, cite(p.Rule))
	case *pb.EscalationIssued:
		return fmt.Sprintf("breach %s escalated to level %d: %s%s", p.BreachId, p.Level, p.Reason, cite(p.Rule))
	case *pb.RemediationPlanAgreed:
		return fmt.Sprintf("remediation plan for %s agreed, due %s", p.BreachId, p.DueDate)
	case *pb.DisputeOpened:
		return fmt.Sprintf("disputed assessment %s: %s", p.AssessmentId, p.Grounds)
	case *pb.DisputeResolved:
		out := "rejected"
		if p.Outcome == pb.DisputeOutcome_DISPUTE_OUTCOME_UPHELD {
			out = "upheld"
		}
		return fmt.Sprintf("dispute %s %s: %s", p.DisputeId, out, p.Reason)
	case *pb.DisinvestmentReviewOpened:
		return fmt.Sprintf("disinvestment review %s opened over %d breaches%s", p.ReviewId, len(p.BreachIds), cite(p.Rule))
	case *pb.DisinvestmentReviewClosed:
		return fmt.Sprintf("disinvestment review %s closed: %s", p.ReviewId, p.Reason)
	}
	return o.Event.Type.String()
}
