// Package broker connects the services and the ledger through NATS
// JetStream: it starts the embedded server, defines the event stream, and
// provides the publisher the services use and the reader that feeds the
// ledger the stream in order, from the position the ledger stored.
//
// Subjects are "sal.events.<type>.<supplier id>" ("_registry" for key
// registry events), in one stream, SAL_EVENTS, kept on file. The event id is
// the JetStream message id, so a republished event is dropped by JetStream
// within the duplicate window and by the ledger after it. Envelopes
// published together travel as one batch message on "sal.events.batch"
// (see publish.go); the ledger drops a republished event by its id.
//
// Durability: the embedded server runs with sync_always, so a publish is
// acknowledged only once the message is fsynced to the stream's file. An
// external cluster is expected to replicate the stream three times instead.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// StreamName is the one stream every event travels on.
const StreamName = "SAL_EVENTS"

// SubjectPrefix begins every event subject.
const SubjectPrefix = "sal.events"

// LastSeq is the sequence of the stream's last message: how far a ledger
// that has read everything has read.
func LastSeq(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	st, err := js.Stream(ctx, StreamName)
	if err != nil {
		return 0, fmt.Errorf("broker: stream %s: %w", StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("broker: stream %s: %w", StreamName, err)
	}
	return info.State.LastSeq, nil
}

// DuplicateWindow is how long JetStream remembers message ids.
const DuplicateWindow = 10 * time.Minute

// Subject is where an event of type t about supplierID is published.
func Subject(t pb.EventType, supplierID string) string {
	name := strings.ToLower(strings.TrimPrefix(t.String(), "EVENT_TYPE_"))
	if supplierID == "" {
		supplierID = "_registry"
	}
	return SubjectPrefix + "." + name + "." + supplierID
}

// EmbeddedConfig configures the in-process NATS server.
type EmbeddedConfig struct {
	StoreDir string // JetStream file store directory
	// Listen is host:port for outside clients; empty means in-process only.
	Listen string
	// SyncAlways fsyncs every stored message before acknowledging it.
	SyncAlways bool
	// Logger, when set, receives the server's warnings and errors and
	// what the store watch does (see watchStore). Default: discard.
	Logger *slog.Logger
}

// StartEmbedded starts an in-process NATS server with JetStream and waits
// until it accepts connections. While it runs, a watch restarts its
// JetStream after a write error (a full disk) once the store can be written
// again; see watchStore.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName: "sal-embedded",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: cfg.SyncAlways,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded server: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLogger(slogLogger{cfg.Logger}, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("broker: embedded server not ready after 10s")
	}
	go watchStore(srv, cfg.StoreDir, log)
	return srv, nil
}

func splitHostPort(hp string) (string, int, error) {
	i := strings.LastIndex(hp, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("broker: listen address %q is not host:port", hp)
	}
	var port int
	if _, err := fmt.Sscanf(hp[i+1:], "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("broker: listen address %q has no valid port", hp)
	}
	return hp[:i], port, nil
}

// ConnectEmbedded opens an in-process client connection to srv.
func ConnectEmbedded(srv *server.Server, name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name(name))
	if err != nil {
		return nil, fmt.Errorf("broker: connect in-process: %w", err)
	}
	return nc, nil
}

// Connect dials an external NATS server or cluster. Reconnection is
// unlimited: a service keeps trying while the broker is away.
func Connect(url, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		// No buffering while disconnected: a publish during an outage fails
		// at once (the user gets 503, "nothing was recorded") instead of
		// being sent later behind the user's back.
		nats.ReconnectBufSize(-1),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect %s: %w", url, err)
	}
	return nc, nil
}

// EnsureStream creates or updates the event stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	if replicas < 1 {
		replicas = 1
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "signed accountability events, one subject per event type and supplier",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  DuplicateWindow,
		Replicas:    replicas,
		MaxMsgSize:  128 << 10,
		Discard:     jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Appender is what the consumer feeds: the ledger, which stores a batch
// together with the stream sequence of its last message. caughtUp says
// the stream held nothing more when the batch was read (the ledger then
// publishes at once; see ledger.AppendFromStream).
type Appender interface {
	Append(ctx context.Context, raws [][]byte, last uint64, caughtUp bool) error
}

// AppendFunc adapts a function to Appender.
type AppendFunc func(ctx context.Context, raws [][]byte, last uint64, caughtUp bool) error

// Append calls f.
func (f AppendFunc) Append(ctx context.Context, raws [][]byte, last uint64, caughtUp bool) error {
	return f(ctx, raws, last, caughtUp)
}

// Preparer is an Appender that can start on a batch — open its envelopes,
// check their signatures — while the batch before it is still being
// appended. Prepare changes nothing; the Appender it returns appends that
// batch (its raws argument is the same batch) and may be called again when
// an append fails.
type Preparer interface {
	Appender
	Prepare(raws [][]byte) Appender
}

// Retry pacing of a batch the ledger failed to store.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
	// retryLogEvery is how often a batch that keeps failing is logged again.
	retryLogEvery = 30 * time.Second
)

// appendRetrying appends one batch, and when that fails (a full disk, a
// damaged page) keeps the batch and tries it again with backoff until it
// commits or ctx ends — the same messages in the same order, so a failure
// neither loses nor reorders anything.
func appendRetrying(ctx context.Context, app Appender, raws [][]byte, last uint64, caughtUp bool, log *slog.Logger) error {
	var (
		start    time.Time
		lastLog  time.Time
		attempts int
		wait     = retryFirst
	)
	for {
		err := app.Append(ctx, raws, last, caughtUp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			if attempts > 0 {
				log.Info("ledger append recovered: the batch that was failing is now committed", "batch", len(raws), "attempts", attempts+1, "after", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		attempts++
		now := time.Now()
		switch {
		case attempts == 1:
			start, lastLog = now, now
			log.Error("ledger append failed: nothing of the batch was stored or acknowledged; retrying it until it commits (nothing new is recorded meanwhile)", "batch", len(raws), "err", err)
		case now.Sub(lastLog) >= retryLogEvery:
			lastLog = now
			log.Error("ledger append still failing; retrying", "batch", len(raws), "attempts", attempts, "since", now.Sub(start).Round(time.Second).String(), "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// Consume feeds the stream to app in stream order, from stream sequence
// from on, in batches of about maxBatch envelopes (whole messages: a batch
// message is never split). It reads with an ordered consumer
// (no acknowledgements: the ledger keeps its own position, stored with each
// batch in the same transaction, and the caller passes it back as from+1
// after a restart), so every ledger replica gets every message once, in
// the stream's order, whatever crashes or redeliveries happen. A batch app
// fails is retried, whole and in order, until it succeeds (see
// appendRetrying). When app is a Preparer, the next batch is prepared
// while one is appended; at most pullBytes of messages wait in the NATS
// client and heldBytes between the client and the append. It
// returns when ctx ends.
func Consume(ctx context.Context, js jetstream.JetStream, from uint64, app Appender, maxBatch int, log *slog.Logger) error {
	stream, err := js.Stream(ctx, StreamName)
	if err != nil {
		return fmt.Errorf("broker: stream %s: %w", StreamName, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("broker: stream %s: %w", StreamName, err)
	}
	if from == 0 {
		from = 1
	}
	if last := info.State.LastSeq; from > last+1 {
		// The stream was replaced by a shorter one (restored, recreated):
		// read it all again; the ledger recognises what it already holds
		// by event id.
		log.Warn("the ledger has read further than the stream holds: reading the stream again from its start", "ledger_position", from-1, "stream_last_seq", last)
		from = 1
	}
	cons, err := js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("broker: ledger reader: %w", err)
	}
	// What is read ahead of the ledger is bounded in bytes, not only in
	// messages: a batch message carries up to 512 KiB, so a bound in
	// messages alone let a reader catching up on a long backlog hold
	// hundreds of MiB (242 MiB for 300,000 events behind a slow ledger).
	// The NATS client holds at most pullBytes it has not handed over;
	// handed over, messages count against budget (heldBytes) until their
	// batch is stored.
	budget := newByteBudget(heldBytes)
	msgs := make(chan jetstream.Msg, 2*maxBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if !budget.take(len(m.Data())) {
			return // Consume is returning
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxBytes(pullBytes))
	if err != nil {
		return fmt.Errorf("broker: consume: %w", err)
	}
	defer cc.Stop()
	defer budget.close() // first: a delivery waiting for budget returns

	// One goroutine gathers (and, for a Preparer, prepares) the next batch
	// while this one appends the batch before it: signature checking then
	// overlaps the ledger's sequential work and its fsync.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan gathered, 1)
	go gather(gctx, msgs, app, maxBatch, ready)
	for b := range ready {
		if b.err != nil {
			return b.err
		}
		if err := appendRetrying(ctx, b.app, b.raws, b.last, b.caughtUp, log); err != nil {
			return nil // ctx ended; nothing of the batch is stored
		}
		budget.give(b.bytes)
	}
	return nil
}

// What the ledger's reader holds ahead of the ledger: pullBytes of
// message data in the NATS client (what one pull asks for), heldBytes
// handed over and not yet stored — room for the batch being appended and
// the next one being prepared (4,096 envelopes of about 600 bytes each).
// Less held makes the next batch smaller than the ledger could take, and
// a catch-up pays its per-batch costs more often (BenchmarkCatchUp: 4 MiB
// held, 2.0 s against 1.6 s); more pulled bought nothing but memory
// (BenchmarkCatchUp at 16 MiB pulled and 16 held: the same 1.6 s, peak
// heap 136-159 MiB against 83-88 at 4 and 8).
const (
	pullBytes = 4 << 20
	heldBytes = 8 << 20
)

// byteBudget counts bytes held; take waits while the budget is spent
// (letting one message through whatever its size when nothing is held, so
// it never waits forever).
type byteBudget struct {
	mu     sync.Mutex
	freed  *sync.Cond
	held   int
	max    int
	closed bool
}

func newByteBudget(max int) *byteBudget {
	b := &byteBudget{max: max}
	b.freed = sync.NewCond(&b.mu)
	return b
}

// take holds n bytes, waiting until they fit; false once closed.
func (b *byteBudget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.held > 0 && b.held+n > b.max && !b.closed {
		b.freed.Wait()
	}
	if b.closed {
		return false
	}
	b.held += n
	return true
}

// give returns n bytes.
func (b *byteBudget) give(n int) {
	b.mu.Lock()
	b.held -= n
	b.mu.Unlock()
	b.freed.Broadcast()
}

// close wakes and refuses every taker.
func (b *byteBudget) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.freed.Broadcast()
}

// gathered is a batch read from the stream, ready to append.
type gathered struct {
	raws     [][]byte
	bytes    int    // of the messages it came in (see byteBudget)
	last     uint64 // stream sequence of its last message
	caughtUp bool
	app      Appender // the prepared batch's, or the consumer's
	err      error
}

// gather reads batches of up to maxBatch envelopes from msgs, in order,
// prepares each when app is a Preparer, and hands them over on ready until
// ctx ends or a message cannot be placed in the stream (then it hands over
// that error and stops).
func gather(ctx context.Context, msgs <-chan jetstream.Msg, app Appender, maxBatch int, ready chan<- gathered) {
	defer close(ready)
	prep, _ := app.(Preparer)
	for {
		var last jetstream.Msg
		var size int
		raws := make([][]byte, 0, maxBatch)
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			raws, last, size = appendEnvelopes(raws, m), m, len(m.Data())
		}
	drain:
		for len(raws) < maxBatch {
			select {
			case m := <-msgs:
				raws, last, size = appendEnvelopes(raws, m), m, size+len(m.Data())
			default:
				break drain
			}
		}
		b := gathered{raws: raws, bytes: size, app: app}
		md, err := last.Metadata()
		if err != nil {
			b.err = fmt.Errorf("broker: message without stream metadata: %w", err)
		} else {
			b.last, b.caughtUp = md.Sequence.Stream, md.NumPending == 0 && len(msgs) == 0
			if prep != nil {
				b.app = prep.Prepare(raws)
			}
		}
		select {
		case ready <- b:
		case <-ctx.Done():
			return
		}
		if b.err != nil {
			return
		}
	}
}
