// Package bench measures the system on this machine: it generates realistic
// pre-signed events and times ingest, rebuild, verification and queries
// against ceilings (raw Ed25519 verification, raw bbolt and JetStream
// throughput) measured in the same run, so every figure is a ratio that
// means something on any machine.
package bench

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/envelope"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/standards"
)

// Keys are the deterministic keys a generated data set is signed with.
type Keys struct {
	Root, Commitments, Assessments, Enforcement ed25519.PrivateKey
}

// DeterministicKeys derives the generator's keys from a seed.
func DeterministicKeys(seed string) Keys {
	k := func(label string) ed25519.PrivateKey {
		s := sha256.Sum256([]byte("sal/bench/" + seed + "/" + label))
		return ed25519.NewKeyFromSeed(s[:])
	}
	return Keys{Root: k("root"), Commitments: k("commitments"), Assessments: k("assessments"), Enforcement: k("enforcement")}
}

type draft struct {
	signer *envelope.Signer
	d      envelope.Draft
}

// Events returns n signed envelopes forming a realistic history: the key
// authorizations, then suppliers registering, committing to catalogue
// standards, being assessed, and breaches raised, spread over two years.
// Events are signed on every core. The same seed gives the same events.
func Events(k Keys, n int) ([][]byte, error) {
	root := envelope.NewSigner(k.Root)
	svc := map[string]*envelope.Signer{
		"commitments": envelope.NewSigner(k.Commitments),
		"assessments": envelope.NewSigner(k.Assessments),
		"enforcement": envelope.NewSigner(k.Enforcement),
	}
	start := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	drafts := make([]draft, 0, n)
	id := 0
	add := func(s *envelope.Signer, supplier string, p proto.Message) {
		id++
		drafts = append(drafts, draft{s, envelope.Draft{
			EventID: fmt.Sprintf("ev_bench_%010d", id), SupplierID: supplier,
			OccurredAt: start.Add(time.Duration(id) * 2 * time.Minute), Payload: p,
		}})
	}
	auth := func(name string, types ...pb.EventType) {
		s := svc[name]
		add(root, "", &pb.KeyAuthorized{KeyId: s.KeyID(), PublicKey: s.PublicKey(), Holder: "service:" + name, EventTypes: types})
	}
	auth("commitments", pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED, pb.EventType_EVENT_TYPE_COMMITMENT_MADE, pb.EventType_EVENT_TYPE_COMMITMENT_WITHDRAWN, pb.EventType_EVENT_TYPE_DISPUTE_OPENED)
	auth("assessments", pb.EventType_EVENT_TYPE_ASSESSMENT_RECORDED, pb.EventType_EVENT_TYPE_REMEDIATION_PLAN_AGREED, pb.EventType_EVENT_TYPE_DISPUTE_RESOLVED, pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_CLOSED)
	auth("enforcement", pb.EventType_EVENT_TYPE_BREACH_RAISED, pb.EventType_EVENT_TYPE_BREACH_CLOSED, pb.EventType_EVENT_TYPE_ESCALATION_ISSUED, pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_OPENED)

	cat := standards.All()
	suppliers := max(n/200, 1)
	for s := 0; s < suppliers && len(drafts) < n; s++ {
		add(svc["commitments"], supplierID(s), &pb.SupplierRegistered{Name: fmt.Sprintf("Supplier %d Ltd", s)})
	}
	for i := 0; len(drafts) < n; i++ {
		s := supplierID(i % suppliers)
		std := cat[i%len(cat)]
		cm := fmt.Sprintf("cm_%x", i)
		target := start.AddDate(0, 0, 30+i%700).Format("2006-01-02")
		add(svc["commitments"], s, &pb.CommitmentMade{CommitmentId: cm, StandardId: std.ID, StandardVersion: std.CurrentExample, Product: "Product " + fmt.Sprint(i%7), TargetDate: target, MadeBy: "supplier:" + s})
		outcome := pb.Outcome(1 + i%3)
		add(svc["assessments"], s, &pb.AssessmentRecorded{AssessmentId: fmt.Sprintf("as_%x", i), CommitmentId: cm, Outcome: outcome, EvidenceRef: fmt.Sprintf("EVID-%06d", i), Assessor: "Assurance team", AssessedOn: target, RecordedBy: "commercial:bench"})
		if outcome != pb.Outcome_OUTCOME_CONFORMANT {
			add(svc["enforcement"], s, &pb.BreachRaised{BreachId: fmt.Sprintf("br_%x", i), CommitmentId: cm, Severity: pb.Severity(outcome - 1), Reason: "assessed after the target date", RaisedOn: target,
				Rule: &pb.RuleCitation{RuleId: "R2-non-conformance", RuleVersion: "1", BecauseOf: []string{fmt.Sprintf("ev_bench_%010d", id)}}})
		}
	}
	drafts = drafts[:n]
	out := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i], _, errs[i] = drafts[i].signer.Seal(drafts[i].d)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("bench: seal event %d: %w", i, err)
		}
	}
	return out, nil
}

func supplierID(i int) string { return fmt.Sprintf("supplier-%05d", i) }

// SupplierIDs names the suppliers Events generates for n events.
func SupplierIDs(n int) []string {
	ids := make([]string, max(n/200, 1))
	for i := range ids {
		ids[i] = supplierID(i)
	}
	return ids
}
