package ledger

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/scorecard"
)

// Publication.
//
// Every batch stores its events — log entries, Merkle leaves, ids, the
// stream position — in one transaction. Publishing makes them visible
// beyond the log: the changed scorecards are encoded and hashed (and
// served from then on), a checkpoint is signed over the tree and the
// scorecards at the head, and whoever waits for one of the events is woken.
//
// A plain Append publishes in its own transaction. A batch read from the
// stream publishes when the reader has caught up with the stream (the
// usual case: a write is published in the batch that stores it) or when
// publishEvery has passed since the last publication; under a sustained
// stream the cards a publication encodes and hashes were changed by many
// batches, each encoded once instead of once per batch. An event is
// published at most publishEvery after it is stored; no write is answered
// before its event is published.
//
// The cards changed by batches not yet published (dirty: partial cards,
// holding only the records their events named) live only in memory:
// after a crash Open replays them from the log (catchUp), and signs the
// checkpoint the last batches did not get.
const publishEvery = 250 * time.Millisecond

// forget drops the cards a failed batch changed in memory. A card also
// changed by committed batches not yet published is rebuilt: the card as
// last published, and this supplier's entries stored since.
func (l *Ledger) forget(touched map[string]*scorecard.Card) error {
	var errs []error
	for id := range touched {
		if _, ok := l.dirty[id]; !ok {
			continue
		}
		c, err := l.reload(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.dirty[id] = c
	}
	if err := errors.Join(errs...); err != nil {
		l.broken = fmt.Errorf("ledger: scorecards could not be restored after a failed batch; restart to replay them from the log: %w", err)
		return l.broken
	}
	return nil
}

// reload is a supplier's card as of the head: the card as last published
// (pending or stored), as a partial card, and the supplier's entries
// stored after that.
func (l *Ledger) reload(id string) (*scorecard.Card, error) {
	var c *scorecard.Card
	err := l.db.View(func(tx *bolt.Tx) error {
		v := l.view(tx, id, l.pending.cards)
		var err error
		if c, err = v.card(); err != nil {
			return err
		}
		events := tx.Bucket(bucketEvents)
		for _, seq := range supplierSeqs(tx, l.unindexed, id, l.published.Load()+1, 0) {
			e, err := decodeEntry(seq, events.Get(u64(seq)))
			if err != nil {
				return err
			}
			o, err := envelope.Open(e.Envelope)
			if err != nil {
				return &ChainError{Seq: seq, Err: err}
			}
			if err := scorecard.ApplyFrom(c, v, seq, o.Event, o.Payload); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reload scorecard of %s: %w", id, err)
	}
	return c, nil
}

// publishAll publishes what is not yet published and writes every pending
// card and every entry not yet in the indexes to the file, with a
// checkpoint at the head (Close does).
func (l *Ledger) publishAll() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.broken != nil {
		return nil // Open replays from the log
	}
	var head, cpSize uint64
	if err := l.db.View(func(tx *bolt.Tx) error {
		head = readHead(tx).seq
		cpSize = beUint64(tx.Bucket(bucketMeta).Get(keyCheckpointSize))
		return nil
	}); err != nil {
		return err
	}
	if len(l.dirty) == 0 && len(l.unpublished) == 0 && len(l.pending.cards) == 0 && len(l.unindexed.ids) == 0 && (l.cp == nil || cpSize == head) {
		return nil
	}
	if err := l.indexAll(head); err != nil {
		return err
	}
	// The published cards not yet written go first, in parts (as a batch
	// flushes them): in the one transaction below with the rest, bbolt
	// held the nodes of every page they touch at once (sal bench,
	// 1,000,000 events: 82 MB of the ingest's 228 MiB peak live heap).
	// They reflect the log up to the last publication.
	if l.pending.size > l.partBytes() {
		if err := l.flushInParts(l.published.Load(), l.now()); err != nil {
			return err
		}
	}
	updates, err := l.publishCards(l.pending.cards, nil, nil, l.dirty)
	if err != nil {
		return err
	}
	now := l.now()
	err = l.commit(func(tx *bolt.Tx) error {
		if err := l.writeCards(tx, head, l.pending.cards, updates); err != nil {
			return err
		}
		if l.cp == nil {
			return nil
		}
		return signCheckpoint(tx, l.cp, head, cardsDigestOver(tx))
	}, func() { l.pending.reset(now) })
	if err != nil {
		return fmt.Errorf("ledger: publish and write scorecards: %w", err)
	}
	clear(l.dirty)
	woken := l.unpublished
	l.unpublished = nil
	l.published.Store(head)
	l.announcedQ.Store(l.storedQHead())
	l.notify(woken)
	return nil
}
