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
	scorecard.Apply(c, uint64(c.EventCount+1), eventFor(id), p)
}

// eventFor is the event carrying a test payload.
func eventFor(id string) *pb.Event {
	return &pb.Event{EventId: id, SupplierId: "acme", OccurredAtUnixNano: time.Date(2027, 1, 4, 10, 0, 0, 0, time.UTC).UnixNano()}
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

// history makes up a random supplier history using every event type, with
// replays, references to unknown records and <&> in text.
type history struct {
	rng                     *rand.Rand
	cms, ass, brs, dps, rvs []string
}

func newHistory(seed uint64) *history {
	return &history{rng: rand.New(rand.NewPCG(seed, 7))}
}

// pick is one of ids, or now and then an id the card has never seen.
func (h *history) pick(ids []string) string {
	if len(ids) == 0 || h.rng.IntN(20) == 0 {
		return fmt.Sprint("unknown-", h.rng.IntN(3))
	}
	return ids[h.rng.IntN(len(ids))]
}

// next is the payload of the i'th event.
func (h *history) next(i int) proto.Message {
	rng, n := h.rng, fmt.Sprint(i)
	outcomes := []pb.Outcome{pb.Outcome_OUTCOME_CONFORMANT, pb.Outcome_OUTCOME_PARTIALLY_CONFORMANT, pb.Outcome_OUTCOME_NON_CONFORMANT}
	switch rng.IntN(12) {
	case 0:
		return &pb.SupplierRegistered{Name: "Acme <Health> & Co " + n}
	case 1, 2:
		h.cms = append(h.cms, "cm"+n)
		return &pb.CommitmentMade{CommitmentId: "cm" + n, StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS " + n, TargetDate: "2027-03-31"}
	case 3:
		return &pb.CommitmentWithdrawn{CommitmentId: h.pick(h.cms), Reason: "product retired", WithdrawnOn: "2027-02-01"}
	case 4, 5, 6:
		h.ass = append(h.ass, "as"+n)
		return &pb.AssessmentRecorded{AssessmentId: "as" + n, CommitmentId: h.pick(h.cms), Outcome: outcomes[rng.IntN(3)], EvidenceRef: "E-" + n, AssessedOn: "2027-01-04"}
	case 7:
		h.brs = append(h.brs, "br"+n)
		return &pb.BreachRaised{BreachId: "br" + n, CommitmentId: h.pick(h.cms), Severity: pb.Severity_SEVERITY_MAJOR, RaisedOn: "2027-01-05", Rule: &pb.RuleCitation{RuleId: "R2", RuleVersion: "1", BecauseOf: []string{"e" + n}}}
	case 8:
		switch rng.IntN(3) {
		case 0:
			return &pb.BreachClosed{BreachId: h.pick(h.brs), ClosedOn: "2027-02-02", Closure: pb.BreachClosure_BREACH_CLOSURE_WITHDRAWN}
		case 1:
			return &pb.EscalationIssued{BreachId: h.pick(h.brs), Level: int32(1 + rng.IntN(2)), IssuedOn: "2027-02-03"}
		default:
			return &pb.RemediationPlanAgreed{PlanId: "pl" + n, BreachId: h.pick(h.brs), DueDate: "2027-06-30"}
		}
	case 9:
		h.dps = append(h.dps, "dp"+n)
		return &pb.DisputeOpened{DisputeId: "dp" + n, AssessmentId: h.pick(h.ass), Grounds: "wrong profile", OpenedOn: "2027-01-06"}
	case 10:
		outcome := pb.DisputeOutcome_DISPUTE_OUTCOME_UPHELD
		if rng.IntN(2) == 0 {
			outcome = pb.DisputeOutcome_DISPUTE_OUTCOME_REJECTED
		}
		return &pb.DisputeResolved{DisputeId: h.pick(h.dps), Outcome: outcome, ResolvedOn: "2027-01-20"}
	default:
		if rng.IntN(2) == 0 {
			h.rvs = append(h.rvs, "rv"+n)
			return &pb.DisinvestmentReviewOpened{ReviewId: "rv" + n, BreachIds: []string{h.pick(h.brs)}, OpenedOn: "2027-03-01"}
		}
		return &pb.DisinvestmentReviewClosed{ReviewId: h.pick(h.rvs), Reason: "improved", ClosedOn: "2027-04-01"}
	}
}

// TestEncodeIsJSONMarshalAfterEveryEvent: the incremental encoder, which
// re-encodes only the commitment an event changed, gives exactly
// json.Marshal's bytes after every event of long random histories using
// every event type (replays, unknown references and <&> in text too), on a
// card kept in memory and on one decoded from its stored bytes midway.
func TestEncodeIsJSONMarshalAfterEveryEvent(t *testing.T) {
	for seed := range uint64(20) {
		h := newHistory(seed)
		c := scorecard.New("acme")
		for i := range 600 {
			p := h.next(i)
			apply(c, fmt.Sprint("e", i), p)
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

// TestStoredCardAppliesLikeCardKeptInMemory: a supplier's card kept in
// memory through a whole random history (its index kept up to date event by
// event) and the same card stored and read back at random points (its index
// built afresh from the stored records) give the same bytes after every
// event, and the same record for every id looked up, replays included. A
// record added or a breach closed without updating the index makes them
// part.
func TestStoredCardAppliesLikeCardKeptInMemory(t *testing.T) {
	for seed := range uint64(20) {
		h := newHistory(seed)
		points := rand.New(rand.NewPCG(seed, 13))
		kept, stored := scorecard.New("acme"), scorecard.New("acme")
		var sent []proto.Message
		for i := range 600 {
			p := h.next(i)
			if len(sent) > 0 && points.IntN(10) == 0 {
				p = sent[points.IntN(len(sent))] // a replay under a new event id
			}
			sent = append(sent, p)
			id := fmt.Sprint("e", i)
			apply(kept, id, p)
			apply(stored, id, p)
			want, err := scorecard.Encode(kept)
			if err != nil {
				t.Fatal(err)
			}
			got, err := scorecard.Encode(stored)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("seed %d, event %d (%T): card read back and applied on differs from card kept in memory\n got %s\nwant %s", seed, i, p, got, want)
			}
			checkCommitments(t, fmt.Sprintf("seed %d, event %d (%T)", seed, i, p), kept)
			if points.IntN(25) == 0 || i == 599 {
				if stored, err = scorecard.Decode(got); err != nil {
					t.Fatalf("seed %d, event %d: %v", seed, i, err)
				}
				// Lookups on the card just read back scan its lists;
				// on the card kept in memory they use its index.
				sameLookups(t, fmt.Sprintf("seed %d, event %d", seed, i), h, kept, stored)
			}
		}
	}
}

// checkCommitments checks that every commitment's latest assessment and
// status are what the card's records say: the last assessment not voided,
// and withdrawn, breached (a breach open against it), met or at risk. Both
// cards of TestStoredCardAppliesLikeCardKeptInMemory share the index code,
// so this is what catches a fault common to both, such as open breaches
// miscounted.
func checkCommitments(t *testing.T, at string, c *scorecard.Card) {
	t.Helper()
	open := map[string]bool{}
	for _, b := range c.Breaches {
		if b.Status == scorecard.BreachOpen {
			open[b.CommitmentID] = true
		}
	}
	for _, cm := range c.Commitments {
		var latest *scorecard.Assessment
		for _, a := range cm.Assessments {
			if !a.Void {
				latest = a
			}
		}
		status := scorecard.StatusAtRisk
		switch {
		case cm.Withdrawal != nil:
			status = scorecard.StatusWithdrawn
		case open[cm.ID]:
			status = scorecard.StatusBreached
		case latest == nil:
			status = scorecard.StatusOnTrack
		case latest.Outcome == "conformant":
			status = scorecard.StatusMet
		}
		got, _ := json.Marshal(cm.LatestAssessment)
		want, _ := json.Marshal(latest)
		if cm.Status != status || !bytes.Equal(got, want) {
			t.Fatalf("%s: commitment %s is %s with latest assessment %s, want %s with %s", at, cm.ID, cm.Status, got, status, want)
		}
	}
}

// sameLookups checks that both cards give the same record (or none) for
// every id the history has used, and for one it has not.
func sameLookups(t *testing.T, at string, h *history, a, b *scorecard.Card) {
	t.Helper()
	// ids is the ids the history has used and one it has not.
	ids := func(used []string) []string {
		return append(used[:len(used):len(used)], "unknown-0")
	}
	same := func(kind, id string, x, y any) {
		t.Helper()
		jx, _ := json.Marshal(x)
		jy, _ := json.Marshal(y)
		if !bytes.Equal(jx, jy) {
			t.Fatalf("%s: %s %s is %s on the card kept in memory, %s on the card read back", at, kind, id, jx, jy)
		}
	}
	for _, id := range ids(h.cms) {
		same("commitment", id, a.Commitment(id), b.Commitment(id))
	}
	for _, id := range ids(h.ass) {
		same("assessment", id, a.Assessment(id), b.Assessment(id))
	}
	for _, id := range ids(h.brs) {
		same("breach", id, a.Breach(id), b.Breach(id))
	}
	for _, id := range ids(h.dps) {
		same("dispute", id, a.Dispute(id), b.Dispute(id))
	}
	for _, id := range ids(h.rvs) {
		same("review", id, a.Review(id), b.Review(id))
	}
}

// longHistory is the history of a supplier with a long record: n
// commitments, then rounds in which each is assessed, breached, escalated,
// given a plan, disputed and the dispute resolved, with breaches closed and
// reviews opened and closed along the way. Later rounds touch every
// commitment again, as a real supplier's history does.
func longHistory(n int) []proto.Message {
	var h []proto.Message
	h = append(h, &pb.SupplierRegistered{Name: "Acme Health"})
	for i := range n {
		h = append(h, &pb.CommitmentMade{CommitmentId: fmt.Sprint("cm", i), StandardId: "DICOM", StandardVersion: "2024d", Product: fmt.Sprint("PACS ", i), TargetDate: "2027-03-31"})
	}
	for r := range 4 {
		for i := range n {
			cm, as, br := fmt.Sprint("cm", i), fmt.Sprint("as", r, "-", i), fmt.Sprint("br", r, "-", i)
			h = append(h, &pb.AssessmentRecorded{AssessmentId: as, CommitmentId: cm, Outcome: pb.Outcome_OUTCOME_NON_CONFORMANT, EvidenceRef: "E-" + as, AssessedOn: "2027-01-04"})
			if r%2 == 0 {
				h = append(h,
					&pb.BreachRaised{BreachId: br, CommitmentId: cm, AssessmentId: as, Severity: pb.Severity_SEVERITY_MAJOR, RaisedOn: "2027-01-05", Rule: &pb.RuleCitation{RuleId: "R2", RuleVersion: "1", BecauseOf: []string{as}}},
					&pb.EscalationIssued{BreachId: br, Level: 1, IssuedOn: "2027-02-03"},
					&pb.RemediationPlanAgreed{PlanId: "pl" + br, BreachId: br, DueDate: "2027-06-30"},
					&pb.DisputeOpened{DisputeId: "dp" + as, AssessmentId: as, Grounds: "wrong profile", OpenedOn: "2027-01-06"},
					&pb.DisputeResolved{DisputeId: "dp" + as, Outcome: pb.DisputeOutcome_DISPUTE_OUTCOME_REJECTED, ResolvedOn: "2027-01-20"},
					&pb.DisinvestmentReviewOpened{ReviewId: "rv" + br, BreachIds: []string{br}, OpenedOn: "2027-03-01"},
				)
			} else {
				prev := fmt.Sprint("br", r-1, "-", i)
				h = append(h,
					&pb.BreachClosed{BreachId: prev, ClosedOn: "2027-02-02", Closure: pb.BreachClosure_BREACH_CLOSURE_REMEDIATED},
					&pb.DisinvestmentReviewClosed{ReviewId: "rv" + prev, Reason: "improved", ClosedOn: "2027-04-01"},
				)
			}
		}
	}
	return h
}

// BenchmarkApply rebuilds the scorecard of a supplier with a long history
// from its events, as a projection rebuild does, and reports events/s.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{50, 200} {
		h := longHistory(n)
		ev := &pb.Event{EventId: "e", SupplierId: "acme", OccurredAtUnixNano: time.Date(2027, 1, 4, 10, 0, 0, 0, time.UTC).UnixNano()}
		b.Run(fmt.Sprintf("commitments=%d/events=%d", n, len(h)), func(b *testing.B) {
			for b.Loop() {
				c := scorecard.New("acme")
				for i, p := range h {
					scorecard.Apply(c, uint64(i+1), ev, p)
				}
				if len(c.Ignored) != 0 {
					b.Fatalf("history not applied cleanly: %+v", c.Ignored[0])
				}
			}
			b.ReportMetric(float64(b.N*len(h))/b.Elapsed().Seconds(), "events/s")
		})
	}
	// ingest: events arriving one at a time on the long card of a supplier
	// with 200 commitments, kept between batches. The history is sent again
	// under new event ids, so every lookup runs and most are listed as
	// ignored replays; the card barely grows.
	h := longHistory(200)
	b.Run(fmt.Sprintf("ingest/commitments=200/events=%d", len(h)), func(b *testing.B) {
		c := scorecard.New("acme")
		for _, p := range h {
			apply(c, "e", p)
		}
		i := 0
		for b.Loop() {
			apply(c, "replay", h[i%len(h)])
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// stdDecode is encoding/json's reading of a stored card, the reference
// Decode's fast decoder must agree with.
func stdDecode(b []byte) (*scorecard.Card, error) {
	var c scorecard.Card
	err := json.Unmarshal(b, &c)
	return &c, err
}

// TestDecodeAgreesWithEncodingJSON: Decode (the fast decoder) reads every
// stored card of long random histories of every event type into exactly
// what encoding/json reads, field for field.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	for seed := range uint64(10) {
		h := newHistory(seed)
		c := scorecard.New("acme")
		for i := range 400 {
			apply(c, fmt.Sprint("e", i), h.next(i))
			if i%7 != 0 && i != 399 {
				continue
			}
			raw, err := scorecard.Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := scorecard.Decode(raw)
			if err != nil {
				t.Fatalf("seed %d, event %d: %v", seed, i, err)
			}
			want, err := stdDecode(raw)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if !bytes.Equal(g, w) || !bytes.Equal(g, raw) {
				t.Fatalf("seed %d, event %d: Decode differs from encoding/json\n got %s\nwant %s", seed, i, g, w)
			}
		}
	}
}

// FuzzDecodeCard: whatever bytes a stored card holds, Decode never panics,
// refuses what encoding/json refuses, and reads what it accepts the same;
// and Encode writes whatever card it read exactly as json.Marshal does
// (odd strings included: invalid UTF-8, U+2028, control characters).
func FuzzDecodeCard(f *testing.F) {
	h := newHistory(1)
	c := scorecard.New("acme")
	for i := range 60 {
		apply(c, fmt.Sprint("e", i), h.next(i))
	}
	raw, _ := scorecard.Encode(c)
	f.Add(raw)
	f.Add([]byte(`{"supplier_id":"a","commitments":[{"id":"c","assessments":[{"seq":1}]}]}`))
	f.Add([]byte(`{"supplier_id":"\u00e9\ud800","last_seq":-1}`))
	f.Add([]byte(`{"commitments":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := scorecard.Decode(b)
		want, werr := stdDecode(b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("Decode error %v, encoding/json error %v", err, werr)
		}
		if err != nil {
			return
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Fatalf("Decode read\n %s\nencoding/json read\n %s", g, w)
		}
		e, err := scorecard.Encode(got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e, g) {
			t.Fatalf("Encode wrote\n %s\njson.Marshal wrote\n %s", e, g)
		}
		// The hash of the card and the hash of its JSON agree.
		h, err := scorecard.Hash(got)
		if err != nil {
			t.Fatal(err)
		}
		if hj, err := scorecard.HashJSON(e); err != nil || hj != h {
			t.Fatalf("Hash %x, HashJSON of its encoding %x (%v)", h, hj, err)
		}
	})
}

// BenchmarkDecode reads back the stored card of a supplier with a long
// history, with Decode and with encoding/json.
func BenchmarkDecode(b *testing.B) {
	c := scorecard.New("acme")
	for i, p := range longHistory(50) {
		scorecard.Apply(c, uint64(i+1), &pb.Event{EventId: fmt.Sprint("e", i), SupplierId: "acme"}, p)
	}
	raw, err := scorecard.Encode(c)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []struct {
		name string
		fn   func([]byte) (*scorecard.Card, error)
	}{{"Decode", scorecard.Decode}, {"encoding-json", stdDecode}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := d.fn(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
