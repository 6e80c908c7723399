package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/supplier-accountability/sal/broker"
)

// Envelopes handed over while a publish waits for its acknowledgement go
// out together, as batch messages, in the order they were handed over, and
// the reader gives the ledger every one of them once, in that order.
func TestPublisherGroupsWhatArrivesMeanwhile(t *testing.T) {
	js, ctx := streamWith(t, 0)
	pub := broker.NewPublisher(js)
	const n = 2000
	var chans []<-chan error
	for i := range n {
		chans = append(chans, pub.Enqueue("sal.events.test.acme", fmt.Sprintf("id-%d", i), []byte(fmt.Sprintf("envelope %04d", i))))
	}
	for i, ch := range chans {
		if err := <-ch; err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
	last, err := broker.LastSeq(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if last >= n/2 {
		t.Fatalf("%d envelopes handed over at once went out as %d messages: not grouped", n, last)
	}
	if last < n/256 {
		t.Fatalf("%d messages for %d envelopes: more than 256 in a message", last, n)
	}

	// Concurrent senders through Publish, interleaved with the above.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := pub.Publish(ctx, "sal.events.test.acme", fmt.Sprintf("w%d-%d", w, i), []byte(fmt.Sprintf("writer %d %02d", w, i))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()

	got := make(chan []string, 1)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	var stored []string
	app := broker.AppendFunc(func(_ context.Context, raws [][]byte, _ uint64, caughtUp bool) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range raws {
			stored = append(stored, string(r))
		}
		if len(stored) == n+400 {
			got <- append([]string(nil), stored...)
		}
		return nil
	})
	go broker.Consume(cctx, js, 1, app, 512, slog.New(slog.DiscardHandler))
	var all []string
	select {
	case all = <-got:
	case <-time.After(20 * time.Second):
		mu.Lock()
		t.Fatalf("the reader gave %d envelopes, want %d", len(stored), n+400)
	}
	for i := range n {
		if want := fmt.Sprintf("envelope %04d", i); all[i] != want {
			t.Fatalf("envelope %d read as %q, want %q: order not kept", i, all[i], want)
		}
	}
	next := map[int]int{}
	for _, s := range all[n:] {
		var w, i int
		if _, err := fmt.Sscanf(s, "writer %d %d", &w, &i); err != nil {
			t.Fatalf("read %q", s)
		}
		if i != next[w] {
			t.Fatalf("writer %d: read %d after %d: one writer's order not kept", w, i, next[w]-1)
		}
		next[w]++
	}
}

// A message that claims to be a batch but does not split is given to the
// ledger whole, as one envelope (which it quarantines), never dropped.
func TestMalformedBatchIsPassedOnWhole(t *testing.T) {
	js, ctx := streamWith(t, 0)
	bad := [][]byte{
		[]byte("\x05ab"), // length past the end
		append(broker.EncodeBatch([][]byte{[]byte("x")}), 0), // trailing zero-length
	}
	for i, data := range bad {
		msg := nats.NewMsg(broker.BatchSubject)
		msg.Header.Set(broker.HeaderBatch, "1")
		msg.Data = data
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("bad batch %d: %v", i, err)
		}
	}
	got := make(chan [][]byte, 1)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var stored [][]byte
	app := broker.AppendFunc(func(_ context.Context, raws [][]byte, _ uint64, _ bool) error {
		stored = append(stored, raws...)
		if len(stored) >= len(bad) {
			got <- stored
		}
		return nil
	})
	go broker.Consume(cctx, js, 1, app, 16, slog.New(slog.DiscardHandler))
	select {
	case s := <-got:
		for i := range bad {
			if !bytes.Equal(s[i], bad[i]) {
				t.Fatalf("bad batch %d passed on as %q, want it whole", i, s[i])
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader passed nothing on")
	}
}

func TestDecodeBatchRoundTripsAndRefuses(t *testing.T) {
	raws := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 300), []byte("c")}
	got, err := broker.DecodeBatch(broker.EncodeBatch(raws), "3")
	if err != nil || len(got) != 3 || !bytes.Equal(got[1], raws[1]) {
		t.Fatalf("round trip: %q %v", got, err)
	}
	for _, c := range []struct {
		data  []byte
		count string
	}{
		{broker.EncodeBatch(raws), "2"},
		{broker.EncodeBatch(raws), "4"},
		{broker.EncodeBatch(raws), "three"},
		{broker.EncodeBatch(raws), "0"},
		{broker.EncodeBatch(raws), "257"},
		{broker.EncodeBatch(raws)[:5], "3"},
		{append(broker.EncodeBatch(raws), 0), "3"},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "1"},
	} {
		if _, err := broker.DecodeBatch(c.data, c.count); err == nil {
			t.Errorf("DecodeBatch(%q, %q) accepted", c.data, c.count)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(broker.EncodeBatch([][]byte{[]byte("a"), []byte("bc")}), "2")
	f.Add([]byte("\x05ab"), "1")
	f.Fuzz(func(t *testing.T, data []byte, count string) {
		raws, err := broker.DecodeBatch(data, count)
		if err != nil {
			return
		}
		if !bytes.Equal(broker.EncodeBatch(raws), data) {
			t.Fatalf("accepted %q as %q, which encodes otherwise", data, raws)
		}
	})
}
