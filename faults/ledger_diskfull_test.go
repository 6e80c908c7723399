package faults_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
)

// failures records what the ledger tells its observer about failed batches.
type failures struct {
	mu   sync.Mutex
	errs []error
}

func (f *failures) Batch([]ledger.Result, time.Duration) {}
func (f *failures) BatchFailed(_ int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

// TestLedgerDiskFull appends to a ledger on a small tmpfs until its disk is
// full. The batch that does not fit fails with ErrNoSpace, stores nothing
// (head unchanged, even when tried again), is reported to the observer and
// by AppendFailure, and the scorecards it changed in memory are restored;
// once space returns the same batch commits whole, in order, and the
// ledger verifies, scorecard digests included.
func TestLedgerDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a disk")
	}
	mnt := mountTmpfs(t, "24m")
	// Most of the disk is taken by another file, freed later.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 18<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	k := bench.DeterministicKeys("ledger-disk-full")
	evs, err := bench.Events(k, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	root := k.Root.Public().(ed25519.PublicKey)
	cs, vkey, _ := keys.NoteSigner("sal.test/disk-full", k.Root)
	obs := &failures{}
	path := filepath.Join(mnt, "ledger.db")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(path, root, ledger.Options{Now: func() time.Time { return now }, Observer: obs,
		Checkpoints: &ledger.Checkpointer{Origin: "sal.test/disk-full", Signer: cs}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	var failed [][]byte
	next := 0
	// Read as from a stream with more behind: stored, not yet published,
	// so the failing batch also finds cards only in memory (dirty).
	for next < len(evs) {
		batch := evs[next:min(next+256, len(evs))]
		if _, err := l.AppendFromStream(ctx, batch, uint64(next+len(batch)), false); err != nil {
			if !errors.Is(err, ledger.ErrNoSpace) {
				t.Fatalf("append at %d: %v, want ErrNoSpace", next, err)
			}
			failed = batch
			break
		}
		next += len(batch)
	}
	if failed == nil {
		t.Fatalf("%d events fitted in the tmpfs: make it smaller", len(evs))
	}
	head, _, err := l.Head()
	if err != nil {
		t.Fatal(err)
	}
	if head != uint64(next) {
		t.Fatalf("head %d after the failed batch, want %d (nothing of it stored)", head, next)
	}
	if _, err := l.AppendFromStream(ctx, failed, uint64(next+len(failed)), false); !errors.Is(err, ledger.ErrNoSpace) {
		t.Fatalf("the same batch on the still full disk: %v, want ErrNoSpace", err)
	}
	if h, _, _ := l.Head(); h != head {
		t.Fatalf("head moved to %d on a full disk", h)
	}
	if !errors.Is(l.AppendFailure(), ledger.ErrNoSpace) {
		t.Fatalf("AppendFailure = %v, want ErrNoSpace", l.AppendFailure())
	}
	obs.mu.Lock()
	reported := len(obs.errs)
	obs.mu.Unlock()
	if reported != 2 {
		t.Fatalf("observer told of %d failed batches, want 2", reported)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	res, err := l.AppendFromStream(ctx, failed, uint64(next+len(failed)), true)
	if err != nil {
		t.Fatalf("the batch once space returned: %v", err)
	}
	for i, r := range res {
		if r.Quarantined || r.Duplicate || r.Seq != head+uint64(i)+1 {
			t.Fatalf("result %d of the retried batch: %+v, want appended at %d", i, r, head+uint64(i)+1)
		}
	}
	if l.AppendFailure() != nil {
		t.Fatalf("AppendFailure after recovery: %v", l.AppendFailure())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := ledger.Open(path, root, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := audit.Verify(ctx, ro, audit.Trust{RootKey: root, CheckpointKey: vkey})
	if err != nil || !rep.OK() {
		t.Fatalf("audit after the disk was full: %+v %v", rep.Failure, err)
	}
	if rep.Entries != head+uint64(len(failed)) {
		t.Fatalf("audit checked %d entries, want %d", rep.Entries, head+uint64(len(failed)))
	}
}
