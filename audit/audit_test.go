package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bundle"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/system"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// fixture is a ledger built by the real system: two suppliers, commitments,
// assessments, and breaches raised by the enforcement rules, over several
// checkpoints.
type fixture struct {
	dir   string
	trust audit.Trust
}

func post(t testing.TB, srv *httptest.Server, token, path, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

func mustBuildLedger(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	clk := &clock{now: time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)}
	sys, err := system.Start(context.Background(), system.Config{DataDir: dir, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sys.Handler)
	tok := map[string]string{}
	for _, d := range sys.DemoTokens {
		tok[d.Role] = d.Token
	}
	for _, s := range []string{"acme-health", "bright-records"} {
		post(t, srv, tok["supplier:"+s], "/v1/suppliers", `{"supplier_id":"`+s+`","name":"`+s+` Ltd"}`)
		for _, std := range []string{"FHIR-R4-UKCORE", "DICOM", "DSPT"} {
			out := post(t, srv, tok["supplier:"+s], "/v1/suppliers/"+s+"/commitments", `{"standard":"`+std+`","version":"1","product":"Record","target_date":"2027-03-31"}`)
			if std == "DICOM" {
				post(t, srv, tok["commercial"], "/v1/suppliers/"+s+"/commitments/"+out["commitment_id"].(string)+"/assessments", `{"outcome":"conformant","evidence_ref":"E-1","assessor":"A"}`)
			}
		}
	}
	clk.set(time.Date(2027, 4, 1, 10, 0, 0, 0, time.UTC))
	if _, err := sys.Enforcer.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	vkey := sys.CheckpointKey
	srv.Close()
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	root, err := keys.Load(filepath.Join(dir, "keys", "registry-root.key"))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{dir: dir, trust: audit.Trust{RootKey: root.Public().(ed25519.PublicKey), CheckpointKey: vkey}}
}

func (f fixture) path() string { return filepath.Join(f.dir, "ledger.db") }

func (f fixture) open(t testing.TB) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(f.path(), f.trust.RootKey, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestVerifyAnUntouchedLedgerAndItsBundle(t *testing.T) {
	f := mustBuildLedger(t)
	l := f.open(t)
	rep, err := audit.Verify(context.Background(), l, f.trust)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep.Failure, err)
	}
	head, _, _ := l.Head()
	if rep.Entries != head || rep.Checkpoints < 5 || rep.Suppliers != 2 || rep.Passes != 1 {
		t.Fatalf("report %+v, head %d", rep, head)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	exportBundle(t, l, f, dir)
	b, err := bundle.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	brep, err := audit.Verify(context.Background(), b, f.trust)
	if err != nil || !brep.OK() || brep.Entries != rep.Entries || brep.Root != rep.Root {
		t.Fatalf("bundle verify: %+v %v", brep, err)
	}
	// A ledger longer than verification may hold cards for is verified
	// in passes, a group of suppliers each, to the same report.
	for _, src := range []audit.Source{l, b} {
		for _, budget := range []int{1, 7, 40} {
			prep, err := audit.VerifyInPasses(context.Background(), src, f.trust, budget)
			if err != nil || !sameReport(prep, rep) {
				t.Fatalf("verify %T holding %d events' cards: %+v %v, want %+v", src, budget, prep, err, rep)
			}
			if want := (int(rep.Entries) + budget - 1) / budget; prep.Passes != want {
				t.Fatalf("verify %T holding %d events' cards: %d passes, want %d", src, budget, prep.Passes, want)
			}
		}
	}
	// Replay at the head reproduces the live projection byte for byte.
	cards, err := audit.Replay(context.Background(), l, head)
	if err != nil {
		t.Fatal(err)
	}
	for id, b := range cards {
		live, err := l.Scorecard(id)
		if err != nil || !bytes.Equal(live, b) {
			t.Fatalf("replayed scorecard of %s differs from the live one", id)
		}
	}
}

// sameReport says whether two reports say the same, failure included,
// however many readings of the log they took.
func sameReport(a, b audit.Report) bool {
	fa, fb := a.Failure, b.Failure
	a.Failure, b.Failure = nil, nil
	a.Passes, b.Passes = 0, 0
	return a == b && (fa == nil) == (fb == nil) && (fa == nil || *fa == *fb)
}

func exportBundle(t testing.TB, l *ledger.Ledger, f fixture, dir string) {
	t.Helper()
	head, _, _ := l.Head()
	cards, err := audit.Replay(context.Background(), l, head)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Write(context.Background(), dir, l, bundle.Keys{Root: f.trust.RootKey, CheckpointKey: f.trust.CheckpointKey}, cards); err != nil {
		t.Fatal(err)
	}
}

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

// rechain recomputes entry hashes from seq on, as a forger who knows the
// format would, so only the deeper checks can catch the forgery.
func rechain(t testing.TB, b *bolt.Bucket, meta *bolt.Bucket, from uint64) {
	t.Helper()
	var prev [32]byte
	if from > 1 {
		copy(prev[:], b.Get(u64(from - 1))[41:73])
	}
	var last uint64
	for k, v := b.Cursor().Seek(u64(from)); k != nil; k, v = b.Cursor().Seek(u64(binary.BigEndian.Uint64(k) + 1)) {
		seq := binary.BigEndian.Uint64(k)
		at := int64(binary.BigEndian.Uint64(v[1:9]))
		env := v[73:]
		h := ledger.EntryHash(seq, at, prev, env)
		nv := append([]byte{1}, v[1:9]...)
		nv = append(nv, prev[:]...)
		nv = append(nv, h[:]...)
		nv = append(nv, env...)
		if err := b.Put(k, nv); err != nil {
			t.Fatal(err)
		}
		prev, last = h, seq
	}
	if err := meta.Put([]byte("head"), append(u64(last), prev[:]...)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCatchesTamperingWithTheLedgerFile(t *testing.T) {
	base := mustBuildLedger(t)
	foreign := mustBuildLedger(t) // a second, independent ledger to splice from
	var foreignEnv []byte
	fl := foreign.open(t)
	es, _ := fl.Entries(6, 1)
	foreignEnv = es[0].Envelope

	cpKey, err := keys.Load(filepath.Join(base.dir, "keys", "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	cps, err := base.open(t).Checkpoints()
	if err != nil || len(cps) < 3 {
		t.Fatalf("%d checkpoints, %v", len(cps), err)
	}
	third, err := ledger.ParseCheckpoint(ledger.CheckpointBody(cps[2]))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		edit    func(t testing.TB, tx *bolt.Tx)
		wantSeq uint64
		reason  string
	}{
		{"flip a byte of a stored event", func(t testing.TB, tx *bolt.Tx) { flip(t, tx.Bucket([]byte("events")), 7, -20) }, 7, "entry hash"},
		{"flip a byte of a signature", func(t testing.TB, tx *bolt.Tx) { flip(t, tx.Bucket([]byte("events")), 8, -1) }, 8, "entry hash"},
		{"flip a byte of a stored hash", func(t testing.TB, tx *bolt.Tx) { flip(t, tx.Bucket([]byte("events")), 9, 45) }, 9, "entry hash"},
		{"flip a byte of an event and re-chain", func(t testing.TB, tx *bolt.Tx) {
			flip(t, tx.Bucket([]byte("events")), 7, -1)
			rechain(t, tx.Bucket([]byte("events")), tx.Bucket([]byte("meta")), 7)
		}, 7, "signature"},
		{"flip a byte of a checkpoint", func(t testing.TB, tx *bolt.Tx) {
			b := tx.Bucket([]byte("checkpoints"))
			k, _ := b.Cursor().First()
			k, v := b.Cursor().Seek(append([]byte{}, u64(binary.BigEndian.Uint64(k)+1)...))
			nv := append([]byte{}, v...)
			nv[len(nv)-10] ^= 1
			b.Put(k, nv)
		}, 0, "checkpoint"},
		{"re-sign a checkpoint over other scorecards", func(t testing.TB, tx *bolt.Tx) {
			// Only the checkpoint key's holder can do this: the replayed
			// scorecards are what catches it.
			c := third
			c.CardsDigest[0] ^= 1
			signer, _, err := keys.NoteSigner(c.Origin, cpKey)
			if err != nil {
				t.Fatal(err)
			}
			signed, err := note.Sign(&note.Note{Text: c.Text()}, signer)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Bucket([]byte("checkpoints")).Put(u64(c.Size), signed); err != nil {
				t.Fatal(err)
			}
		}, third.Size, "replayed scorecards"},
		{"delete an event", func(t testing.TB, tx *bolt.Tx) { tx.Bucket([]byte("events")).Delete(u64(10)) }, 10, "missing"},
		{"swap two events", func(t testing.TB, tx *bolt.Tx) {
			b := tx.Bucket([]byte("events"))
			v10, v11 := append([]byte{}, b.Get(u64(10))...), append([]byte{}, b.Get(u64(11))...)
			b.Put(u64(10), v11)
			b.Put(u64(11), v10)
		}, 10, "previous hash"},
		{"truncate the log", func(t testing.TB, tx *bolt.Tx) {
			b := tx.Bucket([]byte("events"))
			k, _ := b.Cursor().Last()
			last := binary.BigEndian.Uint64(k)
			for s := last - 2; s <= last; s++ {
				b.Delete(u64(s))
			}
		}, 0, "ends"},
		{"truncate the log and rewrite the head", func(t testing.TB, tx *bolt.Tx) {
			b := tx.Bucket([]byte("events"))
			k, _ := b.Cursor().Last()
			last := binary.BigEndian.Uint64(k)
			for s := last - 2; s <= last; s++ {
				b.Delete(u64(s))
			}
			rechain(t, b, tx.Bucket([]byte("meta")), last-3)
		}, 0, "beyond the log"},
		{"splice in a validly signed event from another ledger", func(t testing.TB, tx *bolt.Tx) {
			b := tx.Bucket([]byte("events"))
			v := append([]byte{}, b.Get(u64(6))...)
			b.Put(u64(6), append(v[:73:73], foreignEnv...))
			rechain(t, b, tx.Bucket([]byte("meta")), 6)
		}, 6, "unknown signing key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustBuildLedgerCopy(t, base)
			db, err := bolt.Open(f.path(), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { c.edit(t, tx); return nil }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			l := f.open(t)
			rep, err := audit.Verify(context.Background(), l, f.trust)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("verify passed a tampered ledger")
			}
			if c.wantSeq != 0 && rep.Failure.Seq != c.wantSeq {
				t.Fatalf("blamed seq %d (%s), want %d", rep.Failure.Seq, rep.Failure.Reason, c.wantSeq)
			}
			if !strings.Contains(rep.Failure.Reason, c.reason) {
				t.Fatalf("reason %q does not mention %q", rep.Failure.Reason, c.reason)
			}
			// In passes, a group of suppliers each: the same finding.
			for _, budget := range []int{1, 7} {
				prep, err := audit.VerifyInPasses(context.Background(), l, f.trust, budget)
				if err != nil || !sameReport(prep, rep) {
					t.Fatalf("holding %d events' cards: %+v (%+v) %v, want %+v (%+v)", budget, prep, prep.Failure, err, rep, rep.Failure)
				}
			}
		})
	}
}

// mustBuildLedgerCopy copies a built ledger so each case tampers its own.
func mustBuildLedgerCopy(t testing.TB, f fixture) fixture {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(f.path())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ledger.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fixture{dir: dir, trust: f.trust}
}

func flip(t testing.TB, b *bolt.Bucket, seq uint64, at int) {
	t.Helper()
	v := append([]byte{}, b.Get(u64(seq))...)
	if at < 0 {
		at += len(v)
	}
	v[at] ^= 1
	if err := b.Put(u64(seq), v); err != nil {
		t.Fatal(err)
	}
}

func TestRuleAuditOfAnHonestLedgerFindsNothing(t *testing.T) {
	f := mustBuildLedger(t)
	cal, err := calendar.England()
	if err != nil {
		t.Fatal(err)
	}
	findings, err := audit.Rules(context.Background(), f.open(t), rules.New(cal), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 0 {
		t.Fatalf("findings on an honest ledger: %+v", findings)
	}
	// Later, the rules require escalations the log does not have yet.
	findings, err = audit.Rules(context.Background(), f.open(t), rules.New(cal), "2027-06-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) == 0 || findings[0].Kind != "missing" {
		t.Fatalf("findings at 2027-06-01: %+v, want missing escalations", findings)
	}
}

// TestRuleAuditFlagsAConsequenceTheRulesDidNotRequire: a breach signed with
// the enforcement service's real key, but not required by any rule, is
// accepted by the ledger (the key may emit breaches) and caught by the
// rule audit.
func TestRuleAuditFlagsAConsequenceTheRulesDidNotRequire(t *testing.T) {
	f := mustBuildLedger(t)
	k, err := keys.Load(filepath.Join(f.dir, "keys", "enforcement.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(f.path(), f.trust.RootKey, ledger.Options{Now: func() time.Time { return time.Date(2027, 4, 2, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	card, err := l.Card("acme-health")
	if err != nil {
		t.Fatal(err)
	}
	raw, ev, err := envelope.NewSigner(k).Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Date(2027, 4, 2, 9, 0, 0, 0, time.UTC),
		Payload: &pb.BreachRaised{BreachId: "br_invented", CommitmentId: card.Commitments[1].ID, Severity: pb.Severity_SEVERITY_MAJOR, RaisedOn: "2027-04-02", Reason: "invented"}})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := l.Append(context.Background(), [][]byte{raw}); err != nil || rs[0].Quarantined {
		t.Fatalf("append: %+v %v", rs, err)
	}
	l.Close()
	cal, _ := calendar.England()
	findings, err := audit.Rules(context.Background(), f.open(t), rules.New(cal), "")
	if err != nil {
		t.Fatal(err)
	}
	// The invented breach is flagged; being a third breach, it also makes
	// the rules require a disinvestment review the log does not have.
	if len(findings) == 0 || findings[0].Kind != "unjustified" || findings[0].EventID != ev.EventId {
		t.Fatalf("findings %+v, want the invented breach %s as unjustified", findings, ev.EventId)
	}
}

// shifting is a source whose entries change after the first reading: a
// file rewritten while an auditor verifies it in passes.
type shifting struct {
	audit.Source
	scans int
}

func (s *shifting) Scan(ctx context.Context, fn func(ledger.Entry) error) error {
	s.scans++
	return s.Source.Scan(ctx, func(e ledger.Entry) error {
		if s.scans > 1 && e.Seq == 5 {
			e.Envelope = bytes.Clone(e.Envelope)
			e.Envelope[len(e.Envelope)/2] ^= 1
		}
		return fn(e)
	})
}

func TestVerifyInPassesCatchesALedgerChangedBetweenReadings(t *testing.T) {
	f := mustBuildLedger(t)
	src := &shifting{Source: f.open(t)}
	rep, err := audit.VerifyInPasses(context.Background(), src, f.trust, 4)
	if err != nil {
		t.Fatal(err)
	}
	if src.scans < 2 {
		t.Fatalf("%d readings, want more than one", src.scans)
	}
	if rep.OK() || rep.Failure.Seq != 5 || !strings.Contains(rep.Failure.Reason, "changed while it was being verified") {
		t.Fatalf("report %+v (%+v), want a failure at 5 saying the ledger changed", rep, rep.Failure)
	}
	// Read once, the same source verifies.
	if rep, err := audit.Verify(context.Background(), &shifting{Source: f.open(t)}, f.trust); err != nil || !rep.OK() {
		t.Fatalf("verified in one pass: %+v %v", rep.Failure, err)
	}
}
