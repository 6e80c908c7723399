package ledger_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
)

// BenchmarkAppend appends generated events in batches as read from a
// stream with more behind, publishing when caught up at the end, as ingest
// does, without the broker: each batch is prepared (opened, its signatures
// checked, on every core) while the one before it is appended, as the
// broker's consumer does. Batches are of SAL_BENCH_BATCH events, or 4,096
// (the consumer's batch: in sal bench nearly every batch is that full);
// SAL_BENCH_UNPREPARED=1 appends each unprepared (AppendFromStream),
// verification and append in turn (with SAL_BENCH_BATCH=256, what this
// benchmark measured before). 4,096 is system's ledgerBatch, which this
// package cannot import.
func BenchmarkAppend(b *testing.B) {
	k := bench.DeterministicKeys("append")
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("SAL_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	evs, err := bench.Events(k, n)
	if err != nil {
		b.Fatal(err)
	}
	batch := 4096
	if v, err := strconv.Atoi(os.Getenv("SAL_BENCH_BATCH")); err == nil && v > 0 {
		batch = v
	}
	cs, _, _ := keys.NoteSigner("sal.bench/append", k.Root)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// A clock after the generated events that runs, so publications
		// come every publishEvery as in a running ledger.
		start, base := time.Now(), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		now := func() time.Time { return base.Add(time.Since(start)) }
		l, err := ledger.Open(filepath.Join(b.TempDir(), "ledger.db"), k.Root.Public().(ed25519.PublicKey), ledger.Options{Now: now, Checkpoints: &ledger.Checkpointer{Origin: "sal.bench/append", Signer: cs}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if os.Getenv("SAL_BENCH_UNPREPARED") != "" {
			for i := 0; i < n; i += batch {
				last := min(i+batch, n)
				if _, err := l.AppendFromStream(context.Background(), evs[i:last], uint64(last), last == n); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			appendPreparedAhead(b, l, evs, batch)
		}
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRebuild drops and replays the projections of a ledger of
// generated events: SAL_BENCH_EVENTS of them, or 50,000.
func BenchmarkRebuild(b *testing.B) {
	k := bench.DeterministicKeys("rebuild")
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("SAL_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	evs, err := bench.Events(k, n)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := ledger.Options{Now: func() time.Time { return now }, NoSync: true}
	// SAL_BENCH_MAPPED_RESIDENT: the mapped-pages budget in MiB (-1: never
	// release), as sal bench -mapped-resident.
	if v, err := strconv.Atoi(os.Getenv("SAL_BENCH_MAPPED_RESIDENT")); err == nil && v != 0 {
		opts.MappedResident = int64(v) << 20
	}
	l, err := ledger.Open(filepath.Join(b.TempDir(), "ledger.db"), k.Root.Public().(ed25519.PublicKey), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < n; i += 1000 {
		if _, err := l.Append(context.Background(), evs[i:min(i+1000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if err := l.RebuildProjections(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// appendPreparedAhead appends evs in batches of size, preparing the next
// batch while one is appended (broker.Consume's gather goroutine).
func appendPreparedAhead(b *testing.B, l *ledger.Ledger, evs [][]byte, size int) {
	type prepared struct {
		p    *ledger.Prepared
		last int
	}
	ready := make(chan prepared, 1)
	go func() {
		defer close(ready)
		for i := 0; i < len(evs); i += size {
			last := min(i+size, len(evs))
			ready <- prepared{l.Prepare(evs[i:last]), last}
		}
	}()
	for p := range ready {
		if _, err := l.AppendPrepared(context.Background(), p.p, uint64(p.last), p.last == len(evs)); err != nil {
			for range ready { // let the preparing goroutine end
			}
			b.Fatal(err)
		}
	}
}
