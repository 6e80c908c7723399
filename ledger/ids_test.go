package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/ledger/ledgertest"
)

// storedIDs reads, without the ledger, the event-id index and the log
// position it covers (0 when the file does not say).
func storedIDs(t *testing.T, path string) (ids map[string]uint64, covers uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids = map[string]uint64{}
	_ = db.View(func(tx *bolt.Tx) error {
		covers = beU64(tx.Bucket([]byte("meta")).Get([]byte("indexed_seq")))
		return tx.Bucket([]byte("event_ids")).ForEach(func(k, v []byte) error {
			ids[string(k)] = beU64(v)
			return nil
		})
	})
	return ids, covers
}

// An event's id is found wherever it is kept — in the event-id index, or
// among the entries appended since the indexes were last brought up to
// date, which live in memory — before and after a crash that loses the
// memory: every event delivered again is a duplicate of the one stored,
// and Lookup names its sequence number. A supplier's entries are listed
// whole and once, wherever they are kept, also when a crash cut short an
// indexing in parts. Close writes every entry to the indexes.
func TestEventIDsFoundBeforeAndAfterTheyAreIndexed(t *testing.T) {
	for _, c := range []struct {
		name                string
		at, inBatch, part   int
		cutShortAfterACrash bool
	}{
		{"indexed in the batch's transaction", 700, 4096, 100_000, false},
		{"indexed in parts after the batch", 700, 100, 300, false},
		{"indexing in parts cut short by a crash", 700, 100, 300, true},
	} {
		t.Run(c.name, func(t *testing.T) { eventIDsIndexed(t, c.at, c.inBatch, c.part, c.cutShortAfterACrash) })
	}
}

func eventIDsIndexed(t *testing.T, at, inBatch, part int, cutShort bool) {
	k := bench.DeterministicKeys("ids")
	evs, err := bench.Events(k, 3000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := ledger.Options{Now: func() time.Time { return now }}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	l, err := ledger.Open(path, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetIndexing(at, inBatch, part)
	ctx := context.Background()
	want := map[string]uint64{}
	bySupplier := map[string][]uint64{}
	for i := 0; i < len(evs); i += 256 {
		rs, err := l.Append(ctx, evs[i:min(i+256, len(evs))])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Seq == 0 || r.Duplicate || r.Quarantined {
				t.Fatalf("first delivery: %+v, want appended", r)
			}
			want[r.EventID] = r.Seq
			if r.SupplierID != "" {
				bySupplier[r.SupplierID] = append(bySupplier[r.SupplierID], r.Seq)
			}
		}
	}
	if len(want) != len(evs) {
		t.Fatalf("%d distinct ids appended, want %d", len(want), len(evs))
	}

	crashed := filepath.Join(dir, "crashed.db")
	ledgertest.CopyFile(t, path, crashed)
	readOnly := filepath.Join(dir, "read-only.db")
	ledgertest.CopyFile(t, path, readOnly)
	indexed, covers := storedIDs(t, crashed)
	head := uint64(len(evs))
	if covers == 0 || covers >= head || len(indexed) == 0 {
		t.Fatalf("file: index covers the log up to %d with %d ids, head %d; want some ids indexed and the last ones in memory only", covers, len(indexed), head)
	}
	for id, seq := range indexed {
		if want[id] != seq || seq > covers {
			t.Fatalf("index holds %s at %d; appended at %d, index covers up to %d", id, seq, want[id], covers)
		}
	}

	if cutShort {
		// What a crash between two parts of an indexing leaves: keys in
		// the buckets past indexed_seq, for entries still unindexed.
		db, err := bolt.Open(crashed, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			for s, seqs := range bySupplier {
				for _, seq := range seqs {
					if seq > covers && seq%2 == 0 {
						var key [8]byte
						binary.BigEndian.PutUint64(key[:], seq)
						if err := tx.Bucket([]byte("supplier_events")).Put(append(append([]byte(s), 0), key[:]...), nil); err != nil {
							return err
						}
					}
				}
			}
			for id, seq := range want {
				if seq > covers && seq%2 == 0 {
					var v [8]byte
					binary.BigEndian.PutUint64(v[:], seq)
					if err := tx.Bucket([]byte("event_ids")).Put([]byte(id), v[:]); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// redeliver appends every event again and checks each is a duplicate
	// of the first, and that Lookup finds it.
	redeliver := func(name string, l *ledger.Ledger) {
		t.Helper()
		for i := 0; i < len(evs); i += 512 {
			rs, err := l.Append(ctx, evs[i:min(i+512, len(evs))])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range rs {
				if !r.Duplicate || r.Seq != want[r.EventID] {
					t.Fatalf("%s: redelivered %s: %+v, want a duplicate of seq %d", name, r.EventID, r, want[r.EventID])
				}
			}
		}
		if h, _, _ := l.Head(); h != head {
			t.Fatalf("%s: head %d after redelivery, want %d", name, h, head)
		}
	}
	lookupAll := func(name string, l *ledger.Ledger) {
		t.Helper()
		for id, seq := range want {
			r, ok, err := l.Lookup(id)
			if err != nil || !ok || r.Seq != seq {
				t.Fatalf("%s: Lookup(%s) = %+v, %v, %v; want seq %d", name, id, r, ok, err, seq)
			}
		}
		if _, ok, err := l.Lookup("ev_never_appended"); ok || err != nil {
			t.Fatalf("%s: Lookup of an id never appended: found %v, %v", name, ok, err)
		}
	}
	// suppliersListed checks every supplier's entries, listed in log
	// order (SupplierSeqs) and newest first (SupplierEntries), whole and
	// cut at a size.
	suppliersListed := func(name string, l *ledger.Ledger) {
		t.Helper()
		for s, seqs := range bySupplier {
			got, err := l.SupplierSeqs(s, 0)
			if err != nil || !slices.Equal(got, seqs) {
				t.Fatalf("%s: SupplierSeqs(%s) = %v, %v; want %v", name, s, got, err, seqs)
			}
			cut := seqs[len(seqs)/2]
			if got, _ := l.SupplierSeqs(s, cut); !slices.Equal(got, seqs[:len(seqs)/2+1]) {
				t.Fatalf("%s: SupplierSeqs(%s, %d) = %v, want %v", name, s, cut, got, seqs[:len(seqs)/2+1])
			}
			for _, before := range []uint64{0, cut} {
				es, err := l.SupplierEntries(s, before, 7)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var newest []uint64
				for i := len(seqs) - 1; i >= 0 && len(newest) < 7; i-- {
					if before == 0 || seqs[i] <= before {
						newest = append(newest, seqs[i])
					}
				}
				var gotSeqs []uint64
				for _, e := range es {
					gotSeqs = append(gotSeqs, e.Seq)
				}
				if !slices.Equal(gotSeqs, newest) {
					t.Fatalf("%s: SupplierEntries(%s, %d, 7) = %v, want %v", name, s, before, gotSeqs, newest)
				}
			}
		}
	}
	redeliver("running", l)
	lookupAll("running", l)
	suppliersListed("running", l)

	r, err := ledger.Open(crashed, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	lookupAll("after a crash", r)
	suppliersListed("after a crash", r)
	redeliver("after a crash", r)
	// A rebuild reads the supplier index: the cards it makes are the ones
	// served before it.
	before := map[string][]byte{}
	for s := range bySupplier {
		if before[s], err = r.Scorecard(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RebuildProjections(ctx); err != nil {
		t.Fatal(err)
	}
	for s := range bySupplier {
		if card, err := r.Scorecard(s); err != nil || !bytes.Equal(card, before[s]) {
			t.Fatalf("after a crash: rebuilt scorecard of %s differs from the one served before (%v)", s, err)
		}
	}
	suppliersListed("rebuilt", r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.ReadOnly = true
	ro, err := ledger.Open(readOnly, root, o)
	if err != nil {
		t.Fatal(err)
	}
	lookupAll("read-only", ro)
	suppliersListed("read-only", ro)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if _, c := storedIDs(t, readOnly); c != covers {
		t.Fatalf("read-only open changed the file: index covers %d, was %d", c, covers)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, crashed} {
		indexed, covers := storedIDs(t, p)
		if covers != head || len(indexed) != len(want) {
			t.Fatalf("%s after Close: index covers %d with %d ids; want %d with %d", filepath.Base(p), covers, len(indexed), head, len(want))
		}
		for id, seq := range want {
			if indexed[id] != seq {
				t.Fatalf("%s after Close: index has %s at %d, want %d", filepath.Base(p), id, indexed[id], seq)
			}
		}
	}
}

// A file written before ids were indexed in bulk has no indexed_seq: its
// index holds every id, and opening it records that.
func TestEventIDsOfAnOlderFile(t *testing.T) {
	f := mustOpenLedger(t)
	evs := f.supplierEvents(t)
	rs := f.mustAppend(t, evs...)
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("indexed_seq")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, covers := storedIDs(t, f.path); covers != 0 {
		t.Fatalf("indexed_seq still there: %d", covers)
	}
	f.l = nil
	f.reopen(t)
	opened := filepath.Join(t.TempDir(), "opened.db")
	ledgertest.CopyFile(t, f.path, opened)
	if _, covers := storedIDs(t, opened); covers != rs[len(rs)-1].Seq {
		t.Fatalf("opened: index covers %d, want the head %d", covers, rs[len(rs)-1].Seq)
	}
	for i, r := range f.mustAppend(t, evs...) {
		if !r.Duplicate || r.Seq != rs[i].Seq {
			t.Fatalf("redelivered %+v, want duplicate of seq %d", r, rs[i].Seq)
		}
	}
	o, err := envelope.Open(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	if r, ok, err := f.l.Lookup(o.Event.EventId); err != nil || !ok || r.Seq != rs[0].Seq {
		t.Fatalf("Lookup = %+v, %v, %v; want seq %d", r, ok, err, rs[0].Seq)
	}
}
