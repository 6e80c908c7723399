package broker

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/envelope"
)

// Group commit.
//
// The stream is kept on disk with an fsync before every acknowledgement
// (sync_always), so one publish costs one fsync: a few thousand a second on
// a good disk, far below what the ledger verifies and stores. The
// Publisher therefore publishes one message at a time, and the envelopes
// handed to it while a publish waits for its acknowledgement go out
// together in the next: a batch message, stored and acknowledged — and
// fsynced — as one. Under load one fsync carries many events; a lone event
// goes out alone, as soon as it comes, as before. Envelopes go out in the
// order they were handed over.
//
// A batch message has the subject BatchSubject and the header HeaderBatch
// (the number of envelopes); its data is the envelopes, each preceded by
// its length as an unsigned varint. Its message id is derived from the
// event ids it carries, so republishing the same batch is dropped by
// JetStream's duplicate window; an event republished in another message
// is dropped by the ledger by its id.
const (
	HeaderBatch  = "Sal-Batch"
	BatchSubject = SubjectPrefix + ".batch"

	maxBatchEnvelopes = 256
	maxBatchBytes     = 512 << 10       // NATS' default payload limit is 1 MiB
	publishTimeout    = 5 * time.Second // as nats.go when the context has no deadline
)

// ErrUnavailable means the broker did not acknowledge the event: it may or
// may not have been stored, and publishing it again (same id) is safe.
var ErrUnavailable = errors.New("broker: event stream unavailable")

// Publisher publishes sealed envelopes, grouping those handed over
// concurrently (see above). It is safe for concurrent use.
type Publisher struct {
	js jetstream.JetStream

	mu    sync.Mutex
	queue []*publication
	busy  bool // a publish is in flight; whoever finishes it publishes the next
}

type publication struct {
	subject, eventID string
	raw              []byte
	deadline         time.Time // the sender's; zero: publishTimeout
	done             chan error
}

// NewPublisher returns a publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish sends raw (an envelope whose event id is eventID) and returns
// once JetStream has acknowledged storing it (or dropping it as a
// duplicate). When ctx ends first the event may or may not be stored.
func (p *Publisher) Publish(ctx context.Context, subject, eventID string, raw []byte) error {
	deadline, _ := ctx.Deadline()
	select {
	case err := <-p.enqueue(subject, eventID, raw, deadline):
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: publish %s: not acknowledged: %v", ErrUnavailable, eventID, ctx.Err())
	}
}

// Enqueue hands raw over for publishing after everything handed over
// before it and returns a channel that receives the outcome once.
func (p *Publisher) Enqueue(subject, eventID string, raw []byte) <-chan error {
	return p.enqueue(subject, eventID, raw, time.Time{})
}

func (p *Publisher) enqueue(subject, eventID string, raw []byte, deadline time.Time) <-chan error {
	pub := &publication{subject: subject, eventID: eventID, raw: raw, deadline: deadline, done: make(chan error, 1)}
	p.mu.Lock()
	p.queue = append(p.queue, pub)
	lead := !p.busy
	p.busy = true
	p.mu.Unlock()
	if lead {
		go p.publishNext()
	}
	return pub.done
}

// publishNext publishes the envelopes waiting at the head of the queue as
// one message, tells each sender the outcome, and carries on while more
// are waiting.
func (p *Publisher) publishNext() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.busy = false
			p.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(p.queue) && n < maxBatchEnvelopes && (n == 0 || size+len(p.queue[n].raw)+binary.MaxVarintLen32 <= maxBatchBytes) {
			size += len(p.queue[n].raw) + binary.MaxVarintLen32
			n++
		}
		group := p.queue[:n:n]
		p.queue = p.queue[n:]
		p.mu.Unlock()

		err := p.publish(group)
		for _, g := range group {
			g.done <- err
		}
	}
}

// publish sends a group as one message. It waits for the acknowledgement
// as long as the most patient sender (publishTimeout for those without a
// deadline), so an unavailable stream holds up the envelopes behind it no
// longer than their senders wait anyway.
func (p *Publisher) publish(group []*publication) error {
	var deadline time.Time
	for _, g := range group {
		d := g.deadline
		if d.IsZero() {
			d = time.Now().Add(publishTimeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(StreamName), jetstream.WithRetryAttempts(3)}
	if len(group) == 1 {
		g := group[0]
		if _, err := p.js.Publish(ctx, g.subject, g.raw, append(opts, jetstream.WithMsgID(g.eventID))...); err != nil {
			return fmt.Errorf("%w: publish %s: %v", ErrUnavailable, g.eventID, err)
		}
		return nil
	}
	raws := make([][]byte, len(group))
	ids := sha256.New()
	for i, g := range group {
		raws[i] = g.raw
		ids.Write([]byte(g.eventID))
		ids.Write([]byte{'\n'})
	}
	msg := nats.NewMsg(BatchSubject)
	msg.Header.Set(HeaderBatch, strconv.Itoa(len(group)))
	msg.Data = EncodeBatch(raws)
	id := "batch-" + hex.EncodeToString(ids.Sum(nil)[:16])
	if _, err := p.js.PublishMsg(ctx, msg, append(opts, jetstream.WithMsgID(id))...); err != nil {
		return fmt.Errorf("%w: publish a batch of %d events (%s … %s): %v", ErrUnavailable, len(group), group[0].eventID, group[len(group)-1].eventID, err)
	}
	return nil
}

// EncodeBatch is the data of a batch message carrying raws.
func EncodeBatch(raws [][]byte) []byte {
	size := 0
	for _, r := range raws {
		size += binary.MaxVarintLen32 + len(r)
	}
	out := make([]byte, 0, size)
	for _, r := range raws {
		out = binary.AppendUvarint(out, uint64(len(r)))
		out = append(out, r...)
	}
	return out
}

// DecodeBatch splits the data of a batch message that says it carries
// count envelopes. It refuses anything else: a wrong count, a length
// running past the end or not in its shortest form, an empty or oversized
// envelope, bytes left over.
func DecodeBatch(data []byte, count string) ([][]byte, error) {
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > maxBatchEnvelopes {
		return nil, fmt.Errorf("broker: batch header %s %q: want 1 to %d", HeaderBatch, count, maxBatchEnvelopes)
	}
	out := make([][]byte, 0, n)
	for len(data) > 0 {
		size, k := binary.Uvarint(data)
		// Lengths are written in their shortest form: one encoding per batch.
		if k <= 0 || k != len(binary.AppendUvarint(nil, size)) || size == 0 || size > envelope.MaxSize || size > uint64(len(data)-k) {
			return nil, fmt.Errorf("broker: batch envelope %d: bad length", len(out)+1)
		}
		data = data[k:]
		out = append(out, data[:size:size])
		data = data[size:]
	}
	if len(out) != n {
		return nil, fmt.Errorf("broker: batch holds %d envelopes, header says %d", len(out), n)
	}
	return out, nil
}

// appendEnvelopes adds the envelopes a stream message carries: the
// envelopes of a batch, else the message's data as one envelope. A batch
// that does not split is passed on whole, as one envelope, for the ledger
// to quarantine with its reason: never dropped.
func appendEnvelopes(raws [][]byte, m jetstream.Msg) [][]byte {
	if count := m.Headers().Get(HeaderBatch); count != "" {
		if evs, err := DecodeBatch(m.Data(), count); err == nil {
			return append(raws, evs...)
		}
	}
	return append(raws, m.Data())
}
