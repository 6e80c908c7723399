package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/broker"
)

// lockedBuffer is a log destination written from the consumer's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// flakyAppender fails its first failures calls, then stores what it is
// given; it records every call.
type flakyAppender struct {
	mu       sync.Mutex
	failures int
	calls    [][]string
	stored   []string
}

func (a *flakyAppender) Append(_ context.Context, raws [][]byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var call []string
	for _, r := range raws {
		call = append(call, string(r))
	}
	a.calls = append(a.calls, call)
	if len(a.calls) <= a.failures {
		return errors.New("write ledger.db: no space left on device")
	}
	a.stored = append(a.stored, call...)
	return nil
}

func (a *flakyAppender) snapshot() (calls [][]string, stored []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls), slices.Clone(a.stored)
}

// TestConsumeRetriesAFailedBatchWholeAndInOrder: when the ledger fails a
// batch (its disk is full), the consumer keeps that batch, acknowledges
// nothing, and tries the same messages in the same order again with backoff
// until they commit; then everything is stored once, in publish order, and
// acknowledged. It logs the failure once and the recovery.
func TestConsumeRetriesAFailedBatchWholeAndInOrder(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := broker.ConnectEmbedded(srv, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(js)
	var want []string
	for i := range 20 {
		m := fmt.Sprintf("message %02d", i)
		if err := pub.Publish(ctx, "sal.events.test.acme", fmt.Sprintf("id-%d", i), []byte(m)); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}

	app := &flakyAppender{failures: 4}
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	cctx, stop := context.WithCancel(ctx)
	go func() {
		done <- broker.Consume(cctx, js, "", app, 8, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	for {
		if _, stored := app.snapshot(); len(stored) >= len(want) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not everything stored: %v\nlogs:\n%s", app.stored, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Acknowledged: nothing pending on the consumer.
	c, err := js.Consumer(ctx, broker.StreamName, broker.LedgerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("messages left unacknowledged: %+v", info)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	calls, stored := app.snapshot()
	if !slices.Equal(stored, want) {
		t.Fatalf("stored %v,\nwant every message once in publish order %v", stored, want)
	}
	for i := 1; i <= app.failures; i++ {
		if !slices.Equal(calls[i], calls[0]) {
			t.Fatalf("retry %d appended %v, want the failed batch again, whole and in order: %v", i, calls[i], calls[0])
		}
	}
	out := logs.String()
	if n := strings.Count(out, "ledger append failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once (then every 30s while it lasts):\n%s", n, out)
	}
	if !strings.Contains(out, "no space left on device") || !strings.Contains(out, "ledger append recovered") {
		t.Errorf("the logs do not show the failure's cause and the recovery:\n%s", out)
	}
}
