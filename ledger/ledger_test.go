package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/scorecard"
)

var epoch = time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)

// fixture is a ledger file with a registry root and one authorized service key.
type fixture struct {
	path    string
	rootKey ed25519.PrivateKey
	root    *envelope.Signer
	svc     *envelope.Signer
	l       *ledger.Ledger
}

func newKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustOpenLedger(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{path: filepath.Join(tb.TempDir(), "ledger.db"), rootKey: newKey(tb)}
	f.root = envelope.NewSigner(f.rootKey)
	f.svc = envelope.NewSigner(newKey(tb))
	f.reopen(tb)
	f.mustAppend(tb, f.seal(tb, f.root, "", &pb.KeyAuthorized{
		KeyId: f.svc.KeyID(), PublicKey: f.svc.PublicKey(), Holder: "service:test",
		EventTypes: []pb.EventType{
			pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED,
			pb.EventType_EVENT_TYPE_COMMITMENT_MADE,
			pb.EventType_EVENT_TYPE_ASSESSMENT_RECORDED,
		},
	}))
	return f
}

func (f *fixture) reopen(tb testing.TB) {
	tb.Helper()
	if f.l != nil {
		if err := f.l.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	l, err := ledger.Open(f.path, f.rootKey.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return epoch }})
	if err != nil {
		tb.Fatal(err)
	}
	f.l = l
	tb.Cleanup(func() { l.Close() })
}

func (f *fixture) seal(tb testing.TB, s *envelope.Signer, supplier string, m proto.Message) []byte {
	tb.Helper()
	raw, _, err := s.Seal(envelope.Draft{SupplierID: supplier, OccurredAt: epoch, Payload: m})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func (f *fixture) mustAppend(tb testing.TB, raws ...[]byte) []ledger.Result {
	tb.Helper()
	rs, err := f.l.Append(context.Background(), raws)
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

func (f *fixture) supplierEvents(tb testing.TB) [][]byte {
	return [][]byte{
		f.seal(tb, f.svc, "acme", &pb.SupplierRegistered{Name: "Acme"}),
		f.seal(tb, f.svc, "acme", &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}),
		f.seal(tb, f.svc, "acme", &pb.AssessmentRecorded{AssessmentId: "as1", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_CONFORMANT, EvidenceRef: "E1", Assessor: "A"}),
	}
}

func TestAppendAssignsGapFreeSequenceAndChainsHashes(t *testing.T) {
	f := mustOpenLedger(t)
	rs := f.mustAppend(t, f.supplierEvents(t)...)
	for i, r := range rs {
		if r.Quarantined || r.Duplicate || r.Seq != uint64(i+2) {
			t.Fatalf("result %d = %+v, want appended at seq %d", i, r, i+2)
		}
	}
	entries, err := f.l.Entries(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("got %d entries, want 4", len(entries))
	}
	var prev [32]byte
	for _, e := range entries {
		if e.PrevHash != prev {
			t.Errorf("seq %d: prev hash does not chain", e.Seq)
		}
		if ledger.EntryHash(e.Seq, e.AppendedAt.UnixNano(), e.PrevHash, e.Envelope) != e.Hash {
			t.Errorf("seq %d: entry hash does not match content", e.Seq)
		}
		prev = e.Hash
	}
	if n, err := f.l.Verify(context.Background()); err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
}

func TestSameEventThreeTimesIsStoredOnce(t *testing.T) {
	f := mustOpenLedger(t)
	ev := f.seal(t, f.svc, "acme", &pb.SupplierRegistered{Name: "Acme"})
	first := f.mustAppend(t, ev)[0]
	again := f.mustAppend(t, ev, ev)
	for _, r := range again {
		if !r.Duplicate || r.Seq != first.Seq {
			t.Fatalf("redelivery = %+v, want duplicate of seq %d", r, first.Seq)
		}
	}
	if seq, _, _ := f.l.Head(); seq != 2 {
		t.Fatalf("head = %d, want 2 (key authorization + one event)", seq)
	}
	card, err := f.l.Card("acme")
	if err != nil {
		t.Fatal(err)
	}
	if card.EventCount != 1 {
		t.Fatalf("scorecard counted %d events, want 1", card.EventCount)
	}
}

func TestRefusedEventsGoToQuarantineAndChangeNothing(t *testing.T) {
	f := mustOpenLedger(t)
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.SupplierRegistered{Name: "Acme"}))
	before, err := f.l.Scorecard("acme")
	if err != nil {
		t.Fatal(err)
	}
	stranger := envelope.NewSigner(newKey(t))
	good := f.seal(t, f.svc, "acme", &pb.CommitmentMade{CommitmentId: "cm9", StandardId: "DICOM", TargetDate: "2027-01-01"})
	forged := forgeSignature(t, good)
	future, _, err := f.svc.Seal(envelope.Draft{SupplierID: "acme", OccurredAt: epoch.Add(time.Hour), Payload: &pb.SupplierRegistered{Name: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	unknownType := sealRaw(t, f.svc, &pb.Event{EventId: "ev_unknown", Type: pb.EventType(999), SupplierId: "acme", KeyId: f.svc.KeyID()})

	cases := []struct {
		name string
		raw  []byte
		code string
	}{
		{"forged signature", forged, "bad_signature"},
		{"unknown key", f.seal(t, stranger, "acme", &pb.SupplierRegistered{Name: "x"}), "unknown_key"},
		{"outside authority", f.seal(t, f.svc, "acme", &pb.BreachRaised{BreachId: "b1", CommitmentId: "cm1"}), "outside_authority"},
		{"service key changing the registry", f.seal(t, f.svc, "", &pb.KeyRetired{KeyId: f.svc.KeyID()}), "outside_authority"},
		{"malformed bytes", []byte("not a protobuf envelope at all"), "malformed"},
		{"unknown event type", unknownType, "unknown_type"},
		{"from the future", future, "future_event"},
		{"oversized", bytes.Repeat([]byte{1}, envelope.MaxSize+1), "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.mustAppend(t, c.raw)[0]
			if !r.Quarantined {
				t.Fatalf("result %+v, want quarantined", r)
			}
		})
	}
	recs, err := f.l.Quarantine(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(cases) {
		t.Fatalf("quarantine holds %d records, want %d", len(recs), len(cases))
	}
	for i, c := range cases {
		if recs[i].Code != c.code || recs[i].Reason == "" {
			t.Errorf("%s: quarantined as %q (%s), want code %q", c.name, recs[i].Code, recs[i].Reason, c.code)
		}
	}
	// Delivered again, the forged event is not quarantined a second time.
	f.mustAppend(t, forged)
	if again, _ := f.l.Quarantine(1, 100); len(again) != len(cases) {
		t.Fatalf("redelivered bad event stored again: %d records", len(again))
	}
	after, err := f.l.Scorecard("acme")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("a refused event changed the scorecard:\n%s\n%s", before, after)
	}
	if seq, _, _ := f.l.Head(); seq != 2 {
		t.Fatalf("head moved to %d; refused events must not be appended", seq)
	}
}

func forgeSignature(t *testing.T, raw []byte) []byte {
	t.Helper()
	var env pb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	env.Signature[0] ^= 0xff
	out, err := proto.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sealRaw signs an arbitrary Event, bypassing Seal's checks.
func sealRaw(t *testing.T, s *envelope.Signer, ev *pb.Event) []byte {
	t.Helper()
	body, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	env := &pb.Envelope{Event: body, Signature: s.SignBody(body)}
	out, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRestartKeepsEventsRegistryAndScorecards(t *testing.T) {
	f := mustOpenLedger(t)
	f.mustAppend(t, f.supplierEvents(t)...)
	before, _ := f.l.Scorecard("acme")
	f.reopen(t)
	after, err := f.l.Scorecard("acme")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("scorecard changed across restart")
	}
	// The registry survived: the service key still signs acceptably.
	r := f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.CommitmentMade{CommitmentId: "cm2", StandardId: "DSPT", TargetDate: "2027-06-30"}))[0]
	if r.Quarantined || r.Seq != 5 {
		t.Fatalf("append after restart = %+v, want seq 5", r)
	}
}

// TestRebuildOfLongAndInterleavedHistories: suppliers whose entries are
// interleaved in the log, one with more entries than a rebuild reads in
// one transaction, one with a name that is a prefix of another's, and a
// registry event in between: the rebuilt cards are the cards the ledger
// kept while appending, byte for byte, also when every card is staged in
// a transaction of its own.
func TestRebuildOfLongAndInterleavedHistories(t *testing.T) {
	f := mustOpenLedger(t)
	f.l.SetRebuildChunk(1)
	ids := []string{"acme", "acme-health", "bravo"}
	var raws [][]byte
	for _, id := range ids {
		raws = append(raws, f.seal(t, f.svc, id, &pb.SupplierRegistered{Name: id}))
	}
	for i := range 2600 {
		id := ids[0]
		if i%5 == 0 {
			id = ids[1+i/5%2]
		}
		raws = append(raws, f.seal(t, f.svc, id, &pb.CommitmentMade{CommitmentId: fmt.Sprint("cm", i), StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}))
	}
	for i := 0; i < len(raws); i += 500 {
		f.mustAppend(t, raws[i:min(i+500, len(raws))]...)
	}
	live := map[string][]byte{}
	for _, id := range ids {
		live[id], _ = f.l.Scorecard(id)
	}
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		got, err := f.l.Scorecard(id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, live[id]) {
			t.Errorf("%s: rebuilt scorecard (%d bytes) differs from the live one (%d bytes)", id, len(got), len(live[id]))
		}
	}
	c, err := f.l.Card("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Commitments) != 2080 {
		t.Fatalf("acme has %d commitments after rebuild, want 2080", len(c.Commitments))
	}
	// A second rebuild replaces the first's cards, not adds to them.
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got, _ := f.l.Scorecard(id); !bytes.Equal(got, live[id]) {
			t.Errorf("%s: scorecard after a second rebuild differs from the live one", id)
		}
	}
}

// TestRebuildCutShort: a rebuild stopped part way (its context cancelled
// after some cards were staged) changes no card and leaves nothing
// staged; a staging bucket left in the file by a crash is dropped when
// the ledger is opened again, and the cards served are the old ones.
func TestRebuildCutShort(t *testing.T) {
	f := mustOpenLedger(t)
	var raws [][]byte
	for i := range 40 {
		id := fmt.Sprintf("supplier-%02d", i)
		raws = append(raws, f.seal(t, f.svc, id, &pb.SupplierRegistered{Name: id}),
			f.seal(t, f.svc, id, &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}))
	}
	f.mustAppend(t, raws...)
	live, err := f.l.Scorecard("supplier-07")
	if err != nil {
		t.Fatal(err)
	}
	f.l.SetRebuildChunk(1)
	ctx, cancel := context.WithCancel(context.Background())
	staged := 0
	f.l.SetRebuildObserver(func() {
		if staged++; staged == 5 {
			cancel()
		}
	})
	if err := f.l.RebuildProjections(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("rebuild cancelled part way: %v, want context.Canceled", err)
	}
	if staged < 5 {
		t.Fatalf("%d chunks staged before the cancel, want at least 5", staged)
	}
	if got, _ := f.l.Scorecard("supplier-07"); !bytes.Equal(got, live) {
		t.Fatalf("scorecard changed by a rebuild cut short:\n got %s\nwant %s", got, live)
	}
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = nil
	if staging(t, f.path) {
		t.Error("a cancelled rebuild left its staging bucket")
	}
	db, err := bolt.Open(f.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// What a crash part way through a rebuild leaves: a staged card
		// that must never be served.
		st, err := tx.CreateBucket([]byte("rebuild"))
		if err != nil {
			return err
		}
		b, err := st.CreateBucket([]byte("card_records"))
		if err != nil {
			return err
		}
		return b.Put([]byte("supplier-07\x00f"), []byte(`{"supplier_id":"supplier-07","name":"staged","counts":[0,0,0,0,0]}`))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got, _ := f.l.Scorecard("supplier-07"); !bytes.Equal(got, live) {
		t.Fatalf("scorecard after reopening on a staged rebuild:\n got %s\nwant %s", got, live)
	}
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = nil
	if staging(t, f.path) {
		t.Fatal("reopening did not drop the staging bucket a crash left")
	}
	f.reopen(t)
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.l.Scorecard("supplier-07"); !bytes.Equal(got, live) {
		t.Fatalf("scorecard after a full rebuild:\n got %s\nwant %s", got, live)
	}
}

// staging says whether the ledger file at path holds a rebuild's staging
// bucket.
func staging(t *testing.T, path string) bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	found := false
	_ = db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket([]byte("rebuild")) != nil
		return nil
	})
	return found
}

// TestPreparedAheadOfRegistryChanges: batches prepared (signatures checked
// on every core) before the batch ahead of them changed the registry are
// judged by the registry as it stands when they are appended: a key
// authorized meanwhile is accepted (checked in full), a key retired
// meanwhile is refused as retired, and a forged signature is refused
// whatever was prepared.
func TestPreparedAheadOfRegistryChanges(t *testing.T) {
	f := mustOpenLedger(t)
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.SupplierRegistered{Name: "Acme"}))
	fresh := envelope.NewSigner(newKey(t))
	authorize := f.seal(t, f.root, "", &pb.KeyAuthorized{KeyId: fresh.KeyID(), PublicKey: fresh.PublicKey(), Holder: "service:fresh",
		EventTypes: []pb.EventType{pb.EventType_EVENT_TYPE_COMMITMENT_MADE}})
	retire := f.seal(t, f.root, "", &pb.KeyRetired{KeyId: f.svc.KeyID()})
	byFresh := f.seal(t, fresh, "acme", &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "DICOM", TargetDate: "2027-01-01"})
	byRetired := f.seal(t, f.svc, "acme", &pb.CommitmentMade{CommitmentId: "cm2", StandardId: "DICOM", TargetDate: "2027-01-01"})
	forged := bytes.Clone(f.seal(t, fresh, "acme", &pb.CommitmentMade{CommitmentId: "cm3", StandardId: "DICOM", TargetDate: "2027-01-01"}))
	forged[len(forged)-1] ^= 1 // the signature is the envelope's last field
	first := f.l.Prepare([][]byte{authorize, retire})
	second := f.l.Prepare([][]byte{byFresh, byRetired, forged})
	ctx := context.Background()
	if _, err := f.l.AppendPrepared(ctx, first, 1, false); err != nil {
		t.Fatal(err)
	}
	rs, err := f.l.AppendPrepared(ctx, second, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "retired_key", "bad_signature"}
	for i, r := range rs {
		if r.Code != want[i] || r.Quarantined != (want[i] != "") {
			t.Errorf("event %d: quarantined %v code %q, want code %q", i, r.Quarantined, r.Code, want[i])
		}
	}
	c, err := f.l.Card("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Commitments) != 1 || c.Commitments[0].ID != "cm1" {
		t.Fatalf("acme's commitments after the prepared batches: %+v, want cm1 only", c.Commitments)
	}
}

func TestOpenRefusesAnotherRoot(t *testing.T) {
	f := mustOpenLedger(t)
	f.l.Close()
	other := newKey(t)
	_, err := ledger.Open(f.path, other.Public().(ed25519.PublicKey), ledger.Options{})
	if !errors.Is(err, ledger.ErrWrongRoot) {
		t.Fatalf("open with another root: %v, want ErrWrongRoot", err)
	}
	f.l = nil
}

func TestRebuildGivesByteIdenticalScorecards(t *testing.T) {
	f := mustOpenLedger(t)
	f.mustAppend(t, f.supplierEvents(t)...)
	f.mustAppend(t, f.seal(t, f.svc, "bravo", &pb.SupplierRegistered{Name: "Bravo"}))
	live := map[string][]byte{}
	for _, id := range []string{"acme", "bravo"} {
		live[id], _ = f.l.Scorecard(id)
	}
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, want := range live {
		got, err := f.l.Scorecard(id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: rebuilt scorecard differs:\n got %s\nwant %s", id, got, want)
		}
	}
	c, _ := f.l.Card("acme")
	if c.Commitments[0].Status != scorecard.StatusMet {
		t.Fatalf("status = %s, want met", c.Commitments[0].Status)
	}
}

func TestWaitReturnsAppendedAndQuarantinedOutcomes(t *testing.T) {
	f := mustOpenLedger(t)
	raw, ev, err := f.svc.Seal(envelope.Draft{SupplierID: "acme", OccurredAt: epoch, Payload: &pb.SupplierRegistered{Name: "Acme"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan ledger.Result, 1)
	go func() {
		r, err := f.l.Wait(context.Background(), ev.EventId)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	time.Sleep(10 * time.Millisecond)
	f.mustAppend(t, raw)
	select {
	case r := <-done:
		if r.Seq != 2 {
			t.Fatalf("Wait = %+v, want seq 2", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the append")
	}
	// Already appended: returns at once.
	if r, err := f.l.Wait(context.Background(), ev.EventId); err != nil || r.Seq != 2 {
		t.Fatalf("Wait after append = %+v, %v", r, err)
	}
}

// A service answering a retried request seals the same write again at a
// new time (same event id, from the Idempotency-Key): it is a duplicate of
// the stored event. The same id with another payload is a reuse of the id
// and goes to quarantine.
func TestResealedWriteIsADuplicateAndAnotherPayloadIsNot(t *testing.T) {
	f := mustOpenLedger(t)
	seal := func(at time.Time, name string) []byte {
		raw, _, err := f.svc.Seal(envelope.Draft{EventID: "ev_retried", SupplierID: "acme", OccurredAt: at, Payload: &pb.SupplierRegistered{Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	first := f.mustAppend(t, seal(epoch, "Acme"))[0]
	again := f.mustAppend(t, seal(epoch.Add(3*time.Second), "Acme"))[0]
	if !again.Duplicate || again.Quarantined || again.Seq != first.Seq {
		t.Fatalf("the same write sealed again: %+v, want a duplicate of seq %d", again, first.Seq)
	}
	other := f.mustAppend(t, seal(epoch.Add(4*time.Second), "Acme Renamed"))[0]
	if !other.Quarantined || other.Code != "id_reused" {
		t.Fatalf("the id with another payload: %+v, want quarantined as id_reused", other)
	}
	if q, _ := f.l.Quarantine(1, 10); len(q) != 1 {
		t.Fatalf("%d quarantine records, want 1", len(q))
	}
	if card, _ := f.l.Card("acme"); card.EventCount != 1 || card.Name != "Acme" {
		t.Fatalf("card: %d events, name %q; want 1, Acme", card.EventCount, card.Name)
	}
}

// TestCardsReadRecordByRecord: cards are applied on with only the records
// each event names, read from the batches not yet published, the pending
// changes or the file, over batches that leave the cards unpublished:
// every card still ends as a rebuild from the log makes it, byte for
// byte, before and after the cards are flushed and the ledger reopened.
func TestCardsReadRecordByRecord(t *testing.T) {
	f := mustOpenLedger(t)
	var err error
	var ids []string
	for i := range 11 {
		ids = append(ids, fmt.Sprintf("s%02d", i))
	}
	for _, id := range ids {
		f.mustAppend(t, f.seal(t, f.svc, id, &pb.SupplierRegistered{Name: id}))
	}
	var stream uint64
	for round := range 6 {
		var raws [][]byte
		for i, id := range ids {
			cm := fmt.Sprintf("cm%d-%d", round, i)
			raws = append(raws,
				f.seal(t, f.svc, id, &pb.CommitmentMade{CommitmentId: cm, StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}),
				f.seal(t, f.svc, id, &pb.AssessmentRecorded{AssessmentId: "as" + cm, CommitmentId: cm, Outcome: pb.Outcome_OUTCOME_CONFORMANT, EvidenceRef: "E", Assessor: "A"}))
		}
		// Batches of three events, read from a stream that has more:
		// nothing is published (the clock stands still) until the last.
		for i := 0; i < len(raws); i += 3 {
			stream++
			last := round == 5 && i+3 >= len(raws)
			if _, err := f.l.AppendFromStream(context.Background(), raws[i:min(i+3, len(raws))], stream, last); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := map[string][]byte{}
	for _, id := range ids {
		if live[id], err = f.l.Scorecard(id); err != nil {
			t.Fatal(err)
		}
		c, err := f.l.Card(id)
		if err != nil || len(c.Commitments) != 6 || c.Commitments[5].Status != scorecard.StatusMet {
			t.Fatalf("%s: %d commitments (%v), want 6, the last met", id, len(c.Commitments), err)
		}
	}
	f.reopen(t)
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got, _ := f.l.Scorecard(id); !bytes.Equal(got, live[id]) {
			t.Errorf("%s: rebuilt scorecard differs from the one kept record by record:\n got %s\nwant %s", id, got, live[id])
		}
	}
}

// held is an Observer that holds every batch's count until released.
type held struct {
	counting chan struct{} // a batch is being counted
	release  chan struct{}
}

func (h *held) Batch([]ledger.Result, time.Duration) {
	h.counting <- struct{}{}
	<-h.release
}

// TestWaitAnswersAQuarantinedEventOnceCounted: a quarantine record is in
// the file before the batch that wrote it is counted by the Observer
// (metrics) and published; Wait does not answer from the file before
// then, so whoever it answers finds the refusal counted.
func TestWaitAnswersAQuarantinedEventOnceCounted(t *testing.T) {
	f := mustOpenLedger(t)
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	h := &held{counting: make(chan struct{}), release: make(chan struct{})}
	l, err := ledger.Open(f.path, f.rootKey.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return epoch }, Observer: h})
	if err != nil {
		t.Fatal(err)
	}
	f.l = l
	stranger := envelope.NewSigner(newKey(t))
	raw, ev, err := stranger.Seal(envelope.Draft{SupplierID: "acme", OccurredAt: epoch, Payload: &pb.SupplierRegistered{Name: "forged"}})
	if err != nil {
		t.Fatal(err)
	}
	appended := make(chan error, 1)
	go func() {
		_, err := l.AppendFromStream(context.Background(), [][]byte{raw}, 1, true)
		appended <- err
	}()
	<-h.counting // committed, not yet counted
	if r, ok, err := l.Lookup(ev.EventId); err != nil || !ok || !r.Quarantined {
		t.Fatalf("lookup while counting: %+v %v %v, want the quarantine record in the file", r, ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r, err := l.Wait(ctx, ev.EventId); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait answered %+v, %v before the batch was counted", r, err)
	}
	close(h.release)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	r, err := l.Wait(context.Background(), ev.EventId)
	if err != nil || !r.Quarantined || !strings.Contains(r.Reason, "unknown") {
		t.Fatalf("wait after counting: %+v %v, want quarantined for an unknown key", r, err)
	}
}

// TestCardsStoredWholeByAnOlderSal: a file whose scorecards an older sal
// stored whole (one JSON value per supplier in "scorecards", as a rebuild
// still stores them) serves them as they are, read-only too (changing
// nothing); the first event for a card turns it into records, and the
// card goes on as a rebuild from the log makes it.
func TestCardsStoredWholeByAnOlderSal(t *testing.T) {
	f := mustOpenLedger(t)
	f.mustAppend(t, f.supplierEvents(t)...)
	// Records the later events do not name, which must still be on the
	// cards they change.
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.CommitmentMade{CommitmentId: "cm2", StandardId: "WCAG22-AA", StandardVersion: "2.2", Product: "Portal", TargetDate: "2027-06-30"}))
	f.mustAppend(t, f.seal(t, f.svc, "zeta", &pb.SupplierRegistered{Name: "Zeta"}))
	f.mustAppend(t, f.seal(t, f.svc, "zeta", &pb.CommitmentMade{CommitmentId: "cmy", StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}))
	live := map[string][]byte{}
	for _, id := range []string{"acme", "zeta"} {
		b, err := f.l.Scorecard(id)
		if err != nil {
			t.Fatal(err)
		}
		live[id] = b
	}
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = nil
	storeWhole(t, f.path, live, 0, true)
	before, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := ledger.Open(f.path, f.rootKey.Public().(ed25519.PublicKey), ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of whole cards: %v", err)
	}
	for id, want := range live {
		if got, err := ro.Scorecard(id); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s read-only from whole cards: %v\n got %s\nwant %s", id, err, got, want)
		}
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
		t.Fatal("a read-only open changed the file")
	}
	f.reopen(t)
	for id, want := range live {
		if got, err := f.l.Scorecard(id); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s from whole cards: %v\n got %s\nwant %s", id, err, got, want)
		}
	}
	f.mustAppend(t, f.seal(t, f.svc, "zeta", &pb.CommitmentMade{CommitmentId: "cmz", StandardId: "DICOM", StandardVersion: "2024d", Product: "PACS", TargetDate: "2027-03-31"}))
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.AssessmentRecorded{AssessmentId: "as2", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_NON_CONFORMANT, EvidenceRef: "E2", Assessor: "A"}))
	after := map[string][]byte{}
	for id := range live {
		if after[id], err = f.l.Scorecard(id); err != nil {
			t.Fatal(err)
		}
		// What checkpoints commit to: the card as it is served.
		if d, err := f.l.CardDigest(id); err != nil || d != hashJSON(t, after[id]) {
			t.Fatalf("%s: digest of the card turned into records is not that of its JSON (%v)", id, err)
		}
	}
	f.reopen(t)
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, want := range after {
		if got, _ := f.l.Scorecard(id); !bytes.Equal(got, want) {
			t.Fatalf("%s: card turned into records and applied on differs from a rebuild\n got %s\nwant %s", id, want, got)
		}
	}
	if c, _ := f.l.Card("acme"); c.Commitment("cm1").Status != scorecard.StatusAtRisk || len(c.Commitment("cm1").Assessments) != 2 {
		t.Fatal("acme's cm1 not at risk after its second assessment")
	}
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = nil
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("scorecards")).Stats().KeyN != 2 || tx.Bucket([]byte("card_records")).Stats().KeyN != 0 {
			t.Error("after a rebuild the cards are not all whole")
		}
		return nil
	})
}

// storeWhole rewrites a closed ledger file's scorecards whole: one JSON
// value per card, no card_records bucket, as a rebuild leaves them or, with
// older, as an older sal stored them (its card digests the SHA-256 of the
// JSON, no cards_format); with cardsSeq > 0, the cards reflect the log up
// to there.
func storeWhole(t *testing.T, path string, cards map[string][]byte, cardsSeq uint64, older bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"scorecards", "card_records", "card_digests"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		whole, err := tx.CreateBucket([]byte("scorecards"))
		if err != nil {
			return err
		}
		digests, err := tx.CreateBucket([]byte("card_digests"))
		if err != nil {
			return err
		}
		if older {
			if err := tx.Bucket([]byte("meta")).Delete([]byte("cards_format")); err != nil {
				return err
			}
		}
		for id, b := range cards {
			d := sha256.Sum256(b)
			if !older {
				if d, err = scorecard.HashJSON(b); err != nil {
					return err
				}
			}
			if err := whole.Put([]byte(id), b); err != nil {
				return err
			}
			if err := digests.Put([]byte(id), d[:]); err != nil {
				return err
			}
		}
		if cardsSeq == 0 {
			return nil
		}
		var seq [8]byte
		binary.BigEndian.PutUint64(seq[:], cardsSeq)
		return tx.Bucket([]byte("meta")).Put([]byte("cards_seq"), seq[:])
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestWholeCardsCaughtUpAfterACrash: cards stored whole (by a rebuild)
// that lag the log, as a crash leaves them, are brought up to the head at
// Open from the entries after them: the cards and their digests are what
// a rebuild from the log gives.
func TestWholeCardsCaughtUpAfterACrash(t *testing.T) {
	f := mustOpenLedger(t)
	f.mustAppend(t, f.supplierEvents(t)...)
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.CommitmentMade{CommitmentId: "cm2", StandardId: "WCAG22-AA", StandardVersion: "2.2", Product: "Portal", TargetDate: "2027-06-30"}))
	lagging, err := f.l.Scorecard("acme")
	if err != nil {
		t.Fatal(err)
	}
	seq, _, err := f.l.Head()
	if err != nil {
		t.Fatal(err)
	}
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.AssessmentRecorded{AssessmentId: "as2", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_NON_CONFORMANT, EvidenceRef: "E2", Assessor: "A"}))
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = nil
	storeWhole(t, f.path, map[string][]byte{"acme": lagging}, seq, false)
	f.reopen(t)
	got, err := f.l.Scorecard("acme")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := f.l.CardDigest("acme"); err != nil || d != hashJSON(t, got) {
		t.Fatalf("digest of the caught-up card is not that of its JSON (%v)", err)
	}
	if err := f.l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want, _ := f.l.Scorecard("acme"); !bytes.Equal(got, want) {
		t.Fatalf("caught-up card differs from a rebuild\n got %s\nwant %s", got, want)
	}
}

// hashJSON is the hash of a served card, as checkpoints commit to it.
func hashJSON(t *testing.T, card []byte) [32]byte {
	t.Helper()
	h, err := scorecard.HashJSON(card)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
