package envelope

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// TypeOf names the event type of a payload message.
func TypeOf(m proto.Message) (pb.EventType, error) {
	switch m.(type) {
	case *pb.KeyAuthorized:
		return pb.EventType_EVENT_TYPE_KEY_AUTHORIZED, nil
	case *pb.KeyRetired:
		return pb.EventType_EVENT_TYPE_KEY_RETIRED, nil
	case *pb.SupplierRegistered:
		return pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED, nil
	case *pb.CommitmentMade:
		return pb.EventType_EVENT_TYPE_COMMITMENT_MADE, nil
	case *pb.CommitmentWithdrawn:
		return pb.EventType_EVENT_TYPE_COMMITMENT_WITHDRAWN, nil
	case *pb.AssessmentRecorded:
		return pb.EventType_EVENT_TYPE_ASSESSMENT_RECORDED, nil
	case *pb.BreachRaised:
		return pb.EventType_EVENT_TYPE_BREACH_RAISED, nil
	case *pb.BreachClosed:
		return pb.EventType_EVENT_TYPE_BREACH_CLOSED, nil
	case *pb.EscalationIssued:
		return pb.EventType_EVENT_TYPE_ESCALATION_ISSUED, nil
	case *pb.RemediationPlanAgreed:
		return pb.EventType_EVENT_TYPE_REMEDIATION_PLAN_AGREED, nil
	case *pb.DisputeOpened:
		return pb.EventType_EVENT_TYPE_DISPUTE_OPENED, nil
	case *pb.DisputeResolved:
		return pb.EventType_EVENT_TYPE_DISPUTE_RESOLVED, nil
	case *pb.DisinvestmentReviewOpened:
		return pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_OPENED, nil
	case *pb.DisinvestmentReviewClosed:
		return pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_CLOSED, nil
	}
	return pb.EventType_EVENT_TYPE_UNSPECIFIED, fmt.Errorf("%w: payload %T", ErrUnknownType, m)
}

// DecodePayload decodes the payload bytes of an event of type t. The switch
// is exhaustive over the types this build knows; anything else is refused
// with ErrUnknownType so that it lands in quarantine.
func DecodePayload(t pb.EventType, b []byte) (proto.Message, error) {
	var m proto.Message
	switch t {
	case pb.EventType_EVENT_TYPE_KEY_AUTHORIZED:
		m = &pb.KeyAuthorized{}
	case pb.EventType_EVENT_TYPE_KEY_RETIRED:
		m = &pb.KeyRetired{}
	case pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED:
		m = &pb.SupplierRegistered{}
	case pb.EventType_EVENT_TYPE_COMMITMENT_MADE:
		m = &pb.CommitmentMade{}
	case pb.EventType_EVENT_TYPE_COMMITMENT_WITHDRAWN:
		m = &pb.CommitmentWithdrawn{}
	case pb.EventType_EVENT_TYPE_ASSESSMENT_RECORDED:
		m = &pb.AssessmentRecorded{}
	case pb.EventType_EVENT_TYPE_BREACH_RAISED:
		m = &pb.BreachRaised{}
	case pb.EventType_EVENT_TYPE_BREACH_CLOSED:
		m = &pb.BreachClosed{}
	case pb.EventType_EVENT_TYPE_ESCALATION_ISSUED:
		m = &pb.EscalationIssued{}
	case pb.EventType_EVENT_TYPE_REMEDIATION_PLAN_AGREED:
		m = &pb.RemediationPlanAgreed{}
	case pb.EventType_EVENT_TYPE_DISPUTE_OPENED:
		m = &pb.DisputeOpened{}
	case pb.EventType_EVENT_TYPE_DISPUTE_RESOLVED:
		m = &pb.DisputeResolved{}
	case pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_OPENED:
		m = &pb.DisinvestmentReviewOpened{}
	case pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_CLOSED:
		m = &pb.DisinvestmentReviewClosed{}
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, int32(t))
	}
	if err := unmarshalPayload(t, b, m); err != nil {
		return nil, err
	}
	return m, nil
}

func unmarshalPayload(t pb.EventType, b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrMalformed, t, err)
	}
	return nil
}
