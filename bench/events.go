// Package bench measures the system on this machine: it generates realistic
// pre-signed events and times ingest, rebuild, verification and queries
// against ceilings (raw Ed25519 verification, raw bbolt and JetStream
// throughput) measured in the same run, so every figure is a ratio that
// means something on any machine.
package bench

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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

// Generator produces a realistic history in order, a chunk at a time, so a
// run of any size keeps only one chunk in memory: the key authorizations,
// then suppliers registering, committing to catalogue standards, being
// assessed, and breaches raised, spread over two years. The same keys and
// total give the same events.
type Generator struct {
	root      *envelope.Signer
	svc       map[string]*envelope.Signer
	total     int
	suppliers int
	start     time.Time
	id        int
	i         int
	queue     []draft
	produced  int
}

// NewGenerator returns a generator of total events.
func NewGenerator(k Keys, total int) *Generator {
	g := &Generator{
		root: envelope.NewSigner(k.Root),
		svc: map[string]*envelope.Signer{
			"commitments": envelope.NewSigner(k.Commitments),
			"assessments": envelope.NewSigner(k.Assessments),
			"enforcement": envelope.NewSigner(k.Enforcement),
		},
		total: total, suppliers: max(total/200, 1),
		start: time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC),
	}
	auth := func(name string, types ...pb.EventType) {
		s := g.svc[name]
		g.add(g.root, "", &pb.KeyAuthorized{KeyId: s.KeyID(), PublicKey: s.PublicKey(), Holder: "service:" + name, EventTypes: types})
	}
	auth("commitments", pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED, pb.EventType_EVENT_TYPE_COMMITMENT_MADE, pb.EventType_EVENT_TYPE_COMMITMENT_WITHDRAWN, pb.EventType_EVENT_TYPE_DISPUTE_OPENED)
	auth("assessments", pb.EventType_EVENT_TYPE_ASSESSMENT_RECORDED, pb.EventType_EVENT_TYPE_REMEDIATION_PLAN_AGREED, pb.EventType_EVENT_TYPE_DISPUTE_RESOLVED, pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_CLOSED)
	auth("enforcement", pb.EventType_EVENT_TYPE_BREACH_RAISED, pb.EventType_EVENT_TYPE_BREACH_CLOSED, pb.EventType_EVENT_TYPE_ESCALATION_ISSUED, pb.EventType_EVENT_TYPE_DISINVESTMENT_REVIEW_OPENED)
	for s := 0; s < g.suppliers; s++ {
		g.add(g.svc["commitments"], supplierID(s), &pb.SupplierRegistered{Name: fmt.Sprintf("Example Supplier %d Ltd", s)})
	}
	return g
}

// eventID is the id of the generator's n-th event: random-looking, like
// the ids the services make (envelope.NewEventID: "ev_" and 32 hex
// digits), so the ledger's event-id index is written at random places as
// in use, not appended to in order; derived from the root key, so the
// same keys give the same ids.
func (g *Generator) eventID(n int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h := sha256.New()
	h.Write([]byte("sal/bench/event-id\n"))
	h.Write(g.root.PublicKey())
	h.Write(b[:])
	return "ev_" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (g *Generator) add(s *envelope.Signer, supplier string, p proto.Message) {
	g.id++
	g.queue = append(g.queue, draft{s, envelope.Draft{
		EventID: g.eventID(g.id), SupplierID: supplier,
		OccurredAt: g.start.Add(time.Duration(g.id) * 2 * time.Second), Payload: p,
	}})
}

// refill queues the events of the next commitment.
func (g *Generator) refill() {
	cat := standards.All()
	i := g.i
	g.i++
	s := supplierID(i % g.suppliers)
	std := cat[i%len(cat)]
	cm := fmt.Sprintf("cm_%x", i)
	target := g.start.AddDate(0, 0, 30+i%700).Format("2006-01-02")
	g.add(g.svc["commitments"], s, &pb.CommitmentMade{CommitmentId: cm, StandardId: std.ID, StandardVersion: std.CurrentExample, Product: "Product " + fmt.Sprint(i%7), TargetDate: target, MadeBy: "supplier:" + s})
	outcome := pb.Outcome(1 + i%3)
	g.add(g.svc["assessments"], s, &pb.AssessmentRecorded{AssessmentId: fmt.Sprintf("as_%x", i), CommitmentId: cm, Outcome: outcome, EvidenceRef: fmt.Sprintf("EVID-%06d", i), Assessor: "Assurance team", AssessedOn: target, RecordedBy: "commercial:bench"})
	if outcome != pb.Outcome_OUTCOME_CONFORMANT {
		g.add(g.svc["enforcement"], s, &pb.BreachRaised{BreachId: fmt.Sprintf("br_%x", i), CommitmentId: cm, Severity: pb.Severity(outcome - 1), Reason: "assessed after the target date", RaisedOn: target,
			Rule: &pb.RuleCitation{RuleId: "R2-non-conformance", RuleVersion: "1", BecauseOf: []string{g.eventID(g.id)}}})
	}
}

// Next returns the next n events (fewer at the end), signed on every core.
func (g *Generator) Next(n int) ([][]byte, error) {
	n = min(n, g.total-g.produced)
	for len(g.queue) < n {
		g.refill()
	}
	drafts := g.queue[:n]
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
	g.queue = append([]draft{}, g.queue[n:]...)
	g.produced += n
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("bench: seal event %d: %w", g.produced-n+i, err)
		}
	}
	return out, nil
}

// Events returns all n events of a generator at once (for small n).
func Events(k Keys, n int) ([][]byte, error) {
	return NewGenerator(k, n).Next(n)
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
