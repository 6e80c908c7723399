package ledger

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/scorecard"
)

// Scorecards are written to the file in bulk, not with every batch.
//
// A batch changes the cards of the suppliers its events name; rewriting
// each such card (tens of KiB for a supplier with a long history) in every
// batch's transaction made the projection, not the log, the cost of
// ingest. Instead the ledger keeps the cards changed since the last flush
// in memory (pending: their JSON and digest), serves reads from there
// first, and writes them all in one publishing batch's transaction when
// flushEvery has gone by since the last flush, when they pass flushBytes
// (a bound on the memory they take), and at Close. Every checkpoint still
// commits to every card as it stands at its size (stored digests overlaid
// by pending ones).
//
// With flushBytes at 256 MiB, peak Go heap in sal bench at 1,000,000
// events (5,000 suppliers, whose cards change faster than 2 s go by) was
// 2,918-3,019 MiB in three runs; at 64 MiB, 2,551 and 2,554 in two,
// ingest unchanged. At 200,000 events the cards changed in 2 s are about
// 67 MB, so the bound changes little there.
//
// meta "cards_seq" is the log position the stored cards reflect. After a
// crash the pending cards are gone but the log has every event: Open
// replays the entries after cards_seq (catchUp), so no projected state is
// lost and checkpoints continue from the right cards.
const (
	flushBytes = 64 << 20
	flushEvery = 2 * time.Second
)

var keyCardsSeq = []byte("cards_seq")

// storedCard is a card's JSON as served, and its SHA-256.
type storedCard struct {
	json   []byte
	digest [32]byte
}

func newStoredCard(c *scorecard.Card) (storedCard, error) {
	v, err := scorecard.Encode(c)
	if err != nil {
		return storedCard{}, err
	}
	return storedCard{json: v, digest: sha256.Sum256(v)}, nil
}

// pendingCards are the cards changed since the last flush. Only the
// appender (holding appendMu) changes them, under mu; readers take mu
// for reading.
type pendingCards struct {
	mu        sync.RWMutex
	cards     map[string]storedCard
	size      int
	lastFlush time.Time
}

// due says whether the batch about to commit should flush.
func (p *pendingCards) due(now time.Time) bool {
	return p.size >= flushBytes || now.Sub(p.lastFlush) >= flushEvery
}

// committed records the cards of a committed batch: written to the file
// when flushed, otherwise kept pending. The caller holds mu.
func (p *pendingCards) committed(updates map[string]storedCard, flushed bool, now time.Time) {
	if flushed {
		clear(p.cards)
		p.size = 0
		p.lastFlush = now
		return
	}
	for id, c := range updates {
		p.size += len(c.json) - len(p.cards[id].json)
		p.cards[id] = c
	}
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
func (l *Ledger) readCards(fn func(pending map[string]storedCard, tx *bolt.Tx) error) error {
	l.pending.mu.RLock()
	defer l.pending.mu.RUnlock()
	return l.db.View(func(tx *bolt.Tx) error { return fn(l.pending.cards, tx) })
}

// reset empties the pending cards after they were written (or replaced).
// The caller holds mu, or is the only goroutine using the ledger.
func (p *pendingCards) reset(now time.Time) {
	clear(p.cards)
	p.size = 0
	p.lastFlush = now
}

// writeCards stores cards and their digests and records that the stored
// cards now reflect the log up to seq.
func writeCards(tx *bolt.Tx, seq uint64, sets ...map[string]storedCard) error {
	if err := putCards(tx.Bucket(bucketScorecards), tx.Bucket(bucketCardDigests), sets...); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyCardsSeq, u64(seq))
}

// putCards puts cards in one bucket and their digests in another (later
// sets win).
func putCards(cards, digests *bolt.Bucket, sets ...map[string]storedCard) error {
	for _, set := range sets {
		for id, c := range set {
			if err := cards.Put([]byte(id), c.json); err != nil {
				return fmt.Errorf("put scorecard %s: %w", id, err)
			}
			if err := digests.Put([]byte(id), c.digest[:]); err != nil {
				return fmt.Errorf("put scorecard digest %s: %w", id, err)
			}
		}
	}
	return nil
}

// cardsDigestOver is the checkpoints' scorecards digest over the stored
// card digests overlaid by newer ones (later sets win).
func cardsDigestOver(tx *bolt.Tx, overlays ...map[string]storedCard) [32]byte {
	m := map[string][32]byte{}
	_ = tx.Bucket(bucketCardDigests).ForEach(func(k, v []byte) error {
		var s [32]byte
		copy(s[:], v)
		m[string(k)] = s
		return nil
	})
	for _, o := range overlays {
		for id, c := range o {
			m[id] = c.digest
		}
	}
	return CardsDigest(m)
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
		page, err := l.Entries(seq, pageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return &ChainError{Seq: seq, Err: fmt.Errorf("%w: log ends at %d, head says %d", ErrChainBroken, seq-1, to)}
		}
		for _, e := range page {
			if e.Seq > to {
				break
			}
			o, err := envelope.Open(e.Envelope)
			if err != nil {
				return &ChainError{Seq: e.Seq, Err: err}
			}
			if id := o.Event.SupplierId; id != "" {
				if _, ok := cards[id]; !ok {
					c, err := l.storedCard(id)
					if err != nil {
						return err
					}
					cards[id] = c
				}
			}
			ProjectOpened(cards, e.Seq, o)
		}
		seq = page[len(page)-1].Seq + 1
	}
	updates, err := encodeCards(cards, nil)
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

// storedCard decodes the card of a supplier as stored (pending first),
// or a new one.
func (l *Ledger) storedCard(id string) (*scorecard.Card, error) {
	var c *scorecard.Card
	err := l.readCards(func(pending map[string]storedCard, tx *bolt.Tx) error {
		v := tx.Bucket(bucketScorecards).Get([]byte(id))
		if p, ok := pending[id]; ok {
			v = p.json
		}
		if v == nil {
			c = scorecard.New(id)
			return nil
		}
		var err error
		c, err = scorecard.Decode(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("supplier %s: %w", id, err)
	}
	return c, nil
}

// mergeIDs adds the pending cards' supplier ids to the stored ones
// (sorted), keeping the order.
func mergeIDs(stored []string, pending map[string]storedCard) []string {
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
