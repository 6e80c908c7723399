package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/scorecard"
)

// QuarantineRecord is a refused message, kept with the reason it was refused.
type QuarantineRecord struct {
	Seq        uint64    `json:"seq"`
	EventID    string    `json:"event_id,omitempty"`
	KeyID      string    `json:"key_id,omitempty"`
	SupplierID string    `json:"supplier_id,omitempty"`
	Type       string    `json:"type,omitempty"`
	Code       string    `json:"code"`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
	Raw        []byte    `json:"raw"`
}

// reasonCode classifies a refusal for metrics and for auditors.
func reasonCode(err error) string {
	switch {
	case errors.Is(err, envelope.ErrTooLarge):
		return "too_large"
	case errors.Is(err, envelope.ErrUnknownType):
		return "unknown_type"
	case errors.Is(err, envelope.ErrMalformed):
		return "malformed"
	case errors.Is(err, envelope.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, keys.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, keys.ErrRetiredKey):
		return "retired_key"
	case errors.Is(err, keys.ErrOutsideAuthority):
		return "outside_authority"
	case errors.Is(err, keys.ErrBadRegistryChange):
		return "bad_registry_change"
	case errors.Is(err, ErrFutureEvent):
		return "future_event"
	case errors.Is(err, ErrIDReused):
		return "id_reused"
	}
	return "refused"
}

// batch is the state of one Append transaction.
type batch struct {
	opened   []*envelope.Opened  // per index: decoded ahead, nil if it did not decode
	verified []bool              // per index: signature checked ahead, in parallel
	leaves   []tlog.Hash         // per index: Merkle leaf hash, computed ahead
	tree     map[int64]tlog.Hash // tree hashes this batch stored, by index (addLeaf reads them back)
	index    int
	tx       *bolt.Tx
	reg      *keys.Registry
	head     head
	now      time.Time
	cards    map[string]*scorecard.Card // the cards this batch changes
	regUp    bool
	cp       *Checkpointer
	dirty    map[string]*scorecard.Card // changed by committed batches not yet published
	pending  map[string]*cardUpdate     // published since the last flush
	publish  bool                       // publish in this batch (see publish.go)
	flush    bool                       // and write every pending card
	inParts  bool                       // set by finish: too many to write in this transaction (flushInParts)
	updates  map[string]*cardUpdate     // the cards published, set by finish
	ledger   *Ledger
	// converted are the cards this batch turned from whole into records:
	// only this transaction sees their records yet.
	converted map[string]bool
	recent    *unindexed // appended before, not yet in the indexes (ids.go)
	fresh     *unindexed // appended by this batch
}

// Append stores a batch of raw envelopes in one bbolt transaction and
// returns what became of each, in order, once they are published: on the
// scorecards and under a signed checkpoint. An error means nothing of the
// batch was stored (the caller must not move past it); refusals of single
// messages are not errors but quarantine records.
func (l *Ledger) Append(ctx context.Context, raws [][]byte) ([]Result, error) {
	return l.append(ctx, raws, 0, true)
}

// AppendFromStream is Append for a batch read from the event stream, whose
// last message is at stream sequence last: the same transaction records
// last as the ledger's stream position (StreamPosition), so the ledger
// resumes reading after exactly what it stored, in stream order. Every
// replica of the ledger therefore appends the same events in the same
// order and reaches the same Merkle root.
//
// caughtUp says the stream holds nothing after this batch. While it does,
// the ledger publishes (scorecards, checkpoint, waiters) at most every
// publishEvery instead of after every batch; the events are stored either
// way.
func (l *Ledger) AppendFromStream(ctx context.Context, raws [][]byte, last uint64, caughtUp bool) ([]Result, error) {
	return l.AppendPrepared(ctx, &Prepared{raws: raws}, last, caughtUp)
}

// Prepared is a batch of raw envelopes opened, and their signatures
// checked on every core, ahead of its append: a reader of the stream
// prepares the next batch while the ledger stores the one before, so
// signature checking overlaps the sequential append and its fsync.
// Preparing changes nothing; the append still checks every event's key
// and authority, in order, against the registry as it stands then (a key
// the batch's registry snapshot did not know is checked there in full).
type Prepared struct {
	raws     [][]byte
	opened   []*envelope.Opened // nil: not prepared, done by the append
	verified []bool
	leaves   []tlog.Hash // each envelope's Merkle leaf hash (LeafHash)
}

// Prepare opens raws and checks their signatures against the registry of
// the last committed batch. It may run concurrently with an append.
func (l *Ledger) Prepare(raws [][]byte) *Prepared {
	return verifyAhead(l.regSnap.Load(), raws)
}

// AppendPrepared is AppendFromStream for a batch made by Prepare. It may
// be called again with the same batch after it failed.
func (l *Ledger) AppendPrepared(ctx context.Context, p *Prepared, last uint64, caughtUp bool) ([]Result, error) {
	if last == 0 {
		return nil, errors.New("ledger: append from stream: no stream position")
	}
	return l.appendPrepared(ctx, p, last, caughtUp)
}

func (l *Ledger) append(ctx context.Context, raws [][]byte, streamSeq uint64, caughtUp bool) ([]Result, error) {
	return l.appendPrepared(ctx, &Prepared{raws: raws}, streamSeq, caughtUp)
}

func (l *Ledger) appendPrepared(ctx context.Context, p *Prepared, streamSeq uint64, caughtUp bool) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.broken != nil {
		return nil, l.broken
	}
	start := time.Now()
	raws := p.raws
	results := make([]Result, len(raws))
	reg := l.reg.Clone()
	if p.opened == nil {
		p = verifyAhead(reg, raws)
	}
	opened, verified := p.opened, p.verified
	var touched map[string]*scorecard.Card
	var updates map[string]*cardUpdate
	var fresh *unindexed
	var indexDue, merge bool // the indexes are due; written in this transaction
	var inParts bool         // the cards are flushed after the batch, in parts
	var headSeq, qHead uint64
	now := l.now()
	publish := caughtUp || now.Sub(l.lastPublish) >= publishEvery
	flush := publish && l.pending.due(now)
	err := l.commit(func(tx *bolt.Tx) error {
		appendOnly(tx)
		b := &batch{tx: tx, reg: reg, head: readHead(tx), now: now, cards: map[string]*scorecard.Card{}, cp: l.cp, ledger: l, opened: opened, verified: verified, leaves: p.leaves, tree: map[int64]tlog.Hash{},
			dirty: l.dirty, pending: l.pending.cards, publish: publish, flush: flush,
			recent: l.unindexed, fresh: newUnindexed()}
		touched, fresh = b.cards, b.fresh
		for i, raw := range raws {
			b.index = i
			r, err := b.appendOne(raw)
			if err != nil {
				return err
			}
			results[i] = r
		}
		if streamSeq != 0 {
			if err := tx.Bucket(bucketMeta).Put(keyStreamSeq, u64(streamSeq)); err != nil {
				return err
			}
		}
		if err := b.finish(); err != nil {
			return err
		}
		updates, headSeq, qHead = b.updates, b.head.seq, readQHead(tx)
		flush, inParts = b.flush, b.inParts
		waiting := len(l.unindexed.ids) + len(b.fresh.ids)
		indexDue = (flush || inParts) && caughtUp || waiting >= l.indexing.at
		if merge = indexDue && waiting <= l.indexing.inBatch; merge {
			return mergeIndexes(tx, l.absentIDs, headSeq, l.unindexed, b.fresh)
		}
		return nil
	}, func() {
		if publish {
			l.pending.committed(updates, flush, now)
		}
		if merge {
			l.unindexed.reset()
			return
		}
		l.unindexed.addAll(fresh)
	})
	if err != nil {
		rerr := l.forget(touched)
		if noSpace(err) {
			err = fmt.Errorf("ledger: append batch of %d: %w (nothing of the batch was stored): %w", len(raws), ErrNoSpace, err)
		} else {
			err = fmt.Errorf("ledger: append batch of %d: %w", len(raws), err)
		}
		err = errors.Join(err, rerr)
		l.setFailure(err)
		if fo, ok := l.obs.(FailureObserver); ok {
			fo.BatchFailed(len(raws), err)
		}
		return nil, err
	}
	l.setFailure(nil)
	if inParts {
		// Should a part fail, the cards stay pending, in memory and in
		// the log, and the next flush writes them all again.
		_ = l.flushInParts(headSeq, now)
	}
	if indexDue && !merge {
		// Too many for the batch's transaction. Should it fail, the
		// entries stay unindexed, in memory and in the log, and the next
		// batch tries again: nothing is lost.
		_ = l.indexAll(headSeq)
	}
	l.reg = reg
	l.regSnap.Store(reg)
	// Count the batch before waking its waiters: whoever waited for an
	// event then finds it in the metrics too.
	if l.obs != nil {
		l.obs.Batch(results, time.Since(start))
	}
	if !publish {
		for id, c := range touched {
			l.dirty[id] = c
		}
		l.unpublished = append(l.unpublished, results...)
		return results, nil
	}
	clear(l.dirty)
	l.lastPublish = now
	woken := append(l.unpublished, results...)
	l.unpublished = nil
	l.published.Store(headSeq)
	l.announcedQ.Store(qHead)
	l.notify(woken)
	return results, nil
}

// appendOnly tells bbolt that the log's buckets keyed by sequence number
// (entries, tree hashes, checkpoints) only ever grow at the end: a full page
// is then split full, not half full (bbolt's default, made for inserts
// anywhere), so those buckets take about half the pages.
func appendOnly(tx *bolt.Tx) {
	for _, name := range [][]byte{bucketEvents, bucketTree, bucketCheckpoints} {
		tx.Bucket(name).FillPercent = 0.95
	}
}

// ErrNoSpace means a batch failed to commit because the ledger file's disk
// (or the user's quota on it) is full. Nothing of the batch was stored; the
// same batch commits once space returns.
var ErrNoSpace = errors.New("ledger: no space left on the ledger's disk")

// noSpace says whether err is the file system running out of space. bbolt
// does not always wrap the system's error, so its text counts too.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error())
}

// FailureObserver is told about every batch that failed to commit, when
// the Options' Observer also implements it.
type FailureObserver interface {
	BatchFailed(n int, err error)
}

func (l *Ledger) setFailure(err error) {
	l.failMu.Lock()
	l.failure = err
	l.failMu.Unlock()
}

// AppendFailure is the error of the last Append if it failed, nil if it
// committed (or nothing was appended yet). A caller waiting for an event
// checks it to tell a ledger that cannot write (errors.Is(err, ErrNoSpace):
// its disk is full) from one that is merely busy.
func (l *Ledger) AppendFailure() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

func (b *batch) appendOne(raw []byte) (Result, error) {
	o := b.opened[b.index]
	if o == nil {
		_, err := envelope.Open(raw) // for the reason it does not decode
		return b.quarantine(raw, nil, err)
	}
	id := o.Event.EventId
	if seq, ok := findID(b.tx, b.ledger.absentIDs, id, b.fresh, b.recent); ok {
		stored, err := decodeEntry(seq, b.tx.Bucket(bucketEvents).Get(u64(seq)))
		if err != nil {
			return Result{}, err
		}
		if sha256.Sum256(stored.Envelope) != sha256.Sum256(raw) && !b.sameWrite(stored.Envelope, o) {
			return b.quarantine(raw, o, fmt.Errorf("%w: %s is already stored at seq %d", ErrIDReused, id, seq))
		}
		return Result{EventID: id, Seq: seq, Duplicate: true}, nil
	}
	if b.verified[b.index] && o.Event.SupplierId != "" {
		// Signature checked ahead against this key; the authority checks
		// still run here, in order, against the registry as it stands.
		if _, err := b.reg.KeyFor(o); err != nil {
			return b.quarantine(raw, o, err)
		}
	} else if err := b.reg.Check(o); err != nil {
		return b.quarantine(raw, o, err)
	}
	if at := o.OccurredAt(); at.After(b.now.Add(MaxClockSkew)) {
		return b.quarantine(raw, o, fmt.Errorf("%w: %s claims %s, ledger clock %s", ErrFutureEvent, id, at.Format(time.RFC3339), b.now.UTC().Format(time.RFC3339)))
	}
	seq := b.head.seq + 1
	at := b.now.UnixNano()
	hash := EntryHash(seq, at, b.head.hash, raw)
	if err := b.tx.Bucket(bucketEvents).Put(u64(seq), encodeEntry(at, b.head.hash, hash, raw)); err != nil {
		return Result{}, fmt.Errorf("put event seq %d: %w", seq, err)
	}
	b.fresh.add(id, o.Event.SupplierId, seq)
	if err := addLeaf(b.tx, seq, b.leaves[b.index], b.tree); err != nil {
		return Result{}, err
	}
	b.head = head{seq: seq, hash: hash}
	if o.Event.SupplierId == "" {
		b.reg.Apply(o, seq)
		b.regUp = true
		return Result{EventID: id, Seq: seq, Type: o.Event.Type.String()}, nil
	}
	if err := b.apply(seq, o); err != nil {
		return Result{}, err
	}
	return Result{EventID: id, Seq: seq, SupplierID: o.Event.SupplierId, Type: o.Event.Type.String()}, nil
}

// sameWrite says whether o is the stored event's write sent again: a
// service answering a retried request (same Idempotency-Key, so the same
// event id) seals the same event anew, at a new time, when it cannot tell
// whether the first attempt reached the stream. Same key, type, supplier
// and payload, validly signed: a duplicate, not a reuse of the id.
func (b *batch) sameWrite(storedRaw []byte, o *envelope.Opened) bool {
	s, err := envelope.Open(storedRaw)
	if err != nil {
		return false
	}
	if s.Event.KeyId != o.Event.KeyId || s.Event.Type != o.Event.Type || s.Event.SupplierId != o.Event.SupplierId || !bytes.Equal(s.Event.Payload, o.Event.Payload) {
		return false
	}
	if b.verified[b.index] {
		return true
	}
	a, ok := b.reg.Lookup(o.Event.KeyId)
	return ok && o.Verify(a.PublicKey) == nil
}

// apply applies an appended event to its supplier's card: the one this
// batch or an unpublished one changed, or else the card as published
// (pending or stored), read record by record.
func (b *batch) apply(seq uint64, o *envelope.Opened) error {
	id := o.Event.SupplierId
	if c, ok := b.dirty[id]; ok {
		b.cards[id] = c
	}
	v := b.ledger.view(b.tx, id, b.pending)
	if _, ok := b.cards[id]; !ok && v.whole != nil {
		// Stored whole (rebuilt): into records first, so that only the
		// records this and later events name are held.
		if err := v.toRecords(); err != nil {
			return err
		}
		if b.converted == nil {
			b.converted = map[string]bool{}
		}
		b.converted[id] = true
		v = b.ledger.view(b.tx, id, b.pending)
	}
	return applyPartial(b.cards, v, seq, o)
}

func (b *batch) quarantine(raw []byte, o *envelope.Opened, cause error) (Result, error) {
	digest := sha256.Sum256(raw)
	r := Result{Quarantined: true, Reason: cause.Error(), Code: reasonCode(cause)}
	if o != nil {
		r.EventID, r.SupplierID, r.Type = o.Event.EventId, o.Event.SupplierId, o.Event.Type.String()
	}
	if v := b.tx.Bucket(bucketQDigests).Get(digest[:]); v != nil {
		return r, nil // the same bad message again: kept once
	}
	meta := b.tx.Bucket(bucketMeta)
	var qseq uint64 = 1
	if v := meta.Get(keyQHead); len(v) == 8 {
		qseq = beUint64(v) + 1
	}
	rec := QuarantineRecord{Seq: qseq, Code: reasonCode(cause), Reason: cause.Error(), ReceivedAt: b.now.UTC(), Raw: raw}
	if o != nil {
		rec.EventID, rec.KeyID, rec.SupplierID, rec.Type = o.Event.EventId, o.Event.KeyId, o.Event.SupplierId, o.Event.Type.String()
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return Result{}, fmt.Errorf("encode quarantine record: %w", err)
	}
	if err := b.tx.Bucket(bucketQuarantine).Put(u64(qseq), v); err != nil {
		return Result{}, fmt.Errorf("put quarantine %d: %w", qseq, err)
	}
	if err := b.tx.Bucket(bucketQDigests).Put(digest[:], u64(qseq)); err != nil {
		return Result{}, err
	}
	if rec.EventID != "" {
		if err := b.tx.Bucket(bucketQEventIDs).Put([]byte(rec.EventID), u64(qseq)); err != nil {
			return Result{}, err
		}
	}
	return r, meta.Put(keyQHead, u64(qseq))
}

func (b *batch) finish() error {
	if b.publish {
		var err error
		if b.updates, err = b.ledger.publishCards(b.pending, b.tx, b.converted, b.dirty, b.cards); err != nil {
			return err
		}
		if b.flush && b.ledger.pending.size+updatesSize(b.updates) > b.ledger.partBytes() {
			b.flush, b.inParts = false, true
		}
		if b.flush {
			if err := b.ledger.writeCards(b.tx, b.head.seq, b.pending, b.updates); err != nil {
				return err
			}
		}
	}
	if b.regUp {
		for _, a := range b.reg.Keys() {
			v, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := b.tx.Bucket(bucketRegistry).Put([]byte(a.KeyID), v); err != nil {
				return err
			}
		}
	}
	h := make([]byte, 0, 40)
	h = append(h, u64(b.head.seq)...)
	h = append(h, b.head.hash[:]...)
	if err := b.tx.Bucket(bucketMeta).Put(keyHead, h); err != nil {
		return err
	}
	if b.publish && b.cp != nil {
		return signCheckpoint(b.tx, b.cp, b.head.seq, cardsDigestOver(b.tx, b.pending, b.updates))
	}
	return nil
}

func beUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func (l *Ledger) notify(results []Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	for _, r := range results {
		if r.EventID == "" {
			continue
		}
		for _, ch := range l.waiters[r.EventID] {
			ch <- r
		}
		delete(l.waiters, r.EventID)
	}
	close(l.updated)
	l.updated = make(chan struct{})
}

// Wait blocks until the event with the given id has been appended (or
// quarantined) and returns what became of it. It returns at once when that
// already happened.
func (l *Ledger) Wait(ctx context.Context, eventID string) (Result, error) {
	ch := make(chan Result, 1)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Result{}, ErrClosed
	}
	l.waiters[eventID] = append(l.waiters[eventID], ch)
	closed := l.updated
	l.mu.Unlock()
	defer l.dropWaiter(eventID, ch)

	// Answered from the file only once published: then the batch is
	// counted by the Observer and on the scorecards too.
	if r, qseq, ok, err := l.lookup(eventID); err != nil || (ok && (r.Quarantined && qseq <= l.announcedQ.Load() || !r.Quarantined && r.Seq <= l.published.Load())) {
		return r, err
	}
	for {
		select {
		case r := <-ch:
			return r, nil
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-closed:
			l.mu.Lock()
			isClosed := l.closed
			closed = l.updated
			l.mu.Unlock()
			if isClosed {
				return Result{}, ErrClosed
			}
		}
	}
}

func (l *Ledger) dropWaiter(eventID string, ch chan Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ws := l.waiters[eventID]
	for i, w := range ws {
		if w == ch {
			l.waiters[eventID] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(l.waiters[eventID]) == 0 {
		delete(l.waiters, eventID)
	}
}

// Lookup says what became of an event id: appended (with its seq),
// quarantined (with the reason), or not seen (ok false).
func (l *Ledger) Lookup(eventID string) (r Result, ok bool, err error) {
	r, _, ok, err = l.lookup(eventID)
	return r, ok, err
}

// lookup is Lookup, also giving a quarantined event's quarantine sequence.
func (l *Ledger) lookup(eventID string) (r Result, qseq uint64, ok bool, err error) {
	err = l.readIndexes(func(tx *bolt.Tx, un *unindexed) error {
		if seq, found := findID(tx, l.absentIDs, eventID, un); found {
			r, ok = Result{EventID: eventID, Seq: seq}, true
			return nil
		}
		if v := tx.Bucket(bucketQEventIDs).Get([]byte(eventID)); v != nil {
			var rec QuarantineRecord
			if err := json.Unmarshal(tx.Bucket(bucketQuarantine).Get(v), &rec); err != nil {
				return fmt.Errorf("quarantine %d: %w", beUint64(v), err)
			}
			r, qseq, ok = Result{EventID: eventID, Quarantined: true, Reason: rec.Reason}, beUint64(v), true
		}
		return nil
	})
	return r, qseq, ok, err
}

// readQHead is the sequence of the last quarantine record.
func readQHead(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyQHead); len(v) == 8 {
		return beUint64(v)
	}
	return 0
}

// storedQHead is readQHead of the last commit.
func (l *Ledger) storedQHead() uint64 {
	var q uint64
	_ = l.db.View(func(tx *bolt.Tx) error { q = readQHead(tx); return nil })
	return q
}

// verifyAhead decodes the batch's envelopes and checks, on every core and
// by batch verification, the signatures of those whose key is in force at
// the start of the batch.
// The ordered pass reuses the decodes, still checks authority in order, and
// re-checks any signature not marked here.
func verifyAhead(reg *keys.Registry, raws [][]byte) *Prepared {
	opened := make([]*envelope.Opened, len(raws))
	pubs := make([]ed25519.PublicKey, len(raws))
	for i, raw := range raws {
		o, err := envelope.Open(raw)
		if err != nil {
			continue
		}
		opened[i] = o
		if o.Event.SupplierId == "" {
			continue // registry changes are checked in order
		}
		if a, ok := reg.Lookup(o.Event.KeyId); ok {
			pubs[i] = a.PublicKey
		}
	}
	// One batch verification per core, over a contiguous share, and the
	// share's Merkle leaf hashes (SHA-256 over each envelope), which the
	// appender would otherwise compute in its sequential pass.
	verified := make([]bool, len(raws))
	leaves := make([]tlog.Hash, len(raws))
	workers := runtime.GOMAXPROCS(0)
	chunk := (len(raws) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(raws); lo += chunk {
		hi := min(lo+chunk, len(raws))
		wg.Add(1)
		go func() {
			defer wg.Done()
			copy(verified[lo:hi], envelope.VerifyAll(opened[lo:hi], pubs[lo:hi]))
			for i := lo; i < hi; i++ {
				leaves[i] = LeafHash(raws[i])
			}
		}()
	}
	wg.Wait()
	return &Prepared{raws: raws, opened: opened, verified: verified, leaves: leaves}
}
