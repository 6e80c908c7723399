package audit_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
)

// benchEvents is the ledger size for BenchmarkVerify: SAL_BENCH_EVENTS, or
// 100,000 (1,000,000 takes minutes to build on two cores).
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("SAL_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// BenchmarkEd25519VerifyAllCores is the ceiling verification is measured
// against: raw Ed25519 verifications per second using every core.
func BenchmarkEd25519VerifyAllCores(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 300)
	sig := ed25519.Sign(priv, msg)
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !ed25519.Verify(pub, msg, sig) {
				panic("bad signature")
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

type builtLedger struct {
	path  string
	trust audit.Trust
	n     int
}

// buildLedger appends benchEvents() generated events, with checkpoints
// every 1,000, into a ledger in dir.
func buildLedger(b *testing.B, dir string) builtLedger {
	b.Helper()
	bl := builtLedger{path: filepath.Join(dir, "ledger.db"), n: benchEvents()}
	k := bench.DeterministicKeys("verify")
	cs, vkey, err := keys.NoteSigner("sal.bench/verify", k.Root)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(bl.path, k.Root.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return now }, NoSync: true, Checkpoints: &ledger.Checkpointer{Origin: "sal.bench/verify", Signer: cs}})
	if err != nil {
		b.Fatal(err)
	}
	g := bench.NewGenerator(k, bl.n)
	for done := 0; done < bl.n; {
		evs, err := g.Next(1000)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Append(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
		done += len(evs)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	bl.trust = audit.Trust{RootKey: k.Root.Public().(ed25519.PublicKey), CheckpointKey: vkey}
	return bl
}

// BenchmarkVerify times a full offline verification of a ledger of
// benchEvents() generated events.
func BenchmarkVerify(b *testing.B) {
	built := buildLedger(b, b.TempDir())
	l, err := ledger.Open(built.path, built.trust.RootKey, ledger.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	for range b.N {
		rep, err := audit.Verify(context.Background(), l, built.trust)
		if err != nil || !rep.OK() || rep.Entries != uint64(built.n) {
			b.Fatalf("verify: %+v %v", rep.Failure, err)
		}
	}
	b.ReportMetric(float64(built.n*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
}

// BenchmarkVerifyInPasses verifies one ledger holding every card at once
// and holding a quarter of them at a time (four passes), and reports each
// one's events/s and the peak Go heap in use while it ran.
func BenchmarkVerifyInPasses(b *testing.B) {
	built := buildLedger(b, b.TempDir())
	l, err := ledger.Open(built.path, built.trust.RootKey, ledger.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct {
		name   string
		budget int
	}{{"one pass", built.n * 2}, {"four passes", (built.n + 3) / 4}} {
		b.Run(c.name, func(b *testing.B) {
			runtime.GC()
			stop := make(chan struct{})
			peak := make(chan uint64)
			go func() {
				var top uint64
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					top = max(top, ms.HeapInuse)
					select {
					case <-stop:
						peak <- top
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			b.ResetTimer()
			for range b.N {
				rep, err := audit.VerifyInPasses(context.Background(), l, built.trust, c.budget)
				if err != nil || !rep.OK() || rep.Entries != uint64(built.n) {
					b.Fatalf("verify: %+v %v", rep.Failure, err)
				}
			}
			b.StopTimer()
			close(stop)
			b.ReportMetric(float64(built.n*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(<-peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
