package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/ledger/ledgertest"
)

// viewFile reads a closed (or copied) ledger file without the ledger.
func viewFile(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(fn); err != nil {
		t.Fatal(err)
	}
}

// storedPositions reads, without the ledger, the log head and the
// position the stored scorecards reflect.
func storedPositions(t *testing.T, path string) (head, cards uint64) {
	t.Helper()
	viewFile(t, path, func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if v := meta.Get([]byte("head")); len(v) == 40 {
			head = beU64(v[:8])
		}
		cards = beU64(meta.Get([]byte("cards_seq")))
		return nil
	})
	return head, cards
}

func beU64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// A crash loses the scorecards changed since they were last written to
// the file, never the events: reopening replays them, and every card and
// digest is as the running ledger served it, writable or read-only.
func TestCrashLosesNoProjectedState(t *testing.T) {
	k := bench.DeterministicKeys("crash")
	evs, err := bench.Events(k, 3000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, _, _ := keys.NoteSigner("sal.test/crash", k.Root)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	opts := ledger.Options{Now: func() time.Time { return now }, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/crash", Signer: cs}}
	l, err := ledger.Open(path, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < len(evs); i += 256 {
		if _, err := l.Append(context.Background(), evs[i:min(i+256, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := l.Suppliers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < 10 {
		t.Fatalf("%d suppliers, want the generator's many", len(ids))
	}
	live := map[string][]byte{}
	digests := map[string][32]byte{}
	for _, id := range ids {
		if live[id], err = l.Scorecard(id); err != nil {
			t.Fatal(err)
		}
		if digests[id], err = l.CardDigest(id); err != nil {
			t.Fatal(err)
		}
	}

	crashed := filepath.Join(dir, "crashed.db")
	ledgertest.CopyFile(t, path, crashed)
	head, cardsSeq := storedPositions(t, crashed)
	if head != uint64(len(evs)) || cardsSeq >= head {
		t.Fatalf("crashed copy: head %d, stored cards at %d; want head %d and cards behind it (pending in memory)", head, cardsSeq, len(evs))
	}
	readOnly := filepath.Join(dir, "read-only.db")
	ledgertest.CopyFile(t, crashed, readOnly)

	for _, c := range []struct {
		name string
		path string
		ro   bool
	}{{"writable", crashed, false}, {"read-only", readOnly, true}} {
		o := opts
		o.ReadOnly = c.ro
		if c.ro {
			o.Checkpoints = nil
		}
		r, err := ledger.Open(c.path, root, o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := r.Suppliers()
		if err != nil || len(got) != len(ids) {
			t.Fatalf("%s: %d suppliers (%v), want %d", c.name, len(got), err, len(ids))
		}
		for _, id := range ids {
			card, err := r.Scorecard(id)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !bytes.Equal(card, live[id]) {
				t.Fatalf("%s: scorecard of %s after the crash differs from the one served before it", c.name, id)
			}
			if d, err := r.CardDigest(id); err != nil || d != digests[id] {
				t.Fatalf("%s: digest of %s after the crash: %x (%v), want %x", c.name, id, d, err, digests[id])
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if head, cardsSeq := storedPositions(t, crashed); cardsSeq != head {
		t.Fatalf("writable reopen stored cards at %d, head %d: want them written up to the head", cardsSeq, head)
	}
	if _, cardsSeq2 := storedPositions(t, readOnly); cardsSeq2 != cardsSeq {
		t.Fatalf("read-only open changed the file: cards at %d, was %d", cardsSeq2, cardsSeq)
	}
}

// Batches read from a stream that has more behind them are stored but
// published together: until a caught-up batch (or Close), their events are
// not on the scorecards, have no checkpoint and wake no waiter. A crash in
// between loses nothing: reopening replays them and signs the checkpoint
// they did not get, and the audit verifies. A batch that fails after
// unpublished ones leaves their cards as the log says.
func TestStreamBatchesArePublishedWhenCaughtUp(t *testing.T) {
	k := bench.DeterministicKeys("publish")
	evs, err := bench.Events(k, 1500)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, vkey, _ := keys.NoteSigner("sal.test/publish", k.Root)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	opts := ledger.Options{Now: func() time.Time { return now }, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/publish", Signer: cs}}
	l, err := ledger.Open(path, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	cards := func(l *ledger.Ledger) map[string]string {
		t.Helper()
		ids, err := l.Suppliers()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, id := range ids {
			v, err := l.Scorecard(id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = string(v)
		}
		return out
	}
	if _, err := l.AppendFromStream(ctx, evs[:500], 500, true); err != nil {
		t.Fatal(err)
	}
	published := cards(l)
	res, err := l.AppendFromStream(ctx, evs[500:900], 900, false)
	if err != nil {
		t.Fatal(err)
	}
	if head, _, _ := l.Head(); head != 900 {
		t.Fatalf("head %d, want 900: an unpublished batch is still stored", head)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := l.Wait(waitCtx, res[len(res)-1].EventID); err == nil {
		t.Fatal("Wait returned for an event not yet published")
	}
	cancel()
	if got := cards(l); len(got) != len(published) || fmt.Sprint(got) != fmt.Sprint(published) {
		t.Fatal("the scorecards changed before the batch was published")
	}
	if _, err := l.SignedCheckpoint(900); err == nil {
		t.Fatal("a checkpoint at 900 before the batch was published")
	}

	// A crash now: the copy has the batch, no checkpoint for it.
	crashed := filepath.Join(dir, "crashed.db")
	ledgertest.CopyFile(t, path, crashed)
	r, err := ledger.Open(crashed, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SignedCheckpoint(900); err != nil {
		t.Fatalf("reopened after a crash, no checkpoint at the head: %v", err)
	}
	if _, err := r.Wait(ctx, res[len(res)-1].EventID); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, r, audit.Trust{RootKey: root, CheckpointKey: vkey})
	if err != nil || !rep.OK() || rep.Entries != 900 {
		t.Fatalf("audit of the reopened copy: %+v %v", rep, err)
	}
	recovered := cards(r)
	r.Close()

	// A failing batch (cancelled before it starts: nothing stored)
	// changes nothing; then a caught-up batch publishes everything.
	woken := make(chan error, 1)
	go func() {
		_, err := l.Wait(ctx, res[0].EventID)
		woken <- err
	}()
	cctx, stop := context.WithCancel(ctx)
	stop()
	if _, err := l.AppendFromStream(cctx, evs[900:1000], 1000, false); err == nil {
		t.Fatal("append with a cancelled context succeeded")
	}
	if _, err := l.AppendFromStream(ctx, evs[900:1500], 1500, true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woken:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter for an event of an unpublished batch was not woken by the publication")
	}
	if _, err := l.SignedCheckpoint(1500); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := ledger.Open(path, root, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err = audit.Verify(ctx, ro, audit.Trust{RootKey: root, CheckpointKey: vkey})
	if err != nil || !rep.OK() || rep.Entries != 1500 {
		t.Fatalf("audit after publication: %+v %v", rep, err)
	}
	// The recovered copy's cards at 900 are what the live ledger would
	// have published at 900: replay them in a fresh ledger to compare.
	fresh, err := ledger.Open(filepath.Join(dir, "fresh.db"), root, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.Append(ctx, evs[:900]); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cards(fresh)) != fmt.Sprint(recovered) {
		t.Fatal("cards replayed after the crash differ from the cards of the same 900 events appended at once")
	}
}

// Scorecards changed by publications wait in memory until they pass a
// bound in bytes or until the flush interval has gone by: a ledger taking
// a few small batches a second writes none of their cards to the file
// until the interval is over, and then all of them.
func TestCardsWaitForTheFlushInterval(t *testing.T) {
	k := bench.DeterministicKeys("interval")
	evs, err := bench.Events(k, 700)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	l, err := ledger.Open(path, k.Root.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	positions := func() (head, cards uint64) {
		t.Helper()
		copied := filepath.Join(dir, "copy.db")
		ledgertest.CopyFile(t, path, copied)
		return storedPositions(t, copied)
	}
	appendBatch := func(i int) {
		t.Helper()
		if _, err := l.Append(context.Background(), evs[i*100:(i+1)*100]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		clock = clock.Add(time.Second)
		appendBatch(i)
	}
	if head, cards := positions(); head != 600 || cards != 0 {
		t.Fatalf("within the interval: head %d, stored cards at %d; want 600 entries, their cards pending", head, cards)
	}
	clock = clock.Add(ledger.FlushEvery)
	appendBatch(6)
	if head, cards := positions(); head != 700 || cards != head {
		t.Fatalf("after the interval: head %d, stored cards at %d; want them written", head, cards)
	}
}

// A flush too large for one transaction is written in parts. A crash
// between two parts leaves some cards written up to the head while the
// file says the stored cards reflect an earlier entry; reopening replays
// the entries after that one, and must not apply them twice to the cards
// that already hold them: every card and digest is then what a rebuild
// from the log gives, and the audit verifies.
func TestCrashBetweenPartsOfAFlush(t *testing.T) {
	k := bench.DeterministicKeys("parts")
	evs, err := bench.Events(k, 3000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, vkey, _ := keys.NoteSigner("sal.test/parts", k.Root)
	// Every call later than the flush interval: each batch is due to flush.
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(ledger.FlushEvery + time.Second); return clock }
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	opts := ledger.Options{Now: now, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/parts", Signer: cs}}
	l, err := ledger.Open(path, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	crashed := filepath.Join(dir, "crashed.db")
	parts, copied := 0, false
	l.SetFlushParts(4096, func(last bool) {
		parts++
		// Between two parts of a flush well into the history.
		if !last && parts > 20 && !copied {
			ledgertest.CopyFile(t, path, crashed)
			copied = true
		}
	})
	for i := 0; i < len(evs); i += 200 {
		if _, err := l.Append(context.Background(), evs[i:min(i+200, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	if !copied {
		t.Fatalf("no flush was written in parts (%d parts in all)", parts)
	}
	head, cardsSeq := storedPositions(t, crashed)
	if ahead := cardsAhead(t, crashed, cardsSeq); cardsSeq >= head || ahead == 0 {
		t.Fatalf("crashed copy: head %d, stored cards at %d, %d cards written past that: want a crash between parts", head, cardsSeq, ahead)
	}
	rebuilt := filepath.Join(dir, "rebuilt.db")
	ledgertest.CopyFile(t, crashed, rebuilt)

	read := func(path string, rebuild bool) (map[string][]byte, map[string][32]byte) {
		t.Helper()
		o := opts
		o.Now = func() time.Time { return clock }
		r, err := ledger.Open(path, root, o)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if rebuild {
			if err := r.RebuildProjections(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		ids, err := r.Suppliers()
		if err != nil {
			t.Fatal(err)
		}
		cards, digests := map[string][]byte{}, map[string][32]byte{}
		for _, id := range ids {
			if cards[id], err = r.Scorecard(id); err != nil {
				t.Fatal(err)
			}
			if digests[id], err = r.CardDigest(id); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := audit.Verify(context.Background(), r, audit.Trust{RootKey: root, CheckpointKey: vkey})
		if err != nil || !rep.OK() {
			t.Fatalf("audit of %s: %+v, %v", filepath.Base(path), rep.Failure, err)
		}
		return cards, digests
	}
	gotCards, gotDigests := read(crashed, false)
	wantCards, wantDigests := read(rebuilt, true)
	if len(gotCards) != len(wantCards) || len(gotCards) < 10 {
		t.Fatalf("%d suppliers after the crash, %d rebuilt", len(gotCards), len(wantCards))
	}
	for id, want := range wantCards {
		if !bytes.Equal(gotCards[id], want) {
			t.Fatalf("scorecard of %s after a crash between parts differs from the rebuilt one:\n got %.300s\nwant %.300s", id, gotCards[id], want)
		}
		if gotDigests[id] != wantDigests[id] {
			t.Fatalf("digest of %s after a crash between parts differs from the rebuilt one", id)
		}
	}
}

// cardsAhead counts, without the ledger, the cards stored record by
// record whose last entry is after seq.
func cardsAhead(t *testing.T, path string, seq uint64) int {
	t.Helper()
	n := 0
	viewFile(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("card_records")).ForEach(func(k, v []byte) error {
			if !bytes.HasSuffix(k, []byte{0, 'f'}) {
				return nil
			}
			var f struct {
				LastSeq uint64 `json:"last_seq"`
			}
			if err := json.Unmarshal(v, &f); err != nil {
				return err
			}
			if f.LastSeq > seq {
				n++
			}
			return nil
		})
	})
	return n
}

// Flush writes what the ledger deferred: after it, a copy of the file (a
// crash) has the cards and both indexes up to the head, and a checkpoint
// at the head, though the batches came from a stream with more behind.
func TestFlushWritesWhatWasDeferred(t *testing.T) {
	k := bench.DeterministicKeys("flush")
	evs, err := bench.Events(k, 2000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, _, _ := keys.NoteSigner("sal.test/flush", k.Root)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	l, err := ledger.Open(path, root, ledger.Options{Now: func() time.Time { return now }, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/flush", Signer: cs}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < len(evs); i += 250 {
		if _, err := l.AppendFromStream(context.Background(), evs[i:i+250], uint64(i+250), false); err != nil {
			t.Fatal(err)
		}
	}
	positions := func() (head, cards, indexed uint64, checkpoint bool) {
		t.Helper()
		copied := filepath.Join(dir, "copy.db")
		ledgertest.CopyFile(t, path, copied)
		head, cards = storedPositions(t, copied)
		viewFile(t, copied, func(tx *bolt.Tx) error {
			indexed = beU64(tx.Bucket([]byte("meta")).Get([]byte("indexed_seq")))
			checkpoint = tx.Bucket([]byte("checkpoints")).Get(binary.BigEndian.AppendUint64(nil, head)) != nil
			return nil
		})
		return head, cards, indexed, checkpoint
	}
	if head, cards, indexed, cp := positions(); head != 2000 || cards == head && indexed == head && cp {
		t.Fatalf("before Flush: head %d, cards %d, indexed %d, checkpoint at the head %v: want some of it deferred", head, cards, indexed, cp)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if head, cards, indexed, cp := positions(); cards != head || indexed != head || !cp {
		t.Fatalf("after Flush: head %d, cards %d, indexed %d, checkpoint at the head %v: want all at the head", head, cards, indexed, cp)
	}
}

// Close writes the published cards it still holds in parts, as a batch
// flushes them, before the last publication's transaction: in one
// transaction bbolt held the nodes of every page they touch at once. The
// cards read back are those a rebuild from the log makes, and the ledger
// audits clean.
func TestCloseWritesHeldCardsInParts(t *testing.T) {
	k := bench.DeterministicKeys("close-parts")
	evs, err := bench.Events(k, 3000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, vkey, _ := keys.NoteSigner("sal.test/close-parts", k.Root)
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // still: nothing is due to flush on the clock
	opts := ledger.Options{Now: func() time.Time { return clock }, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/close-parts", Signer: cs}}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	l, err := ledger.Open(path, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	parts, lastParts := 0, 0
	l.SetFlushParts(4096, func(last bool) {
		parts++
		if last {
			lastParts++
		}
	})
	for i := 0; i < len(evs); i += 200 {
		if _, err := l.Append(context.Background(), evs[i:min(i+200, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	if parts != 0 {
		t.Fatalf("%d parts written before Close: the cards were meant to be held until it", parts)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if parts < 10 || lastParts != 1 {
		t.Fatalf("Close wrote %d parts (%d last): want the held cards in parts of 4096 bytes, one flush", parts, lastParts)
	}
	head, cardsSeq := storedPositions(t, path)
	if cardsSeq != head {
		t.Fatalf("after Close the stored cards reflect the log up to %d, the head is %d", cardsSeq, head)
	}
	rebuilt := filepath.Join(dir, "rebuilt.db")
	ledgertest.CopyFile(t, path, rebuilt)
	read := func(path string, rebuild bool) map[string][]byte {
		t.Helper()
		r, err := ledger.Open(path, root, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if rebuild {
			if err := r.RebuildProjections(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		ids, err := r.Suppliers()
		if err != nil {
			t.Fatal(err)
		}
		cards := map[string][]byte{}
		for _, id := range ids {
			if cards[id], err = r.Scorecard(id); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := audit.Verify(context.Background(), r, audit.Trust{RootKey: root, CheckpointKey: vkey})
		if err != nil || !rep.OK() {
			t.Fatalf("audit of %s: %+v, %v", filepath.Base(path), rep.Failure, err)
		}
		return cards
	}
	got, want := read(path, false), read(rebuilt, true)
	if len(got) != len(want) || len(got) < 10 {
		t.Fatalf("%d suppliers read back, %d rebuilt", len(got), len(want))
	}
	for id, w := range want {
		if !bytes.Equal(got[id], w) {
			t.Fatalf("scorecard of %s written at Close differs from the rebuilt one:\n got %.300s\nwant %.300s", id, got[id], w)
		}
	}
}

// Sections' states are kept in card_sections, none in card_records; a
// file that kept them in card_records (a sal before card_sections) is
// read on: those are no longer read, the cards its later events change
// hash as a rebuild from the log does, and the ledger audits clean.
func TestSectionStatesOfAnOlderLayout(t *testing.T) {
	k := bench.DeterministicKeys("sections")
	evs, err := bench.Events(k, 2000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, vkey, _ := keys.NoteSigner("sal.test/sections", k.Root)
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := ledger.Options{Now: func() time.Time { return clock }, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/sections", Signer: cs}}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	appendAll := func(evs [][]byte) {
		t.Helper()
		l, err := ledger.Open(path, root, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(evs); i += 200 {
			if _, err := l.Append(context.Background(), evs[i:min(i+200, len(evs))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(evs[:1000])
	// The layout now: states in card_sections only.
	states := 0
	viewFile(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("card_records")).ForEach(func(k, _ []byte) error {
			if i := bytes.IndexByte(k, 0); i >= 0 && i+1 < len(k) && k[i+1] == 'h' {
				return fmt.Errorf("section state %q in card_records", k)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		states = tx.Bucket([]byte("card_sections")).Stats().KeyN
		return nil
	})
	if states < 10 {
		t.Fatalf("%d section states in card_sections", states)
	}
	// As an older sal left it: the states in card_records under 'h'.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		recs := tx.Bucket([]byte("card_records"))
		if err := tx.Bucket([]byte("card_sections")).ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			return recs.Put(append(append(bytes.Clone(k[:i+1]), 'h'), k[i+1:]...), bytes.Clone(v))
		}); err != nil {
			return err
		}
		return tx.DeleteBucket([]byte("card_sections"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	appendAll(evs[1000:])
	rebuilt := filepath.Join(dir, "rebuilt.db")
	ledgertest.CopyFile(t, path, rebuilt)
	read := func(path string, rebuild bool) (map[string][]byte, map[string][32]byte) {
		t.Helper()
		r, err := ledger.Open(path, root, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if rebuild {
			if err := r.RebuildProjections(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		ids, err := r.Suppliers()
		if err != nil {
			t.Fatal(err)
		}
		cards, digests := map[string][]byte{}, map[string][32]byte{}
		for _, id := range ids {
			if cards[id], err = r.Scorecard(id); err != nil {
				t.Fatal(err)
			}
			if digests[id], err = r.CardDigest(id); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := audit.Verify(context.Background(), r, audit.Trust{RootKey: root, CheckpointKey: vkey})
		if err != nil || !rep.OK() {
			t.Fatalf("audit of %s: %+v, %v", filepath.Base(path), rep.Failure, err)
		}
		return cards, digests
	}
	gotCards, gotDigests := read(path, false)
	wantCards, wantDigests := read(rebuilt, true)
	if len(gotCards) != len(wantCards) || len(gotCards) < 10 {
		t.Fatalf("%d suppliers read on, %d rebuilt", len(gotCards), len(wantCards))
	}
	for id, want := range wantCards {
		if !bytes.Equal(gotCards[id], want) {
			t.Fatalf("scorecard of %s read on from the older layout differs from the rebuilt one:\n got %.300s\nwant %.300s", id, gotCards[id], want)
		}
		if gotDigests[id] != wantDigests[id] {
			t.Fatalf("digest of %s read on from the older layout differs from the rebuilt one", id)
		}
	}
}
