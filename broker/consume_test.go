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

// streamWith starts an embedded server whose event stream holds n
// messages, messages(n), in order; all is stopped when the test ends.
func streamWith(t *testing.T, n int) (jetstream.JetStream, context.Context) {
	t.Helper()
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := broker.ConnectEmbedded(srv, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if _, err := broker.EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(js)
	for i, m := range messages(n) {
		if err := pub.Publish(ctx, "sal.events.test.acme", fmt.Sprintf("id-%d", i), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	return js, ctx
}

func messages(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("message %02d", i)
	}
	return out
}

// flakyAppender fails its first failures calls, then stores what it is
// given; it records every call.
type flakyAppender struct {
	mu       sync.Mutex
	failures int
	calls    [][]string
	stored   []string
	last     uint64 // stream position of the last batch stored
}

func (a *flakyAppender) Append(_ context.Context, raws [][]byte, last uint64, _ bool) error {
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
	a.last = last
	return nil
}

func (a *flakyAppender) snapshot() (calls [][]string, stored []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls), slices.Clone(a.stored)
}

// TestConsumeRetriesAFailedBatchWholeAndInOrder: when the ledger fails a
// batch (its disk is full), the consumer keeps that batch and tries the
// same messages in the same order again with backoff until they commit;
// then everything is stored once, in publish order, with the position of
// the last message. It logs the failure once and the recovery.
func TestConsumeRetriesAFailedBatchWholeAndInOrder(t *testing.T) {
	js, ctx := streamWith(t, 20)
	want := messages(20)

	app := &flakyAppender{failures: 4}
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	cctx, stop := context.WithCancel(ctx)
	go func() {
		done <- broker.Consume(cctx, js, 1, app, 8, slog.New(slog.NewTextHandler(logs, nil)))
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
	// The position handed with the last batch is the stream's last message.
	app.mu.Lock()
	last := app.last
	app.mu.Unlock()
	if last != uint64(len(want)) {
		t.Fatalf("position after the last batch %d, want %d", last, len(want))
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

// TestConsumeResumesAfterTheLedgersPosition: started from a position, the
// consumer hands over exactly the messages after it, in stream order, with
// each batch's last stream sequence — what a ledger restarted after a crash
// (or a new replica, from 1) reads.
func TestConsumeResumesAfterTheLedgersPosition(t *testing.T) {
	js, ctx := streamWith(t, 50)
	all := messages(50)
	for _, from := range []uint64{1, 31, 50} {
		app := &flakyAppender{}
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- broker.Consume(cctx, js, from, app, 7, slog.New(slog.DiscardHandler)) }()
		want := all[from-1:]
		for {
			if _, stored := app.snapshot(); len(stored) >= len(want) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("from %d: stored %v", from, app.stored)
			case <-time.After(10 * time.Millisecond):
			}
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, stored := app.snapshot(); !slices.Equal(stored, want) {
			t.Fatalf("from %d: stored %v, want %v", from, stored, want)
		}
		if app.last != 50 {
			t.Fatalf("from %d: last position %d, want 50", from, app.last)
		}
	}
}
