package bench_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/envelope"
)

func TestGeneratorIsDeterministicAndChunkable(t *testing.T) {
	k := bench.DeterministicKeys("test")
	all, err := bench.Events(k, 3000)
	if err != nil {
		t.Fatal(err)
	}
	g := bench.NewGenerator(k, 3000)
	var chunked [][]byte
	for len(chunked) < 3000 {
		evs, err := g.Next(700)
		if err != nil {
			t.Fatal(err)
		}
		chunked = append(chunked, evs...)
	}
	for i := range all {
		if string(all[i]) != string(chunked[i]) {
			t.Fatalf("event %d differs between one run and chunks", i)
		}
		if _, err := envelope.Open(all[i]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunOnASmallLoad runs the whole benchmark on a small N: every figure
// is produced and the ingested ledger verifies. It asserts no speed.
func TestRunOnASmallLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("the benchmark run takes a few seconds")
	}
	var trace bytes.Buffer
	rep, err := bench.Run(context.Background(), bench.Options{Events: 3000, QueryFor: 500 * time.Millisecond, QueryRate: 200, Ceiling: 200 * time.Millisecond, Dir: t.TempDir(), IngestTrace: &trace})
	if err != nil {
		t.Fatal(err)
	}
	// The ingest's execution trace was written, whole: a runtime trace
	// starts with its header, and a stopped one holds more than that.
	if !bytes.HasPrefix(trace.Bytes(), []byte("go 1.")) || trace.Len() < 1024 {
		t.Errorf("ingest trace: %d bytes, starting %q; want a runtime execution trace", trace.Len(), trace.Bytes()[:min(16, trace.Len())])
	}
	for _, name := range []string{"ingest: publish → verify → append → tree → checkpoint → project", "rebuild projections from the log", "verify: chain, signatures, tree, checkpoints, replayed digests", "query: scorecard p99", "peak RSS", "ceiling: ed25519 verify, all cores, again after the ingest"} {
		if f, ok := rep.Get(name); !ok || f.Value <= 0 {
			t.Errorf("figure %q missing or zero: %+v", name, f)
		}
	}
	// Each timed phase says how many cores it kept busy: some CPU, and
	// never more than the machine has (it is the process's CPU time over
	// the phase's wall time, not a count of goroutines).
	for _, name := range []string{"ingest: cores busy", "rebuild: cores busy", "verify: cores busy"} {
		f, ok := rep.Get(name)
		if !ok || f.Value <= 0 || f.Value > float64(runtime.NumCPU()) {
			t.Errorf("figure %q missing or out of (0, %d cores]: %+v", name, runtime.NumCPU(), f)
		}
	}
	// The figures issue #6 sets targets for say what the target is and
	// whether this run met it.
	for _, name := range []string{"ingest: publish → verify → append → tree → checkpoint → project", "rebuild projections from the log", "verify: chain, signatures, tree, checkpoints, replayed digests", "query: scorecard p99"} {
		if f, _ := rep.Get(name); f.Target == "" || f.Met == nil {
			t.Errorf("figure %q has no target or verdict: %+v", name, f)
		}
	}
}

// A scratch directory that holds anything is refused before the bench
// writes a byte, and what is there is left as it was: an earlier run's
// events would be duplicates in its ledger, and a user's files are not the
// bench's to overwrite.
func TestRunRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "ledger.db")
	if err := os.WriteFile(kept, []byte("someone's"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bench.Run(context.Background(), bench.Options{Events: 100, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Run in a directory in use: %v, want a refusal", err)
	}
	entries, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(kept); string(b) != "someone's" || len(entries) != 1 {
		t.Fatalf("the directory changed: %d entries, ledger.db %q", len(entries), b)
	}
}
