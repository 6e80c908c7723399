package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/scorecard"
)

// Scorecards are stored record by record (doc.go): a supplier's frame,
// and each commitment, breach, plan, dispute and review by id, with its
// position in its list. Applying an event reads only the records it
// names (scorecard.ApplyFrom) and publishing a card writes only those
// back, so neither the work of an event nor the memory the ledger holds
// grows with a supplier's history or with the number of suppliers: no
// card is kept whole in memory.
//
// RebuildProjections writes each card whole instead (bucket scorecards:
// one value per card, as sal stored every card before), which is many
// times faster than a key per record; a card stored whole is turned into
// records the first time an event comes for it (toRecords). Both forms
// give the same JSON, so a card's digest does not change with its form.
//
// What a publication changed is not written to the file at once: the
// ledger keeps it in memory (pending: each card's changed frame and
// records, the holders of its new assessments, and the digest of the
// card they make), serves reads from it first, and writes it all in one
// publishing batch's transaction when it passes flushBytes (a bound on
// the memory it takes), when flushEvery has gone by since the last flush
// (so that a quiet ledger writes what it holds soon), and at Close. Every
// checkpoint still commits to every card as it stands at its size
// (stored digests overlaid by pending ones).
//
// meta "cards_seq" is the log position the stored cards reflect. After a
// crash the pending changes are gone but the log has every event: Open
// replays the entries after cards_seq (catchUp), so no projected state is
// lost and checkpoints continue from the right cards; flushBytes bounds
// that replay too (about 80,000 of sal bench's entries, about 1 s).
//
// A flush rewrites the file's pages of every supplier it carries records
// of, however few of each supplier's records changed: with events spread
// over 5,000 suppliers (sal bench, 1,000,000 events) every flush touched
// nearly all of them, so its cost is set by the cards' size, not by what
// changed. Flushing on a clock (every 500 ms, as sal did) made the ingest
// rewrite every card once a flush, 7,864 bytes written per event at
// 1,000,000 events against 4,322 flushing on the bound in bytes, which
// took that ingest from 16,401 to 25,310 events/s with the same peak
// live heap (227 and 219 MiB).
//
// A flush of more than flushPart is written in parts, a transaction each,
// of suppliers in key order (flushInParts): bbolt holds the nodes of the
// pages a transaction changes until it commits, so one transaction for
// the cards of every supplier held them all at once. Only the last part
// moves cards_seq; after a crash between parts, the cards written ahead
// of it already hold the entries catchUp replays, and applyPartial skips
// those (an entry at or before a card's last_seq is on it).
const (
	flushBytes = 32 << 20
	flushEvery = 10 * time.Second
	flushPart  = 8 << 20
)

var (
	bucketCardRecords = []byte("card_records")
	// bucketCardSections holds the sections' states (sectionKey), apart
	// from the records: see cardView.section.
	bucketCardSections = []byte("card_sections")
	// bucketWholeCards holds cards stored whole, one JSON value each.
	bucketWholeCards = []byte("scorecards")

	keyCardsSeq = []byte("cards_seq")
)

// Key layout of card_records (doc.go). Every key starts with the supplier
// id and a zero byte, so a supplier's keys are together, then a tag: a
// section's kind (its records, by id), or one of these.
const (
	frameTag  = 'f' // the frame
	holderTag = 'a' // by assessment id: the commitment that holds it
)

// sectionKey is the key in card_sections of a section's state.
func sectionKey(supplierID string, k scorecard.Kind) []byte {
	return append(append([]byte(supplierID), 0), byte(k))
}

func cardKey(supplierID string, tag byte, id string) []byte {
	k := make([]byte, 0, len(supplierID)+2+len(id))
	k = append(k, supplierID...)
	k = append(k, 0, tag)
	return append(k, id...)
}

// A record's value is pos(4) || open(4) || its JSON: its position in its
// section and, for a commitment, the breaches open against it (4-byte
// big-endian each).
func recordValue(r scorecard.Stored) []byte {
	v := make([]byte, 8, 8+len(r.JSON))
	binary.BigEndian.PutUint32(v, uint32(r.Pos))
	binary.BigEndian.PutUint32(v[4:], uint32(r.Open))
	return append(v, r.JSON...)
}

func readRecord(supplierID string, v []byte) (scorecard.Stored, error) {
	if len(v) < 8 {
		return scorecard.Stored{}, fmt.Errorf("%w: supplier %s: scorecard record of %d bytes", ErrBadEntry, supplierID, len(v))
	}
	return scorecard.Stored{Pos: int(binary.BigEndian.Uint32(v)), Open: int(binary.BigEndian.Uint32(v[4:])), JSON: v[8:]}, nil
}

// cardUpdate is what publishing a card writes: its frame, the records it
// read or added (by kind byte and id), the assessments it added (by id:
// the commitment holding each), and the digest of the card they make. A
// rebuild's update has the card whole instead.
type cardUpdate struct {
	whole   []byte
	frame   []byte
	records map[string]scorecard.Stored
	held    map[string]string
	// sections holds, for each section the update changed, its hash and
	// every record's leaf: what the next update hashes the card from.
	sections map[scorecard.Kind][]byte
	digest   [32]byte
	size     int // bytes held, roughly
}

func newUpdate(w scorecard.Writes) *cardUpdate {
	u := &cardUpdate{frame: w.Frame, records: make(map[string]scorecard.Stored, len(w.Records)), held: make(map[string]string, len(w.Held)), sections: map[scorecard.Kind][]byte{}, size: len(w.Frame)}
	for _, r := range w.Records {
		u.records[string(r.Kind)+r.ID] = r.Stored
		u.size += len(r.ID) + len(r.JSON) + 48
	}
	for _, h := range w.Held {
		u.held[h.AssessmentID] = h.CommitmentID
		u.size += len(h.AssessmentID) + len(h.CommitmentID) + 32
	}
	return u
}

// merge folds a later update v of the same card into u.
func (u *cardUpdate) merge(v *cardUpdate) {
	u.size += len(v.frame) - len(u.frame)
	u.frame, u.digest = v.frame, v.digest
	for k, r := range v.records {
		if old, ok := u.records[k]; ok {
			u.size += len(r.JSON) - len(old.JSON)
		} else {
			u.size += len(k) + len(r.JSON) + 48
		}
		u.records[k] = r
	}
	for a, cm := range v.held {
		if _, ok := u.held[a]; !ok {
			u.size += len(a) + len(cm) + 32
		}
		u.held[a] = cm
	}
	for k, st := range v.sections {
		u.size += len(st) - len(u.sections[k])
		u.sections[k] = st
	}
}

// cardView reads one supplier's card as stored in tx (none if nil),
// overlaid by updates not yet written, newest first. It is the Store
// partial cards read from. whole is the card's JSON when it is stored
// whole (a card with updates is in records: an update of a card that was
// whole holds every record).
type cardView struct {
	id     string
	tx     *bolt.Tx
	layers []*cardUpdate
	whole  []byte
	tick   func() // if set, called after each read of the file (mapped.go)
	// absent, if set, answers reads of keys card_records has never held
	// without the file (absent.go).
	absent *absentKeys
}

var _ scorecard.Store = cardView{}

// view is the view of a supplier's card in tx under the given sets of
// updates, newest first, with the ledger's mapped-pages tick: a card's
// records are read through bbolt's map, and the appender and the
// publications read many (mapped.go).
func (l *Ledger) view(tx *bolt.Tx, id string, sets ...map[string]*cardUpdate) cardView {
	v := cardView{id: id, tx: tx, tick: l.mappedTick, absent: l.absentRecords}
	for _, s := range sets {
		if u, ok := s[id]; ok {
			v.layers = append(v.layers, u)
		}
	}
	if len(v.layers) == 0 && tx != nil {
		if b := tx.Bucket(bucketWholeCards); b != nil {
			v.whole = b.Get([]byte(id))
		}
	}
	return v
}

// records is the bucket of cards in records, nil if there is none (no
// transaction, or a file from before cards were stored so, read-only).
func (v cardView) records() *bolt.Bucket {
	if v.tx == nil {
		return nil
	}
	return v.tx.Bucket(bucketCardRecords)
}

func (v cardView) get(tag byte, id string) []byte {
	b := v.records()
	if b == nil {
		return nil
	}
	key := cardKey(v.id, tag, id)
	if v.absent.absent(key) {
		return nil
	}
	if v.tick != nil {
		v.tick()
	}
	return b.Get(key)
}

// section is a section's stored state: its hash and its records' leaves,
// the newest layer's first; nil if there is none. The states are stored
// in a bucket of their own, card_sections, where a supplier's take a few
// KB: publishing the cards changed since the last flush reads the states
// of nearly every supplier, and read from card_records, one leaf each
// among the supplier's records, those reads mapped most of the records
// (in a profile of sal bench at 1,000,000 events, 9.6 s of the ingest's
// page faults). A file written before kept them in card_records
// (id 0x00 'h' kind), where they are no longer read: a section with no
// state is hashed from all its records (hash), once, and its state kept
// in card_sections from then on.
func (v cardView) section(k scorecard.Kind) []byte {
	for _, u := range v.layers {
		if st, ok := u.sections[k]; ok {
			return st
		}
	}
	if v.tx == nil {
		return nil
	}
	b := v.tx.Bucket(bucketCardSections)
	if b == nil {
		return nil // a file from before card_sections, read-only
	}
	if v.tick != nil {
		v.tick()
	}
	return b.Get(sectionKey(v.id, k))
}

// hash is the hash (scorecard.Hash) of the card u makes of v (u is v's
// newest layer), from the leaves of the records u holds and the state
// stored of every section, which it brings up to date in u. A section
// whose stored leaves do not cover its records (a card last stored by a
// sal that kept none) is hashed from all its records instead, and its
// state is kept from then on.
func (v cardView) hash(u *cardUpdate, f scorecard.Frame) ([32]byte, error) {
	var changed [5]map[int][]byte
	for key, r := range u.records {
		s := scorecard.SectionOf(scorecard.Kind(key[0]))
		if s < 0 {
			return [32]byte{}, fmt.Errorf("%w: supplier %s: record of kind %q", ErrBadEntry, v.id, key[0])
		}
		if changed[s] == nil {
			changed[s] = map[int][]byte{}
		}
		changed[s][r.Pos] = r.JSON
	}
	var sums [5][32]byte
	for s, k := range scorecard.Sections() {
		n := f.Counts[s]
		older := v.section(k)
		if len(changed[s]) == 0 && len(older) == 32+32*n {
			copy(sums[s][:], older)
			continue
		}
		var stored []byte
		if len(older) >= 32 {
			stored = older[32:]
		}
		leaves, err := scorecard.UpdateLeaves(stored, n, changed[s])
		if errors.Is(err, scorecard.ErrNoLeaves) {
			leaves, err = v.allLeaves(k, n)
		}
		if err != nil {
			return [32]byte{}, fmt.Errorf("supplier %s: %w", v.id, err)
		}
		if sums[s], err = scorecard.SectionHash(leaves); err != nil {
			return [32]byte{}, err
		}
		st := make([]byte, 0, 32+len(leaves))
		st = append(append(st, sums[s][:]...), leaves...)
		u.size += len(st) - len(u.sections[k])
		u.sections[k] = st
	}
	return scorecard.HashFrame(f, sums)
}

// allLeaves is the leaves of every record of a section of n records.
func (v cardView) allLeaves(k scorecard.Kind, n int) ([]byte, error) {
	leaves := make([]byte, 0, 32*n)
	err := v.each(k, n, func(b []byte) error {
		leaf := scorecard.Leaf(b)
		leaves = append(leaves, leaf[:]...)
		return nil
	})
	return leaves, err
}

// frame is the card's frame, ok false if the supplier has no card.
func (v cardView) frame() (f scorecard.Frame, ok bool, err error) {
	var b []byte
	if len(v.layers) > 0 {
		b = v.layers[0].frame
	} else {
		b = v.get(frameTag, "")
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

// card is the card to apply events to: a partial card, new if the
// supplier has none, or the card decoded whole if it is stored whole.
func (v cardView) card() (*scorecard.Card, error) {
	if v.whole != nil {
		c, err := scorecard.Decode(v.whole)
		if err != nil {
			return nil, fmt.Errorf("supplier %s: %w", v.id, err)
		}
		return c, nil
	}
	f, _, err := v.frame()
	if err != nil {
		return nil, err
	}
	return scorecard.NewPartial(f), nil
}

// toRecords turns the card of v, stored whole, into records in v's
// (writable) transaction: the same card, so its digest stays.
func (v cardView) toRecords() error {
	c, err := v.card()
	if err != nil {
		return err
	}
	w, err := c.Writes()
	if err != nil {
		return err
	}
	u := newUpdate(w)
	// The update holds every record: nothing stored is read.
	if u.digest, err = (cardView{id: v.id, layers: []*cardUpdate{u}}).hash(u, w.Meta); err != nil {
		return err
	}
	return cardBuckets{v.tx.Bucket(bucketWholeCards), v.tx.Bucket(bucketCardRecords), v.tx.Bucket(bucketCardDigests), v.tx.Bucket(bucketCardSections), v.tick, v.absent}.put(map[string]*cardUpdate{v.id: u})
}

func (v cardView) Record(k scorecard.Kind, id string) (scorecard.Stored, bool, error) {
	key := string(k) + id
	for _, u := range v.layers {
		if r, ok := u.records[key]; ok {
			return r, true, nil
		}
	}
	b := v.get(byte(k), id)
	if b == nil {
		return scorecard.Stored{}, false, nil
	}
	r, err := readRecord(v.id, b)
	return r, err == nil, err
}

func (v cardView) Holder(assessmentID string) (string, bool, error) {
	for _, u := range v.layers {
		if cm, ok := u.held[assessmentID]; ok {
			return cm, true, nil
		}
	}
	b := v.get(holderTag, assessmentID)
	return string(b), b != nil, nil
}

// each calls fn with the JSON of the n records of section k, in order:
// each record is placed at its position, overlaid ones first, then the
// stored ones found with a cursor over the section's keys.
func (v cardView) each(k scorecard.Kind, n int, fn func([]byte) error) error {
	recs := make([][]byte, n)
	// place puts a record at its position unless a newer one is there.
	place := func(id []byte, r scorecard.Stored) error {
		if r.Pos >= n {
			return fmt.Errorf("%w: supplier %s: %c record %s at %d of %d", ErrBadEntry, v.id, k, id, r.Pos, n)
		}
		if recs[r.Pos] == nil {
			recs[r.Pos] = r.JSON
		}
		return nil
	}
	for _, u := range v.layers {
		for key, r := range u.records {
			if scorecard.Kind(key[0]) != k {
				continue
			}
			if err := place([]byte(key[1:]), r); err != nil {
				return err
			}
		}
	}
	if b := v.records(); b != nil {
		prefix := cardKey(v.id, byte(k), "")
		cur := b.Cursor()
		for ck, cv := cur.Seek(prefix); ck != nil && bytes.HasPrefix(ck, prefix); ck, cv = cur.Next() {
			if v.tick != nil {
				v.tick()
			}
			r, err := readRecord(v.id, cv)
			if err == nil {
				err = place(ck[len(prefix):], r)
			}
			if err != nil {
				return err
			}
		}
	}
	for pos, b := range recs {
		if b == nil {
			return fmt.Errorf("%w: supplier %s has no %c record at %d of %d", ErrBadEntry, v.id, k, pos, n)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// assemble writes the card's JSON to w; ok false if it has none.
func (v cardView) assemble(w io.Writer) (ok bool, err error) {
	if v.whole != nil {
		_, err := w.Write(v.whole)
		return true, err
	}
	f, ok, err := v.frame()
	if err != nil || !ok {
		return false, err
	}
	return true, scorecard.Assemble(w, f, v.each)
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
	l.pending.mu.RLock()
	defer l.pending.mu.RUnlock()
	return l.db.View(func(tx *bolt.Tx) error { return fn(l.pending.cards, tx) })
}

// cardBuckets are the buckets a card is written to.
// tick, if set, is called after each put (putInOrder); absent, if set,
// is told every key put in records.
type cardBuckets struct {
	whole, records, digests, sections *bolt.Bucket
	tick                              func()
	absent                            *absentKeys
}

// cardBuckets are the ledger's buckets of cards in tx.
func (l *Ledger) cardBuckets(tx *bolt.Tx) cardBuckets {
	return cardBuckets{tx.Bucket(bucketWholeCards), tx.Bucket(bucketCardRecords), tx.Bucket(bucketCardDigests), tx.Bucket(bucketCardSections), l.mappedTick, l.absentRecords}
}

// put writes the updates of sets (older first) to the buckets, each
// bucket's keys in order: bbolt splits a transaction's nodes only at
// commit, so keys put at random places in a large write are each an
// insertion into the middle of one ever larger node (BenchmarkRebuild at
// 50,000 events: 16k events/s in map order).
func (cb cardBuckets) put(sets ...map[string]*cardUpdate) error {
	var whole, records, digests, sections []kv
	for _, set := range sets {
		for id, u := range set {
			digests = append(digests, kv{[]byte(id), u.digest[:]})
			if u.whole != nil {
				whole = append(whole, kv{[]byte(id), u.whole})
				continue
			}
			// In records from now on (it may have been whole).
			if cb.whole.Get([]byte(id)) != nil {
				if err := cb.whole.Delete([]byte(id)); err != nil {
					return fmt.Errorf("put scorecard %s: %w", id, err)
				}
			}
			records = append(records, kv{cardKey(id, frameTag, ""), u.frame})
			for k, r := range u.records {
				records = append(records, kv{cardKey(id, k[0], k[1:]), recordValue(r)})
			}
			for a, cm := range u.held {
				records = append(records, kv{cardKey(id, holderTag, a), []byte(cm)})
			}
			for k, st := range u.sections {
				sections = append(sections, kv{sectionKey(id, k), st})
			}
		}
	}
	if err := putSorted(cb.whole, whole, cb.tick); err != nil {
		return fmt.Errorf("put scorecards: %w", err)
	}
	for _, x := range records {
		cb.absent.add(x.k)
	}
	if err := putSorted(cb.records, records, cb.tick); err != nil {
		return fmt.Errorf("put scorecard records: %w", err)
	}
	if err := putSorted(cb.digests, digests, cb.tick); err != nil {
		return fmt.Errorf("put scorecard digests: %w", err)
	}
	if err := putSorted(cb.sections, sections, cb.tick); err != nil {
		return fmt.Errorf("put scorecard sections: %w", err)
	}
	return nil
}

type kv struct{ k, v []byte }

// putSorted puts kvs in key order. The sort is stable: of equal keys the
// one given last is put last, and wins.
func putSorted(b *bolt.Bucket, kvs []kv, tick func()) error {
	slices.SortStableFunc(kvs, func(x, y kv) int { return bytes.Compare(x.k, y.k) })
	return putInOrder(b, kvs, tick)
}

// putInOrder puts kvs, already in key order, calling tick (if set) after
// each: a large write reads the bucket's pages through the map faster
// than the mapped-pages watch polls (see mapped.go).
func putInOrder(b *bolt.Bucket, kvs []kv, tick func()) error {
	for _, x := range kvs {
		if err := b.Put(x.k, x.v); err != nil {
			return fmt.Errorf("%q: %w", x.k, err)
		}
		if tick != nil {
			tick()
		}
	}
	return nil
}

// writeCards stores card updates (older sets first) and records that the
// stored cards now reflect the log up to seq.
func (l *Ledger) writeCards(tx *bolt.Tx, seq uint64, sets ...map[string]*cardUpdate) error {
	if err := l.cardBuckets(tx).put(sets...); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyCardsSeq, u64(seq))
}

// updatesSize is the bytes a set of updates holds, roughly.
func updatesSize(set map[string]*cardUpdate) int {
	n := 0
	for _, u := range set {
		n += u.size
	}
	return n
}

// flushInParts writes every pending card, flushPart at a time in supplier
// order, each part in its transaction, the last recording that the stored
// cards reflect the log up to seq and emptying the pending cards. The
// caller holds appendMu, so no batch comes between the parts; readers see
// the pending cards over the stored ones throughout, the same cards.
func (l *Ledger) flushInParts(seq uint64, now time.Time) error {
	ids := make([]string, 0, len(l.pending.cards))
	for id := range l.pending.cards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for len(ids) > 0 {
		part := map[string]*cardUpdate{}
		size := 0
		for len(ids) > 0 && (len(part) == 0 || size+l.pending.cards[ids[0]].size <= l.partBytes()) {
			part[ids[0]] = l.pending.cards[ids[0]]
			size += part[ids[0]].size
			ids = ids[1:]
		}
		last := len(ids) == 0
		err := l.commit(func(tx *bolt.Tx) error {
			if last {
				return l.writeCards(tx, seq, part)
			}
			return l.cardBuckets(tx).put(part)
		}, func() {
			if last {
				l.pending.reset(now)
			}
		})
		if err != nil {
			return fmt.Errorf("ledger: write scorecards up to seq %d: %w", seq, err)
		}
		if l.partWritten != nil {
			l.partWritten(last)
		}
	}
	return nil
}

// partBytes is the bound on a part of a flush.
func (l *Ledger) partBytes() int {
	if l.flushPart > 0 {
		return l.flushPart
	}
	return flushPart
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
// the last commit in a read transaction of its own; the cards named in
// inTx, turned into records by the transaction tx not yet committed,
// are read in tx, by the calling goroutine.
func (l *Ledger) publishCards(older map[string]*cardUpdate, tx *bolt.Tx, inTx map[string]bool, sets ...map[string]*scorecard.Card) (map[string]*cardUpdate, error) {
	all := map[string]*scorecard.Card{}
	for _, set := range sets {
		for id, c := range set {
			all[id] = c
		}
	}
	var ids, local []string
	for id := range all {
		if inTx[id] {
			local = append(local, id)
		} else {
			ids = append(ids, id)
		}
	}
	m := make(map[string]*cardUpdate, len(all))
	publish := func(tx *bolt.Tx, id string) (*cardUpdate, error) {
		wr, err := all[id].Writes()
		if err != nil {
			return nil, err
		}
		u := newUpdate(wr)
		v := l.view(tx, id, older)
		// An update holds every record of a card that was whole (see
		// cardView), so the whole value, if still stored, is not it.
		v.layers, v.whole = append([]*cardUpdate{u}, v.layers...), nil
		u.digest, err = v.hash(u, wr.Meta)
		return u, err
	}
	for _, id := range local {
		u, err := publish(tx, id)
		if err != nil {
			return nil, err
		}
		m[id] = u
	}
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
					u, err := publish(tx, ids[i])
					if err != nil {
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
				if err := applyPartial(cards, l.view(tx, o.Event.SupplierId), seq, o); err != nil {
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
	updates, err := l.publishCards(nil, nil, nil, cards)
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
		if err := l.writeCards(tx, to, updates); err != nil {
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
		if c, err = v.card(); err != nil {
			return err
		}
		cards[v.id] = c
	}
	if seq <= c.LastSeq {
		return nil // on the card already: written by a part of a flush (flushInParts)
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
