package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/scorecard"
)

// pageSize bounds how many entries one read transaction visits during long
// scans, so no read transaction stays open for long.
const pageSize = 2048

// Scorecard returns the stored projection of one supplier, as JSON.
func (l *Ledger) Scorecard(supplierID string) ([]byte, error) {
	var buf bytes.Buffer
	err := l.readCards(func(pending map[string]*cardUpdate, tx *bolt.Tx) error {
		ok, err := l.view(tx, supplierID, pending).assemble(&buf)
		if err == nil && !ok {
			err = fmt.Errorf("%w: scorecard of supplier %q", ErrNotFound, supplierID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Card returns the decoded scorecard of one supplier.
func (l *Ledger) Card(supplierID string) (*scorecard.Card, error) {
	b, err := l.Scorecard(supplierID)
	if err != nil {
		return nil, err
	}
	return scorecard.Decode(b)
}

// Suppliers lists the ids of every supplier with a scorecard, in order.
func (l *Ledger) Suppliers() ([]string, error) {
	var ids []string
	err := l.readCards(func(pending map[string]*cardUpdate, tx *bolt.Tx) error {
		err := tx.Bucket(bucketCardDigests).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
		ids = mergeIDs(ids, pending)
		return err
	})
	return ids, err
}

// Entries returns up to limit entries starting at sequence from.
func (l *Ledger) Entries(from uint64, limit int) ([]Entry, error) {
	if from == 0 {
		from = 1
	}
	var out []Entry
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(from)); k != nil && len(out) < limit; k, v = c.Next() {
			e, err := decodeEntry(beUint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Scan calls fn for every entry from sequence 1 to the head at the time of
// the call, paging through the log in short read transactions.
func (l *Ledger) Scan(ctx context.Context, fn func(Entry) error) error {
	last, _, err := l.Head()
	if err != nil {
		return err
	}
	for from := uint64(1); from <= last; {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := l.Entries(from, pageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return &ChainError{Seq: from, Err: fmt.Errorf("%w: log ends at %d, head says %d", ErrChainBroken, from-1, last)}
		}
		for _, e := range page {
			if e.Seq > last {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		from = page[len(page)-1].Seq + 1
	}
	return nil
}

// Quarantine returns up to limit quarantine records starting at from.
func (l *Ledger) Quarantine(from uint64, limit int) ([]QuarantineRecord, error) {
	if from == 0 {
		from = 1
	}
	var out []QuarantineRecord
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQuarantine).Cursor()
		for k, v := c.Seek(u64(from)); k != nil && len(out) < limit; k, v = c.Next() {
			var rec QuarantineRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("quarantine %d: %w", beUint64(k), err)
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// ChainError locates the first entry where verification failed.
type ChainError struct {
	Seq uint64
	Err error
}

func (e *ChainError) Error() string { return fmt.Sprintf("ledger: seq %d: %v", e.Seq, e.Err) }
func (e *ChainError) Unwrap() error { return e.Err }

// Verify walks the whole log: every sequence number present and in order,
// every entry hash recomputed and chained, every signature checked against
// the registry as it stood at that entry (rebuilt from the log, trusting only
// the root key this file was opened with). It returns the number of entries
// checked, or a *ChainError naming the first bad one.
func (l *Ledger) Verify(ctx context.Context) (uint64, error) {
	reg := keys.NewRegistry(l.rootKey())
	var prev [32]byte
	var want uint64 = 1
	err := l.Scan(ctx, func(e Entry) error {
		if e.Seq != want {
			return &ChainError{Seq: want, Err: fmt.Errorf("%w: entry missing, next is %d", ErrChainBroken, e.Seq)}
		}
		if e.PrevHash != prev {
			return &ChainError{Seq: e.Seq, Err: fmt.Errorf("%w: previous hash does not match entry %d", ErrChainBroken, e.Seq-1)}
		}
		if EntryHash(e.Seq, e.AppendedAt.UnixNano(), e.PrevHash, e.Envelope) != e.Hash {
			return &ChainError{Seq: e.Seq, Err: fmt.Errorf("%w: entry hash does not match its content", ErrChainBroken)}
		}
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			return &ChainError{Seq: e.Seq, Err: err}
		}
		if err := reg.Check(o); err != nil {
			return &ChainError{Seq: e.Seq, Err: err}
		}
		reg.Apply(o, e.Seq)
		prev = e.Hash
		want++
		return nil
	})
	if err != nil {
		return want - 1, err
	}
	_, headHash, err := l.Head()
	if err != nil {
		return want - 1, err
	}
	if headHash != prev {
		return want - 1, &ChainError{Seq: want - 1, Err: fmt.Errorf("%w: head hash does not match the last entry", ErrChainBroken)}
	}
	return want - 1, nil
}

func (l *Ledger) rootKey() []byte {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.reg.Root()
}

// Project folds entries (in log order) into fresh scorecards, the same way
// Append does. It does not re-verify signatures: the log holds only what
// was verified when it was appended (Verify checks that separately).
func Project(cards map[string]*scorecard.Card, e Entry) error {
	o, err := envelope.Open(e.Envelope)
	if err != nil {
		return &ChainError{Seq: e.Seq, Err: err}
	}
	ProjectOpened(cards, e.Seq, o)
	return nil
}

// ProjectOpened is Project for an envelope already opened.
func ProjectOpened(cards map[string]*scorecard.Card, seq uint64, o *envelope.Opened) {
	if o.Event.SupplierId == "" {
		return
	}
	c, ok := cards[o.Event.SupplierId]
	if !ok {
		c = scorecard.New(o.Event.SupplierId)
		cards[o.Event.SupplierId] = c
	}
	scorecard.Apply(c, seq, o.Event, o.Payload)
}

// RebuildProjections deletes the scorecards and recomputes them from the
// log, up to its head. Appends wait while it runs.
//
// Cards are independent of one another, so every core rebuilds whole
// cards, a supplier at a time: it reads the supplier's entries through the
// supplier_events index (brought up to date first, see ids.go),
// applies them in log order and encodes the card. Only the cards being
// rebuilt are held decoded, and only rebuildChunk bytes of encoded cards
// wait to be written: they go, a chunk per transaction, into a staging
// bucket (rebuild) beside the old cards, and the last transaction moves
// the staged buckets in place of the old ones. A reader sees the old
// cards or the new ones, never a mix; a rebuild cut short leaves only
// the staging bucket, which the next rebuild or Open drops.
func (l *Ledger) RebuildProjections(ctx context.Context) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	head, _, err := l.Head()
	if err != nil {
		return fmt.Errorf("ledger: rebuild: %w", err)
	}
	// The replay reads every supplier's entries through supplier_events.
	if err := l.indexAll(head); err != nil {
		return fmt.Errorf("ledger: rebuild: index the entries: %w", err)
	}
	ids, err := l.indexedSuppliers()
	if err != nil {
		return fmt.Errorf("ledger: rebuild: %w", err)
	}
	if err := l.db.Update(func(tx *bolt.Tx) error {
		if err := dropStaging(tx); err != nil {
			return err
		}
		st, err := tx.CreateBucket(bucketRebuild)
		if err != nil {
			return err
		}
		for _, b := range cardBucketNames() {
			if _, err := st.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("ledger: rebuild: staging: %w", err)
	}
	if err := l.rebuildCards(ctx, ids, head); err != nil {
		if derr := l.db.Update(dropStaging); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop staging: %w", derr))
		}
		return fmt.Errorf("ledger: rebuild: %w", err)
	}
	now := l.now()
	err = l.commit(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketRebuild)
		for _, b := range cardBucketNames() {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return fmt.Errorf("ledger: rebuild: drop %s: %w", b, err)
			}
			if err := tx.MoveBucket(b, st, nil); err != nil {
				return fmt.Errorf("ledger: rebuild: move %s in place: %w", b, err)
			}
		}
		if err := tx.DeleteBucket(bucketRebuild); err != nil {
			return fmt.Errorf("ledger: rebuild: drop staging: %w", err)
		}
		if err := tx.Bucket(bucketMeta).Put(keyCardsFormat, []byte(fmt.Sprint(CardsFormat))); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyCardsSeq, u64(head))
	}, func() { l.pending.reset(now) })
	if err != nil {
		return err
	}
	// Everything stored is now on the scorecards: published (the next
	// publication or Close signs the checkpoint at the head).
	clear(l.dirty)
	woken := l.unpublished
	l.unpublished = nil
	l.published.Store(head)
	l.announcedQ.Store(l.storedQHead())
	l.notify(woken)
	return nil
}

// bucketRebuild stages the card buckets a rebuild writes.
var bucketRebuild = []byte("rebuild")

// cardBucketNames are the buckets that hold the scorecards.
func cardBucketNames() [][]byte {
	return [][]byte{bucketWholeCards, bucketCardRecords, bucketCardDigests, bucketCardSections}
}

// rebuildChunk bounds the encoded cards a rebuild holds before writing
// them to the staging bucket.
const rebuildChunk = 32 << 20

// dropStaging deletes what a rebuild staged, if anything.
func dropStaging(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(bucketRebuild); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("drop %s: %w", bucketRebuild, err)
	}
	return nil
}

// rebuildCards rebuilds the cards of ids on every core and writes them to
// the staging bucket, a transaction per rebuildChunk bytes of cards
// (l.rebuildChunk if set). The last chunk has a transaction of its own
// too: bbolt (v1.5.0) loses what a transaction put in a bucket if the same
// transaction then moves it, so the swap only moves.
func (l *Ledger) rebuildCards(ctx context.Context, ids []string, head uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	type built struct {
		id   string
		card *cardUpdate
		err  error
	}
	// Room for cards built while the collector hands a chunk over (64
	// long histories are about 4 MiB). BenchmarkRebuild, 200,000 events:
	// 416k-484k events/s with room for four and chunks written by the
	// collector itself, 496k-520k with room for 64, 525k-540k with the
	// writer of its own below.
	results := make(chan built, 64)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(ids) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				c, err := l.rebuildCard(ids[i], head)
				select {
				case results <- built{ids[i], c, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer func() {
		cancel() // no worker is left blocked on results
		wg.Wait()
	}()
	limit := l.rebuildChunk
	if limit <= 0 {
		limit = rebuildChunk
	}
	// A writer stages each full chunk while the next one fills, so the
	// cores go on building cards while a chunk goes to disk.
	chunks := make(chan map[string]*cardUpdate, 1)
	written := make(chan error, 1)
	go func() {
		var err error
		for chunk := range chunks {
			if err != nil {
				continue // drain: the collector stops at the next send
			}
			err = l.db.Update(func(tx *bolt.Tx) error {
				st := tx.Bucket(bucketRebuild)
				return cardBuckets{st.Bucket(bucketWholeCards), st.Bucket(bucketCardRecords), st.Bucket(bucketCardDigests), st.Bucket(bucketCardSections), l.mappedTick, l.absentRecords}.put(chunk)
			})
			if err != nil {
				err = fmt.Errorf("write staged scorecards: %w", err)
				cancel()
			} else if l.rebuildStaged != nil {
				l.rebuildStaged()
			}
		}
		written <- err
	}()
	collect := func() error {
		chunk, size := map[string]*cardUpdate{}, 0
		for range ids {
			var r built
			select {
			case r = <-results:
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.err != nil {
				return r.err
			}
			chunk[r.id] = r.card
			if size += r.card.size; size >= limit {
				select {
				case chunks <- chunk:
				case <-ctx.Done():
					return ctx.Err()
				}
				chunk, size = map[string]*cardUpdate{}, 0
			}
		}
		if len(chunk) > 0 {
			chunks <- chunk // the writer is receiving: never blocks for long
		}
		return nil
	}
	err := collect()
	close(chunks)
	// The writer's error first: it is why the context was cancelled.
	if werr := <-written; werr != nil {
		return werr
	}
	return err
}

// indexedSuppliers lists, in order, every supplier with an entry in the
// supplier_events index, stepping from one supplier's keys to the next.
func (l *Ledger) indexedSuppliers() ([]string, error) {
	var ids []string
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSupplierEvents).Cursor()
		for k, _ := c.First(); k != nil; {
			n := bytes.IndexByte(k, 0)
			if n < 0 || len(k) != n+9 {
				return fmt.Errorf("%w: supplier_events key %q", ErrBadEntry, k)
			}
			ids = append(ids, string(k[:n]))
			// The next supplier's keys start after every "<id>\x00…".
			k, _ = c.Seek(append(bytes.Clone(k[:n]), 1))
		}
		return nil
	})
	return ids, err
}

// rebuildCard replays one supplier's entries up to head onto a new card
// and encodes it whole. It reads in short transactions of pageSize
// entries.
func (l *Ledger) rebuildCard(id string, head uint64) (*cardUpdate, error) {
	c := scorecard.New(id)
	var op envelope.Opener // Apply copies what it keeps
	prefix := append([]byte(id), 0)
	for from := uint64(1); from <= head; {
		n := 0
		err := l.db.View(func(tx *bolt.Tx) error {
			cur := tx.Bucket(bucketSupplierEvents).Cursor()
			events := tx.Bucket(bucketEvents)
			for k, _ := cur.Seek(supplierEventKey(id, from)); k != nil && bytes.HasPrefix(k, prefix) && n < pageSize; k, _ = cur.Next() {
				seq := beUint64(k[len(prefix):])
				if seq > head {
					return nil // n < pageSize: the last page
				}
				l.mappedTick()
				env, err := entryEnvelope(seq, events.Get(k[len(prefix):]))
				if err != nil {
					return &ChainError{Seq: seq, Err: err}
				}
				o, err := op.Open(env)
				if err != nil {
					return &ChainError{Seq: seq, Err: err}
				}
				if o.Event.SupplierId != id {
					return &ChainError{Seq: seq, Err: fmt.Errorf("%w: indexed under supplier %s, names %q", ErrBadEntry, id, o.Event.SupplierId)}
				}
				scorecard.Apply(c, seq, o.Event, o.Payload)
				from, n = seq+1, n+1
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("supplier %s: %w", id, err)
		}
		if n < pageSize {
			break
		}
	}
	b, err := scorecard.Encode(c)
	if err != nil {
		return nil, err
	}
	d, err := scorecard.Hash(c)
	if err != nil {
		return nil, err
	}
	return &cardUpdate{whole: b, digest: d, size: len(b)}, nil
}

var bucketSupplierEvents = []byte("supplier_events")

func supplierEventKey(supplierID string, seq uint64) []byte {
	k := make([]byte, 0, len(supplierID)+9)
	k = append(k, supplierID...)
	k = append(k, 0)
	return append(k, u64(seq)...)
}

// SupplierEntries returns up to limit of a supplier's entries with sequence
// numbers at most before (0: no bound), newest first.
func (l *Ledger) SupplierEntries(supplierID string, before uint64, limit int) ([]Entry, error) {
	var out []Entry
	err := l.readIndexes(func(tx *bolt.Tx, un *unindexed) error {
		events := tx.Bucket(bucketEvents)
		add := func(seq uint64) error {
			e, err := decodeEntry(seq, events.Get(u64(seq)))
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		}
		// The newest are those not yet indexed.
		recent := un.suppliers[supplierID]
		for i := len(recent) - 1; i >= 0 && len(out) < limit; i-- {
			if before != 0 && recent[i] > before {
				continue
			}
			if err := add(recent[i]); err != nil {
				return err
			}
		}
		prefix := append([]byte(supplierID), 0)
		c := tx.Bucket(bucketSupplierEvents).Cursor()
		var k []byte
		if before == 0 {
			k, _ = c.Seek(append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
		} else {
			k, _ = c.Seek(supplierEventKey(supplierID, before+1))
		}
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		covered := indexedSeq(tx)
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8 && len(out) < limit; k, _ = c.Prev() {
			seq := beUint64(k[len(prefix):])
			if seq > covered {
				continue // also unindexed, listed above (indexAll)
			}
			if err := add(seq); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// SupplierSeqs returns every sequence number of a supplier's entries, in
// order, up to size (0: all).
func (l *Ledger) SupplierSeqs(supplierID string, size uint64) ([]uint64, error) {
	var out []uint64
	err := l.readIndexes(func(tx *bolt.Tx, un *unindexed) error {
		out = supplierSeqs(tx, un, supplierID, 1, size)
		return nil
	})
	return out, err
}

// supplierSeqs are the sequence numbers of a supplier's entries from from
// up to size (0: all), in order: indexed in the bucket (up to indexed_seq),
// then those in un.
func supplierSeqs(tx *bolt.Tx, un *unindexed, supplierID string, from, size uint64) []uint64 {
	var out []uint64
	prefix := append([]byte(supplierID), 0)
	covered := indexedSeq(tx)
	c := tx.Bucket(bucketSupplierEvents).Cursor()
	for k, _ := c.Seek(supplierEventKey(supplierID, from)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+8 {
			continue
		}
		seq := beUint64(k[len(prefix):])
		if size != 0 && seq > size {
			return out
		}
		if seq > covered {
			break // also unindexed, in un (indexAll)
		}
		out = append(out, seq)
	}
	for _, seq := range un.suppliers[supplierID] {
		if size != 0 && seq > size {
			break
		}
		if seq >= from {
			out = append(out, seq)
		}
	}
	return out
}

// SizeAt is the number of entries appended at or before t (appended times
// never decrease along the log).
func (l *Ledger) SizeAt(t time.Time) (uint64, error) {
	head, _, err := l.Head()
	if err != nil {
		return 0, err
	}
	lo, hi := uint64(0), head // invariant: entry lo (if any) is at or before t; entries after hi are after t
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		es, err := l.Entries(mid, 1)
		if err != nil {
			return 0, err
		}
		if len(es) == 0 {
			return 0, fmt.Errorf("%w: entry %d missing", ErrChainBroken, mid)
		}
		if es[0].AppendedAt.After(t) {
			hi = mid - 1
		} else {
			lo = mid
		}
	}
	return lo, nil
}

// EntriesAt returns the entries with the given sequence numbers.
func (l *Ledger) EntriesAt(seqs []uint64) ([]Entry, error) {
	out := make([]Entry, 0, len(seqs))
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		for _, s := range seqs {
			e, err := decodeEntry(s, b.Get(u64(s)))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
