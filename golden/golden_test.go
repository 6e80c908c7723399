package golden_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/scorecard"
)

const (
	keysFile     = "keys.json"
	manifestFile = "manifest.json"
	rootKeyName  = "root"
)

// keyFile is keys.json: the public keys that signed a directory's events.
type keyFile struct {
	Keys []keyInfo `json:"keys"`
}

type keyInfo struct {
	Name      string `json:"name"` // "root" is the registry root key
	Holder    string `json:"holder"`
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // Ed25519, hex
	Seed      string `json:"seed"`       // how the (test-only) private key was derived
}

// manifest is manifest.json: what each file of a directory holds, in log
// order, and the ledger clock to replay them at.
type manifest struct {
	Schema      string          `json:"schema"`
	LedgerClock time.Time       `json:"ledger_clock"`
	Events      []manifestEvent `json:"events"`
}

type manifestEvent struct {
	File       string    `json:"file"`
	EventID    string    `json:"event_id"`
	Type       string    `json:"type"` // EventType enum value name
	SupplierID string    `json:"supplier_id"`
	Signer     string    `json:"signer"` // a key name in keys.json
	OccurredAt time.Time `json:"occurred_at"`
}

// historyChecks asserts, per schema version, what the replayed history must
// show. Every directory under testdata needs one.
var historyChecks = map[string]func(t *testing.T, l *ledger.Ledger, k *goldenKeys){
	"v1": checkV1History,
}

// goldenDir is one loaded testdata/vN directory.
type goldenDir struct {
	version  string
	keys     *goldenKeys
	manifest manifest
	raws     [][]byte // in manifest order
}

type goldenKeys struct {
	root   ed25519.PublicKey
	byID   map[string]ed25519.PublicKey
	byName map[string]keyInfo
}

var versionDir = regexp.MustCompile(`^v[1-9][0-9]*$`)

// loadAll reads every testdata/vN directory.
func loadAll(t *testing.T) []*goldenDir {
	t.Helper()
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []*goldenDir
	for _, e := range entries {
		if e.IsDir() && versionDir.MatchString(e.Name()) {
			dirs = append(dirs, loadDir(t, e.Name()))
		}
	}
	if len(dirs) == 0 || dirs[0].version != "v1" {
		t.Fatal("testdata/v1 is missing: the golden events of schema v1 must never be removed")
	}
	return dirs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadDir(t *testing.T, version string) *goldenDir {
	t.Helper()
	dir := filepath.Join("testdata", version)
	d := &goldenDir{version: version}
	var kf keyFile
	readJSON(t, filepath.Join(dir, keysFile), &kf)
	readJSON(t, filepath.Join(dir, manifestFile), &d.manifest)

	d.keys = &goldenKeys{byID: map[string]ed25519.PublicKey{}, byName: map[string]keyInfo{}}
	for _, k := range kf.Keys {
		pub, err := hex.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("%s: key %q: public key is not 32 bytes of hex", dir, k.Name)
		}
		if envelope.KeyID(pub) != k.KeyID {
			t.Fatalf("%s: key %q: key_id %s does not name its public key (want %s)", dir, k.Name, k.KeyID, envelope.KeyID(pub))
		}
		d.keys.byID[k.KeyID] = pub
		d.keys.byName[k.Name] = k
		if k.Name == rootKeyName {
			d.keys.root = pub
		}
	}
	if d.keys.root == nil {
		t.Fatalf("%s: %s names no %q key", dir, keysFile, rootKeyName)
	}

	var onDisk []string
	matches, err := filepath.Glob(filepath.Join(dir, "*.envelope"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		onDisk = append(onDisk, filepath.Base(m))
	}
	var listed []string
	for _, ev := range d.manifest.Events {
		listed = append(listed, ev.File)
		raw, err := os.ReadFile(filepath.Join(dir, ev.File))
		if err != nil {
			t.Fatal(err)
		}
		d.raws = append(d.raws, raw)
	}
	if !slices.Equal(onDisk, listed) {
		t.Fatalf("%s: envelope files %v do not match the manifest's %v (in order)", dir, onDisk, listed)
	}
	if len(listed) == 0 {
		t.Fatalf("%s: no golden events", dir)
	}
	return d
}

// TestGoldenCoversEveryEventType: every event type today's schema knows has
// a frozen sample in some version directory. A new type needs a new
// directory (testdata/v2, ...) and a generator for it.
func TestGoldenCoversEveryEventType(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range loadAll(t) {
		for _, ev := range d.manifest.Events {
			seen[ev.Type] = true
		}
		if historyChecks[d.version] == nil {
			t.Errorf("testdata/%s has no history check: add one to historyChecks", d.version)
		}
	}
	for n, name := range pb.EventType_name {
		if pb.EventType(n) != pb.EventType_EVENT_TYPE_UNSPECIFIED && !seen[name] {
			t.Errorf("no golden event of type %s: add a new schema version directory with a sample of it (see testdata/README.md)", name)
		}
	}
}

// TestGoldenEventsDecodeAndVerify: today's code decodes every golden file,
// finds what the manifest says it holds, and verifies its signature with
// the key keys.json names.
func TestGoldenEventsDecodeAndVerify(t *testing.T) {
	for _, d := range loadAll(t) {
		for i, want := range d.manifest.Events {
			t.Run(d.version+"/"+want.File, func(t *testing.T) {
				o, err := envelope.Open(d.raws[i])
				if err != nil {
					t.Fatalf("today's code no longer decodes it: %v", err)
				}
				ev := o.Event
				if ev.EventId != want.EventID {
					t.Errorf("event id %q, manifest says %q", ev.EventId, want.EventID)
				}
				if n, ok := pb.EventType_value[want.Type]; !ok || ev.Type != pb.EventType(n) {
					t.Errorf("type %s (%d), manifest says %s", ev.Type, int32(ev.Type), want.Type)
				}
				if ev.SupplierId != want.SupplierID {
					t.Errorf("supplier %q, manifest says %q", ev.SupplierId, want.SupplierID)
				}
				if !o.OccurredAt().Equal(want.OccurredAt) {
					t.Errorf("occurred at %s, manifest says %s", o.OccurredAt(), want.OccurredAt)
				}
				if !o.OccurredAt().Before(d.manifest.LedgerClock) {
					t.Errorf("occurred at %s, not before the manifest's ledger clock %s", o.OccurredAt(), d.manifest.LedgerClock)
				}
				if typ, err := envelope.TypeOf(o.Payload); err != nil || typ != ev.Type {
					t.Errorf("payload %T decodes as %s (%v), event says %s", o.Payload, typ, err, ev.Type)
				}
				signer, ok := d.keys.byName[want.Signer]
				if !ok {
					t.Fatalf("manifest names signer %q, which %s does not list", want.Signer, keysFile)
				}
				if ev.KeyId != signer.KeyID {
					t.Errorf("signed by key %s, manifest says %q (%s)", ev.KeyId, want.Signer, signer.KeyID)
				}
				pub, ok := d.keys.byID[ev.KeyId]
				if !ok {
					t.Fatalf("signing key %s is not in %s", ev.KeyId, keysFile)
				}
				if err := o.Verify(pub); err != nil {
					t.Errorf("signature no longer verifies: %v", err)
				}
			})
		}
	}
}

// replay appends a directory's events, one by one and in order, to a fresh
// ledger trusting its root key, and checks each was appended at the next
// sequence number.
func replay(t *testing.T, d *goldenDir) *ledger.Ledger {
	t.Helper()
	clock := d.manifest.LedgerClock
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), d.keys.root, ledger.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i, raw := range d.raws {
		rs, err := l.Append(context.Background(), [][]byte{raw})
		if err != nil {
			t.Fatalf("%s: %v", d.manifest.Events[i].File, err)
		}
		r := rs[0]
		if r.Quarantined || r.Duplicate || r.Seq != uint64(i+1) || r.EventID != d.manifest.Events[i].EventID {
			t.Fatalf("%s: %+v, want appended at seq %d", d.manifest.Events[i].File, r, i+1)
		}
	}
	if seq, _, err := l.Head(); err != nil || seq != uint64(len(d.raws)) {
		t.Fatalf("head = %d, %v; want %d", seq, err, len(d.raws))
	}
	if recs, err := l.Quarantine(1, 100); err != nil || len(recs) != 0 {
		t.Fatalf("quarantine holds %d records (%v), want none", len(recs), err)
	}
	return l
}

// TestGoldenHistoryReplays: each version's history is accepted by today's
// ledger in order, verifies end to end, rebuilds to the same scorecards and
// shows the facts it was written to show.
func TestGoldenHistoryReplays(t *testing.T) {
	for _, d := range loadAll(t) {
		t.Run(d.version, func(t *testing.T) {
			l := replay(t, d)
			if n, err := l.Verify(context.Background()); err != nil || n != uint64(len(d.raws)) {
				t.Fatalf("Verify = %d, %v; want %d, nil", n, err, len(d.raws))
			}
			if got := l.Registry().RootKeyID(); got != envelope.KeyID(d.keys.root) {
				t.Fatalf("registry root %s, want %s", got, envelope.KeyID(d.keys.root))
			}
			suppliers, err := l.Suppliers()
			if err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			for _, id := range suppliers {
				if before[id], err = l.Scorecard(id); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.RebuildProjections(context.Background()); err != nil {
				t.Fatal(err)
			}
			for id, want := range before {
				if got, err := l.Scorecard(id); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: scorecard rebuilt from the log differs (%v):\n got %s\nwant %s", id, err, got, want)
				}
			}
			check := historyChecks[d.version]
			if check == nil {
				t.Fatalf("no history check for %s: add one to historyChecks", d.version)
			}
			check(t, l, d.keys)
		})
	}
}

// TestGoldenBytesStoredVerbatim: the ledger stores the envelope bytes read
// from disk, exactly; nothing is re-serialized on the way.
func TestGoldenBytesStoredVerbatim(t *testing.T) {
	for _, d := range loadAll(t) {
		t.Run(d.version, func(t *testing.T) {
			l := replay(t, d)
			entries, err := l.Entries(1, len(d.raws)+1)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(d.raws) {
				t.Fatalf("%d entries, want %d", len(entries), len(d.raws))
			}
			for i, e := range entries {
				if e.Seq != uint64(i+1) {
					t.Errorf("entry %d has seq %d", i, e.Seq)
				}
				if !bytes.Equal(e.Envelope, d.raws[i]) {
					t.Errorf("seq %d: stored envelope differs from %s", e.Seq, d.manifest.Events[i].File)
				}
				if e.AppendedAt.UnixNano() != d.manifest.LedgerClock.UnixNano() {
					t.Errorf("seq %d: appended at %s, want the ledger clock %s", e.Seq, e.AppendedAt, d.manifest.LedgerClock)
				}
			}
		})
	}
}

// checkV1History asserts the facts the v1 history was written to show.
func checkV1History(t *testing.T, l *ledger.Ledger, k *goldenKeys) {
	t.Helper()
	ev := func(n int) string { return goldenEventID("v1", n) }

	svc, ok := k.byName["service"]
	if !ok {
		t.Fatal("keys.json names no service key")
	}
	a, ok := l.Registry().Lookup(svc.KeyID)
	switch {
	case !ok:
		t.Errorf("service key %s not in the registry", svc.KeyID)
	case a.AuthorizedAt != 1 || a.RetiredAt != 16 || a.Holder != v1Holder || !strings.HasPrefix(a.RetireReason, "rotated"):
		t.Errorf("service key authority %+v, want authorized at 1 as %s and retired at 16", a, v1Holder)
	case len(a.EventTypes) != 12 || slices.Contains(a.EventTypes, "EVENT_TYPE_KEY_AUTHORIZED") || slices.Contains(a.EventTypes, "EVENT_TYPE_KEY_RETIRED"):
		t.Errorf("service key may emit %v, want the 12 non-registry types of v1", a.EventTypes)
	}
	checkKeyRetired(t, l.Registry(), svc.KeyID)

	c, err := l.Card(v1Supplier)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Registered || c.Name != v1SupplierName || c.RegisteredBy != ev(2) {
		t.Errorf("registration: registered %v as %q by %s", c.Registered, c.Name, c.RegisteredBy)
	}
	if len(c.Ignored) != 0 {
		t.Errorf("the history does not fit the card: ignored %+v", c.Ignored)
	}
	if c.EventCount != 14 || c.LastSeq != 15 || c.LastEventTime != "2027-06-28T15:00:00Z" {
		t.Errorf("card counted %d events, last seq %d at %s; want 14, 15, 2027-06-28T15:00:00Z", c.EventCount, c.LastSeq, c.LastEventTime)
	}

	cm := c.Commitment(v1Commitment)
	if cm == nil {
		t.Fatalf("commitment %s missing", v1Commitment)
	}
	if cm.StandardID != "FHIR-R4-UKCORE" || cm.StandardVersion != "2.0.1" || cm.Product != "ePrescribing" ||
		cm.TargetDate != "2027-03-31" || cm.MadeEvent != ev(3) || cm.Status != scorecard.StatusMet {
		t.Errorf("commitment %s = %+v, want FHIR-R4-UKCORE 2.0.1 for ePrescribing by 2027-03-31, met", v1Commitment, cm)
	}
	if len(cm.Assessments) != 2 {
		t.Fatalf("commitment %s has %d assessments, want 2", v1Commitment, len(cm.Assessments))
	}
	if as := cm.Assessments[0]; as.ID != v1Assessment || as.Outcome != "non_conformant" || as.AssessedOn != "2027-04-12" ||
		as.RecordedOn != "2027-04-13" || as.Disputed || as.Void || as.Seq != 5 {
		t.Errorf("first assessment %+v, want non_conformant assessed 2027-04-12, recorded 2027-04-13, standing", as)
	}
	if as := cm.LatestAssessment; as == nil || as.ID != v1Reassessment || as.Outcome != "conformant" {
		t.Errorf("latest assessment %+v, want %s conformant", as, v1Reassessment)
	}

	b := c.Breach(v1Breach)
	if b == nil {
		t.Fatalf("breach %s missing", v1Breach)
	}
	if b.CommitmentID != v1Commitment || b.AssessmentID != v1Assessment || b.Severity != "major" ||
		b.Status != scorecard.BreachRemediated || b.ClosedOn != "2027-06-08" || b.EscalationLevel != 1 ||
		b.Rule.RuleID != "R2-non-conformance" || !slices.Equal(b.Rule.BecauseOf, []string{ev(3), ev(5)}) ||
		b.ClosedBy == nil || b.ClosedBy.RuleID != "R4-closure" || b.Event != ev(6) {
		t.Errorf("breach %+v, want major R2 breach of %s escalated to level 1 and remediated on 2027-06-08 by R4", b, v1Commitment)
	}
	if len(c.Plans) != 1 || c.Plans[0].ID != v1Plan || c.Plans[0].BreachID != v1Breach || c.Plans[0].DueDate != "2027-07-30" {
		t.Errorf("plans %+v, want %s for %s due 2027-07-30", c.Plans, v1Plan, v1Breach)
	}
	if d := c.Dispute(v1Dispute); d == nil || d.Status != "rejected" || d.AssessmentID != v1Assessment ||
		d.ResolvedOn != "2027-06-01" || d.ResolveEvent != ev(10) {
		t.Errorf("dispute %+v, want %s of %s rejected on 2027-06-01", d, v1Dispute, v1Assessment)
	}
	if r := c.Review(v1Review); r == nil || r.Status != "closed" || !slices.Equal(r.BreachIDs, []string{v1Breach}) ||
		r.ClosedOn != "2027-06-28" || r.Rule.RuleID != "R7-repeat-breaches" {
		t.Errorf("review %+v, want %s citing %s, closed on 2027-06-28", r, v1Review, v1Breach)
	}
	cm2 := c.Commitment(v1Commitment2)
	if cm2 == nil || cm2.Status != scorecard.StatusWithdrawn || cm2.Withdrawal == nil ||
		cm2.Withdrawal.On != "2027-06-10" || cm2.Withdrawal.Event != ev(13) || cm2.StandardID != "SNOMED-CT-UK" {
		t.Errorf("second commitment %+v, want SNOMED-CT-UK withdrawn on 2027-06-10", cm2)
	}
}

// checkKeyRetired: a retired key signs nothing more; the registry says so.
func checkKeyRetired(t *testing.T, reg *keys.Registry, keyID string) {
	t.Helper()
	a, ok := reg.Lookup(keyID)
	if !ok || a.RetiredAt == 0 {
		t.Errorf("key %s is not retired in the registry at the head: %+v", keyID, a)
	}
}
