package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/ledger/ledgertest"
)

// TestCheckpointsOfAnOlderSalStillVerify: a ledger written by a sal that
// hashed each card as the SHA-256 of its JSON (checkpoint line
// "sal-scorecards sha256:", format 1) verifies as it is; opened by this
// sal, its cards are hashed anew (format 2) and the checkpoints it signs
// from then on say so; the whole log, old checkpoints and new, verifies in
// one pass and in several. A format-1 checkpoint whose digest is wrong
// still fails.
func TestCheckpointsOfAnOlderSalStillVerify(t *testing.T) {
	ctx := context.Background()
	k := bench.DeterministicKeys("older")
	evs, err := bench.Events(k, 2400)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	signer, vkey, err := keys.NoteSigner("sal.test/older", k.Root)
	if err != nil {
		t.Fatal(err)
	}
	trust := audit.Trust{RootKey: root, CheckpointKey: vkey}
	opts := ledger.Options{Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }, Checkpoints: &ledger.Checkpointer{Origin: "sal.test/older", Signer: signer}}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	appendAll := func(evs [][]byte) {
		t.Helper()
		l, err := ledger.Open(path, root, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(evs); i += 200 {
			if _, err := l.Append(ctx, evs[i:min(i+200, len(evs))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendAll(evs[:1200])
	older := olderSal(t, path, root, signer)

	verifyFile := func(path string) []audit.Report {
		t.Helper()
		l, err := ledger.Open(path, root, ledger.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		one, err := audit.Verify(ctx, l, trust)
		if err != nil {
			t.Fatal(err)
		}
		passes, err := audit.VerifyInPasses(ctx, l, trust, 300)
		if err != nil {
			t.Fatal(err)
		}
		return []audit.Report{one, passes}
	}
	for _, rep := range verifyFile(path) {
		if !rep.OK() || rep.Checkpoints != older {
			t.Fatalf("the older sal's ledger: %+v, %d checkpoints checked of %d", rep.Failure, rep.Checkpoints, older)
		}
	}

	wrong := filepath.Join(dir, "wrong.db")
	ledgertest.CopyFile(t, path, wrong)
	first := resign(t, wrong, signer, false, func(c *ledger.Checkpoint) { c.CardsDigest[0] ^= 1 })
	for _, rep := range verifyFile(wrong) {
		if rep.OK() || rep.Failure.Seq != first {
			t.Fatalf("a format-1 checkpoint with a wrong digest: %+v, want a failure at %d", rep.Failure, first)
		}
	}

	// Only some suppliers' events from here: the others' cards do not
	// change after the older sal's last checkpoint, yet the new
	// checkpoints commit to them hashed the new way.
	var later [][]byte
	for _, raw := range evs[1200:] {
		o, err := envelope.Open(raw)
		if err != nil {
			t.Fatal(err)
		}
		if id := o.Event.SupplierId; id < "supplier-00006" {
			later = append(later, raw)
		}
	}
	appendAll(later)
	l, err := ledger.Open(path, root, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	notes, err := l.Checkpoints()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	formats := map[int]int{}
	for _, n := range notes {
		c, err := ledger.ParseCheckpoint(ledger.CheckpointBody(n))
		if err != nil {
			t.Fatal(err)
		}
		formats[c.CardsFormat]++
	}
	if formats[1] != older || formats[2] == 0 {
		t.Fatalf("checkpoints by cards format: %v; want the older sal's %d of format 1, then format 2", formats, older)
	}
	for _, rep := range verifyFile(path) {
		if !rep.OK() || rep.Checkpoints != len(notes) {
			t.Fatalf("the ledger carried on by this sal: %+v, %d checkpoints checked of %d", rep.Failure, rep.Checkpoints, len(notes))
		}
	}
}

// olderSal rewrites a closed ledger file as a sal before cards format 2
// left it: each checkpoint committing to the SHA-256 of every card's JSON
// at its size (format 1), re-signed; the stored card digests the same; no
// cards_format. It returns how many checkpoints there are.
func olderSal(t *testing.T, path string, root ed25519.PublicKey, signer note.Signer) int {
	t.Helper()
	l, err := ledger.Open(path, root, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	notes, err := l.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	digests := map[uint64][32]byte{}
	for _, n := range notes {
		c, err := ledger.ParseCheckpoint(ledger.CheckpointBody(n))
		if err != nil {
			t.Fatal(err)
		}
		cards, err := audit.Replay(context.Background(), l, c.Size)
		if err != nil {
			t.Fatal(err)
		}
		if digests[c.Size], err = audit.Digest(cards, 1); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := l.Suppliers()
	if err != nil {
		t.Fatal(err)
	}
	cardSums := map[string][32]byte{}
	for _, id := range ids {
		b, err := l.Scorecard(id)
		if err != nil {
			t.Fatal(err)
		}
		cardSums[id] = sha256.Sum256(b)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	resign(t, path, signer, true, func(c *ledger.Checkpoint) { c.CardsFormat, c.CardsDigest = 1, digests[c.Size] })
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for id, sum := range cardSums {
			if err := tx.Bucket([]byte("card_digests")).Put([]byte(id), sum[:]); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Delete([]byte("cards_format"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(notes)
}

// resign changes the checkpoints of a closed ledger file with change,
// every one or only the first, and signs them again; it returns the first
// one's size.
func resign(t *testing.T, path string, signer note.Signer, every bool, change func(*ledger.Checkpoint)) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var first uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("checkpoints"))
		type kv struct{ k, v []byte }
		var out []kv
		err := b.ForEach(func(k, v []byte) error {
			if first != 0 && !every {
				return nil
			}
			c, err := ledger.ParseCheckpoint(ledger.CheckpointBody(v))
			if err != nil {
				return err
			}
			if first == 0 {
				first = c.Size
			}
			change(&c)
			signed, err := note.Sign(&note.Note{Text: c.Text()}, signer)
			if err != nil {
				return err
			}
			out = append(out, kv{bytes.Clone(k), signed})
			return nil
		})
		if err != nil {
			return err
		}
		for _, x := range out {
			if err := b.Put(x.k, x.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if first == 0 {
		t.Fatal("no checkpoint to change")
	}
	return first
}
