package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/scorecard"
)

// Scorecards are stored record by record (doc.go): a supplier's frame,
// and each commitment, breach, plan, dispute and review at its position
// in its list, with an index from record ids to positions. Applying an
// event reads only the records it names (scorecard.ApplyFrom) and
// publishing a card writes only those back, so neither the work of an
// event nor the memory the ledger holds grows with a supplier's history
// or with the number of suppliers: no card is kept whole in memory.
//
// What a publication changed is not written to the file at once: the
// ledger keeps it in memory (pending: each card's changed frame, records
// and index entries, and the digest of the card they make), serves reads
// from it first, and writes it all in one publishing batch's transaction
// when flushEvery has gone by since the last flush, when it passes
// flushBytes (a bound on the memory it takes), and at Close. Every
// checkpoint still commits to every card as it stands at its size
// (stored digests overlaid by pending ones).
//
// meta "cards_seq" is the log position the stored cards reflect. After a
// crash the pending changes are gone but the log has every event: Open
// replays the entries after cards_seq (catchUp), so no projected state is
// lost and checkpoints continue from the right cards.
const (
	flushBytes = 64 << 20
	flushEvery = 2 * time.Second
)

var (
	bucketCardRecords = []byte("card_records")
	bucketCardIndex   = []byte("card_index")
	// bucketWholeCards held each card as one JSON value, as sal stored
	// scorecards before they were stored record by record. Open turns
	// such a file's cards into records (RebuildProjections) and drops it.
	bucketWholeCards = []byte("scorecards")

	keyCardsSeq = []byte("cards_seq")
)

// Key layout of the card buckets (doc.go). Every key starts with the
// supplier id and a zero byte, so a supplier's keys are together.
const (
	frameTag = 'f' // card_records: the frame
	openTag  = 'o' // card_index: open breaches against a commitment
)

func cardPrefix(id string, tag byte) []byte {
	k := make([]byte, 0, len(id)+2+40)
	k = append(k, id...)
	return append(k, 0, tag)
}

func recordKey(id string, k scorecard.Kind, pos int) []byte {
	return binary.BigEndian.AppendUint32(cardPrefix(id, byte(k)), uint32(pos))
}

func u32(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

func getU32(v []byte) (int, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: card index value of %d bytes", ErrBadEntry, len(v))
	}
	return int(binary.BigEndian.Uint32(v)), nil
}

// cardUpdate is what publishing a card writes: its frame, the records it
// read or added, the ids it added (kind byte and id; the first position
// of an id stays), the open breaches against each commitment it holds,
// and the digest of the card they make.
type cardUpdate struct {
	frame   []byte
	records map[recordAt][]byte
	index   map[string]int
	open    map[string]int
	digest  [32]byte
	size    int // bytes held, roughly
}

type recordAt struct {
	k   scorecard.Kind
	pos int
}

func newUpdate(w scorecard.Writes) *cardUpdate {
	u := &cardUpdate{frame: w.Frame, records: make(map[recordAt][]byte, len(w.Records)), index: make(map[string]int, len(w.Index)), open: w.Open, size: len(w.Frame)}
	for _, r := range w.Records {
		u.records[recordAt{r.Kind, r.Pos}] = r.JSON
		u.size += len(r.JSON) + 16
	}
	for _, e := range w.Index {
		if _, ok := u.index[string(e.Kind)+e.ID]; !ok {
			u.index[string(e.Kind)+e.ID] = e.Pos
			u.size += len(e.ID) + 16
		}
	}
	u.size += 24 * len(w.Open)
	return u
}

// merge folds a later update v of the same card into u.
func (u *cardUpdate) merge(v *cardUpdate) {
	u.size += len(v.frame) - len(u.frame)
	u.frame, u.digest = v.frame, v.digest
	for at, b := range v.records {
		u.size += len(b) - len(u.records[at])
		u.records[at] = b
	}
	for k, pos := range v.index {
		if _, ok := u.index[k]; !ok {
			u.index[k] = pos
			u.size += len(k) + 16
		}
	}
	for id, n := range v.open {
		if _, ok := u.open[id]; !ok {
			u.size += 24
		}
		u.open[id] = n
	}
}

// cardView reads one supplier's card as stored in tx (none if nil),
// overlaid by updates not yet written, newest first. It is the Store
// partial cards read from.
type cardView struct {
	id     string
	tx     *bolt.Tx
	layers []*cardUpdate
}

var _ scorecard.Store = cardView{}

// viewOf is the view of a supplier's card in tx under the given sets of
// updates, newest first.
func viewOf(tx *bolt.Tx, id string, sets ...map[string]*cardUpdate) cardView {
	v := cardView{id: id, tx: tx}
	for _, s := range sets {
		if u, ok := s[id]; ok {
			v.layers = append(v.layers, u)
		}
	}
	return v
}

func (v cardView) get(bucket []byte, key []byte) []byte {
	if v.tx == nil {
		return nil
	}
	return v.tx.Bucket(bucket).Get(key)
}

// frame is the card's frame, ok false if the supplier has no card.
func (v cardView) frame() (f scorecard.Frame, ok bool, err error) {
	b := v.get(bucketCardRecords, cardPrefix(v.id, frameTag))
	if len(v.layers) > 0 {
		b = v.layers[0].frame
	}
	if b == nil {
		return scorecard.Frame{SupplierID: v.id}, false, nil
	}
	f, err = scorecard.DecodeFrame(b)
	if err != nil {
		return f, false, fmt.Errorf("supplier %s: %w", v.id, err)
	}
	return f, true, nil
}

// partial is the card as a partial card, new if the supplier has none.
func (v cardView) partial() (*scorecard.Card, error) {
	f, _, err := v.frame()
	if err != nil {
		return nil, err
	}
	return scorecard.NewPartial(f), nil
}

func (v cardView) Position(k scorecard.Kind, id string) (int, bool, error) {
	key := string(k) + id
	for _, u := range v.layers {
		if pos, ok := u.index[key]; ok {
			return pos, true, nil
		}
	}
	b := v.get(bucketCardIndex, append(cardPrefix(v.id, byte(k)), id...))
	if b == nil {
		return 0, false, nil
	}
	pos, err := getU32(b)
	return pos, err == nil, err
}

func (v cardView) Record(k scorecard.Kind, pos int) ([]byte, error) {
	for _, u := range v.layers {
		if b, ok := u.records[recordAt{k, pos}]; ok {
			return b, nil
		}
	}
	if b := v.get(bucketCardRecords, recordKey(v.id, k, pos)); b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w: supplier %s has no %c record %d", ErrBadEntry, v.id, k, pos)
}

func (v cardView) OpenBreaches(commitmentID string) (int, error) {
	for _, u := range v.layers {
		if n, ok := u.open[commitmentID]; ok {
			return n, nil
		}
	}
	b := v.get(bucketCardIndex, append(cardPrefix(v.id, openTag), commitmentID...))
	if b == nil {
		return 0, nil
	}
	return getU32(b)
}

// each calls fn with the JSON of the first n records of section k, in
// order: stored ones read in order with a cursor, overlaid ones in their
// place.
func (v cardView) each(k scorecard.Kind, n int, fn func([]byte) error) error {
	var cur *bolt.Cursor
	var ck, cv []byte
	prefix := cardPrefix(v.id, byte(k))
	if v.tx != nil {
		cur = v.tx.Bucket(bucketCardRecords).Cursor()
		ck, cv = cur.Seek(prefix)
	}
	for pos := 0; pos < n; pos++ {
		for ck != nil && bytes.HasPrefix(ck, prefix) && len(ck) == len(prefix)+4 && int(binary.BigEndian.Uint32(ck[len(prefix):])) < pos {
			ck, cv = cur.Next()
		}
		b, found := v.overlaid(k, pos)
		if !found && ck != nil && len(ck) == len(prefix)+4 && bytes.HasPrefix(ck, prefix) && int(binary.BigEndian.Uint32(ck[len(prefix):])) == pos {
			b, found = cv, true
		}
		if !found {
			return fmt.Errorf("%w: supplier %s has no %c record %d of %d", ErrBadEntry, v.id, k, pos, n)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

func (v cardView) overlaid(k scorecard.Kind, pos int) ([]byte, bool) {
	for _, u := range v.layers {
		if b, ok := u.records[recordAt{k, pos}]; ok {
			return b, true
		}
	}
	return nil, false
}

// assemble writes the card's JSON to w; ok false if it has none.
func (v cardView) assemble(w io.Writer) (ok bool, err error) {
	f, ok, err := v.frame()
	if err != nil || !ok {
		return false, err
	}
	return true, scorecard.Assemble(w, f, v.each)
}

// digest is the SHA-256 of the card's JSON.
func (v cardView) digest() ([32]byte, error) {
	h := sha256.New()
	if _, err := v.assemble(h); err != nil {
		return [32]byte{}, err
	}
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}

// pendingCards are the cards' changes published since the last flush.
// Only the appender (holding appendMu) changes them, under mu; readers
// take mu for reading.
type pendingCards struct {
	mu        sync.RWMutex
	cards     map[string]*cardUpdate
	size      int
	lastFlush time.Time
}

// due says whether the batch about to commit should flush.
func (p *pendingCards) due(now time.Time) bool {
	return p.size >= flushBytes || now.Sub(p.lastFlush) >= flushEvery
}

// committed records the updates of a committed batch: written to the file
// when flushed, otherwise kept pending. The caller holds mu.
func (p *pendingCards) committed(updates map[string]*cardUpdate, flushed bool, now time.Time) {
	if flushed {
		p.reset(now)
		return
	}
	for id, u := range updates {
		if old, ok := p.cards[id]; ok {
			before := old.size
			old.merge(u)
			p.size += old.size - before
			continue
		}
		p.cards[id] = u
		p.size += u.size
	}
}

// reset empties the pending cards after they were written (or replaced).
// The caller holds mu, or is the only goroutine using the ledger.
func (p *pendingCards) reset(now time.Time) {
	clear(p.cards)
	p.size = 0
	p.lastFlush = now
}

// commit runs fn in a write transaction and commits it holding the
// pending cards' lock, calling then (which updates the pending cards)
// before any reader can look: a reader sees the stored and the pending
// cards of the same commit, so an event it finds in the log is on its
// card.
func (l *Ledger) commit(fn func(*bolt.Tx) error, then func()) error {
	tx, err := l.db.Begin(true)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	l.pending.mu.Lock()
	defer l.pending.mu.Unlock()
	if err := tx.Commit(); err != nil {
		return err
	}
	then()
	return nil
}

// readCards runs fn with the pending cards held still: fn sees them and
// the stored cards of the same commit.
func (l *Ledger) readCards(fn func(pending map[string]*cardUpdate, tx *bolt.Tx) error) error {
	if l.projErr != nil {
		return l.projErr
	}
	l.pending.mu.RLock()
	defer l.pending.mu.RUnlock()
	return l.db.View(func(tx *bolt.Tx) error { return fn(l.pending.cards, tx) })
}

// cardBuckets are the buckets a card is written to.
type cardBuckets struct{ records, index, digests *bolt.Bucket }

func topCardBuckets(tx *bolt.Tx) cardBuckets {
	return cardBuckets{tx.Bucket(bucketCardRecords), tx.Bucket(bucketCardIndex), tx.Bucket(bucketCardDigests)}
}

// put writes the updates of sets (older first) to the buckets.
func (cb cardBuckets) put(sets ...map[string]*cardUpdate) error {
	for _, set := range sets {
		for id, u := range set {
			if err := cb.putOne(id, u); err != nil {
				return fmt.Errorf("put scorecard %s: %w", id, err)
			}
		}
	}
	return nil
}

func (cb cardBuckets) putOne(id string, u *cardUpdate) error {
	if err := cb.records.Put(cardPrefix(id, frameTag), u.frame); err != nil {
		return err
	}
	for at, b := range u.records {
		if err := cb.records.Put(recordKey(id, at.k, at.pos), b); err != nil {
			return err
		}
	}
	for k, pos := range u.index {
		key := append(cardPrefix(id, k[0]), k[1:]...)
		if cb.index.Get(key) == nil {
			if err := cb.index.Put(key, u32(pos)); err != nil {
				return err
			}
		}
	}
	for cm, n := range u.open {
		if err := cb.index.Put(append(cardPrefix(id, openTag), cm...), u32(n)); err != nil {
			return err
		}
	}
	return cb.digests.Put([]byte(id), u.digest[:])
}

// writeCards stores card updates (older sets first) and records that the
// stored cards now reflect the log up to seq.
func writeCards(tx *bolt.Tx, seq uint64, sets ...map[string]*cardUpdate) error {
	if err := topCardBuckets(tx).put(sets...); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyCardsSeq, u64(seq))
}

// cardsDigestOver is the checkpoints' scorecards digest over the stored
// card digests overlaid by newer ones (later sets win).
func cardsDigestOver(tx *bolt.Tx, overlays ...map[string]*cardUpdate) [32]byte {
	m := map[string][32]byte{}
	_ = tx.Bucket(bucketCardDigests).ForEach(func(k, v []byte) error {
		var s [32]byte
		copy(s[:], v)
		m[string(k)] = s
		return nil
	})
	for _, o := range overlays {
		for id, u := range o {
			m[id] = u.digest
		}
	}
	return CardsDigest(m)
}

// publishCards turns the cards changed since the last publication (the
// union of the sets) into updates, each with the digest of the card as it
// then stands: the stored card overlaid by older (pending) updates and
// its own. Cards are independent: every core takes a share, each reading
// the last commit in a read transaction of its own.
func (l *Ledger) publishCards(older map[string]*cardUpdate, sets ...map[string]*scorecard.Card) (map[string]*cardUpdate, error) {
	all := map[string]*scorecard.Card{}
	for _, set := range sets {
		for id, c := range set {
			all[id] = c
		}
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	m := make(map[string]*cardUpdate, len(ids))
	if len(ids) == 0 {
		return m, nil
	}
	out := make([]*cardUpdate, len(ids))
	workers := min(runtime.GOMAXPROCS(0), max(len(ids)/8, 1))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = l.db.View(func(tx *bolt.Tx) error {
				for i := w; i < len(ids); i += workers {
					wr, err := all[ids[i]].Writes()
					if err != nil {
						return err
					}
					u := newUpdate(wr)
					v := viewOf(tx, ids[i], older)
					v.layers = append([]*cardUpdate{u}, v.layers...)
					if u.digest, err = v.digest(); err != nil {
						return err
					}
					out[i] = u
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, id := range ids {
		m[id] = out[i]
	}
	return m, nil
}

// catchUp brings the projection up to the log's head after a stop that
// left pending cards unwritten: it replays the entries after cards_seq.
// A writable ledger stores the result; a read-only one keeps it pending.
func (l *Ledger) catchUp(readOnly bool) error {
	var from, to uint64
	var legacy bool
	err := l.db.View(func(tx *bolt.Tx) error {
		to = readHead(tx).seq
		v := tx.Bucket(bucketMeta).Get(keyCardsSeq)
		if len(v) != 8 {
			// Written before cards were flushed in bulk: every batch
			// stored its cards, so they reflect the head.
			legacy = true
			from = to
			return nil
		}
		from = beUint64(v)
		return nil
	})
	if err != nil {
		return err
	}
	if from > to {
		// The log was cut short behind the ledger's back: nothing to
		// replay. Verification reports it; opening must not hide it.
		l.pending.reset(l.now())
		l.published.Store(to)
		return nil
	}
	cards := map[string]*scorecard.Card{}
	for seq := from + 1; seq <= to; {
		err := l.db.View(func(tx *bolt.Tx) error {
			cur := tx.Bucket(bucketEvents).Cursor()
			n := 0
			for k, v := cur.Seek(u64(seq)); k != nil && seq <= to && n < pageSize; k, v = cur.Next() {
				if got := beUint64(k); got != seq {
					return &ChainError{Seq: seq, Err: fmt.Errorf("%w: entry missing, next is %d", ErrChainBroken, got)}
				}
				env, err := entryEnvelope(seq, v)
				if err != nil {
					return &ChainError{Seq: seq, Err: err}
				}
				o, err := envelope.Open(env)
				if err != nil {
					return &ChainError{Seq: seq, Err: err}
				}
				if err := applyPartial(cards, viewOf(tx, o.Event.SupplierId), seq, o); err != nil {
					return err
				}
				seq, n = seq+1, n+1
			}
			if n == 0 {
				return &ChainError{Seq: seq, Err: fmt.Errorf("%w: log ends at %d, head says %d", ErrChainBroken, seq-1, to)}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	updates, err := l.publishCards(nil, cards)
	if err != nil {
		return err
	}
	now := l.now()
	l.pending.reset(now)
	l.published.Store(to)
	l.lastPublish = now
	if readOnly {
		l.pending.committed(updates, false, now)
		return nil
	}
	var cpSize uint64
	if err := l.db.View(func(tx *bolt.Tx) error {
		cpSize = beUint64(tx.Bucket(bucketMeta).Get(keyCheckpointSize))
		return nil
	}); err != nil {
		return err
	}
	if len(updates) == 0 && !legacy && (l.cp == nil || cpSize == to) {
		return nil
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		if err := writeCards(tx, to, updates); err != nil {
			return err
		}
		if l.cp == nil {
			return nil
		}
		// Batches committed but not yet published when the ledger
		// stopped have no checkpoint: sign one at the head.
		return signCheckpoint(tx, l.cp, to, cardsDigestOver(tx))
	})
	if err != nil {
		return fmt.Errorf("ledger: bring scorecards up to seq %d: %w", to, err)
	}
	return nil
}

// applyPartial applies an opened entry to its supplier's card in cards,
// the card read from v (v names the entry's supplier) the first time.
// Entries without a supplier (registry changes) are on no card.
func applyPartial(cards map[string]*scorecard.Card, v cardView, seq uint64, o *envelope.Opened) error {
	if v.id == "" {
		return nil
	}
	c, ok := cards[v.id]
	if !ok {
		var err error
		if c, err = v.partial(); err != nil {
			return err
		}
		cards[v.id] = c
	}
	if err := scorecard.ApplyFrom(c, v, seq, o.Event, o.Payload); err != nil {
		return fmt.Errorf("seq %d: %w", seq, err)
	}
	return nil
}

// mergeIDs adds the pending cards' supplier ids to the stored ones
// (sorted), keeping the order.
func mergeIDs(stored []string, pending map[string]*cardUpdate) []string {
	var extra []string
	for id := range pending {
		i := sort.SearchStrings(stored, id)
		if i == len(stored) || stored[i] != id {
			extra = append(extra, id)
		}
	}
	if len(extra) == 0 {
		return stored
	}
	out := append(stored, extra...)
	sort.Strings(out)
	return out
}
