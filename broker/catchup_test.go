package broker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/broker"
)

// BenchmarkCatchUp reads a backlog of SAL_BENCH_EVENTS (default 300,000)
// 400-byte envelopes, sent in group-committed batch messages, into a
// ledger stand-in that takes 20 ms a batch, and reports the peak Go heap
// during the catch-up: what the reader holds ahead of a slow ledger, which
// must not grow with the backlog (before its read-ahead was bounded in
// bytes: 242 MiB at 300,000 and 327 MiB at 600,000; after: 126 and 132).
func BenchmarkCatchUp(b *testing.B) {
	n := 300_000
	if v, err := strconv.Atoi(os.Getenv("SAL_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		b.StopTimer()
		srv, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		nc, err := broker.ConnectEmbedded(srv, "bench")
		if err != nil {
			b.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := broker.EnsureStream(ctx, js, 1); err != nil {
			b.Fatal(err)
		}
		pub := broker.NewPublisher(js)
		env := make([]byte, 400)
		var outs []<-chan error
		for i := range n {
			outs = append(outs, pub.Enqueue(broker.Subject(1, "acme"), fmt.Sprint("ev", i), env))
			if len(outs) > 4096 {
				if err := <-outs[0]; err != nil {
					b.Fatal(err)
				}
				outs = outs[1:]
			}
		}
		for _, o := range outs {
			if err := <-o; err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		var peak atomic.Uint64
		stop := make(chan struct{})
		go func() {
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				peak.Store(max(peak.Load(), m.HeapInuse))
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		b.StartTimer()
		var got atomic.Int64
		cctx, cancel := context.WithCancel(ctx)
		app := broker.AppendFunc(func(ctx context.Context, raws [][]byte, last uint64, caughtUp bool) error {
			time.Sleep(20 * time.Millisecond)
			if got.Add(int64(len(raws))) >= int64(n) {
				cancel()
			}
			return nil
		})
		if err := broker.Consume(cctx, js, 1, app, 4096, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		close(stop)
		cancel()
		nc.Close()
		srv.Shutdown()
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.StartTimer()
	}
}
