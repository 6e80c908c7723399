package ledger

import (
	"bytes"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/envelope"
)

// Two indexes of the log are written in bulk, not with each batch:
// event_ids (id → seq), which finds a redelivered or retried event by its
// id, and supplier_events (supplier id ‖ seq), which lists a supplier's
// entries. Event ids are random (a service draws them, or derives them
// from an Idempotency-Key by SHA-256), so every new id lands on a page of
// its own, and every supplier's next key lands at the end of that
// supplier's range: a batch's commit rewrote a page of event_ids for
// nearly every event in it, and one of supplier_events for each supplier
// it named. Together that was 40% of the ingest's time (sal bench, 200,000
// events: the appender's 11.6 s went to 6.9 s with neither written).
//
// So the entries appended since the indexes were last brought up to date
// (unindexed) are held in memory, consulted beside the buckets, and
// written to them sorted once there are idMergeAt of them, when a flush
// finds the stream caught up, before a rebuild and at Close: a few in the
// batch's own transaction (mergeIndexes), more in parts after it
// (indexAll). meta "indexed_seq" is the log position both buckets cover; the
// entries after it are in the log, so Open reads them back from there (at
// most idMergeAt) and a crash loses nothing. A file without indexed_seq
// (written before this) has every entry in both buckets.
var keyIndexedSeq = []byte("indexed_seq")

// idMergeAt is how many entries may wait in memory to be indexed (50,000
// of the services' ids over 5,000 suppliers hold 5.2 MB of heap).
const idMergeAt = 50_000

// indexing holds the bounds above (tests make them small).
type indexing struct{ at, inBatch, part int }

// unindexed are the entries appended after the position the event_ids and
// supplier_events buckets cover. The ledger's are changed only by the
// appender, holding the pending cards' lock (commit), so a reader holding
// it sees the buckets and these of the same commit.
type unindexed struct {
	ids       map[string]uint64   // event id → seq
	suppliers map[string][]uint64 // supplier id → its seqs, in log order
}

func newUnindexed() *unindexed {
	return &unindexed{ids: map[string]uint64{}, suppliers: map[string][]uint64{}}
}

func (u *unindexed) add(eventID, supplierID string, seq uint64) {
	u.ids[eventID] = seq
	if supplierID != "" {
		u.suppliers[supplierID] = append(u.suppliers[supplierID], seq)
	}
}

// addAll adds o's entries, all later than u's.
func (u *unindexed) addAll(o *unindexed) {
	for id, seq := range o.ids {
		u.ids[id] = seq
	}
	for s, seqs := range o.suppliers {
		u.suppliers[s] = append(u.suppliers[s], seqs...)
	}
}

func (u *unindexed) reset() {
	clear(u.ids)
	clear(u.suppliers)
}

// indexedSeq is the position the event_ids and supplier_events buckets
// cover.
func indexedSeq(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyIndexedSeq); len(v) == 8 {
		return beUint64(v)
	}
	return readHead(tx).seq
}

// loadUnindexed reads the entries after the position the indexes cover.
func loadUnindexed(tx *bolt.Tx) (*unindexed, error) {
	u := newUnindexed()
	cur := tx.Bucket(bucketEvents).Cursor()
	for k, v := cur.Seek(u64(indexedSeq(tx) + 1)); k != nil; k, v = cur.Next() {
		seq := beUint64(k)
		raw, err := entryEnvelope(seq, v)
		if err != nil {
			return nil, err
		}
		o, err := envelope.Open(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", seq, err)
		}
		u.add(o.Event.EventId, o.Event.SupplierId, seq)
	}
	return u, nil
}

// findID is where the event id is stored: among sets' entries, or in the
// bucket, unless absent knows the bucket never held it (absent.go).
func findID(tx *bolt.Tx, absent *absentKeys, id string, sets ...*unindexed) (uint64, bool) {
	for _, u := range sets {
		if seq, ok := u.ids[id]; ok {
			return seq, true
		}
	}
	if absent.absent([]byte(id)) {
		return 0, false
	}
	if v := tx.Bucket(bucketEventIDs).Get([]byte(id)); v != nil {
		return beUint64(v), true
	}
	return 0, false
}

// sortedEntries are sets' entries as keys of the two buckets, each list in
// key order.
func sortedEntries(sets ...*unindexed) (ids, sups []kv) {
	for _, u := range sets {
		for id, seq := range u.ids {
			ids = append(ids, kv{[]byte(id), u64(seq)})
		}
		for s, seqs := range u.suppliers {
			for _, seq := range seqs {
				sups = append(sups, kv{supplierEventKey(s, seq), nil})
			}
		}
	}
	slices.SortFunc(ids, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	slices.SortFunc(sups, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	return ids, sups
}

// putEntries puts sorted keys of both buckets, telling absent (if set)
// the event ids.
func putEntries(tx *bolt.Tx, tick func(), absent *absentKeys, ids, sups []kv) error {
	for _, x := range ids {
		absent.add(x.k)
	}
	if err := putInOrder(tx.Bucket(bucketEventIDs), ids, tick); err != nil {
		return fmt.Errorf("index event id %w", err)
	}
	if err := putInOrder(tx.Bucket(bucketSupplierEvents), sups, tick); err != nil {
		return fmt.Errorf("index supplier event %w", err)
	}
	return nil
}

// mergeIndexes writes sets' entries to both buckets in tx and records that
// they cover the log up to head. For a few entries (mergeInBatch): tx
// then rewrites at most as many pages as a batch did.
func mergeIndexes(tx *bolt.Tx, absent *absentKeys, head uint64, sets ...*unindexed) error {
	ids, sups := sortedEntries(sets...)
	if err := putEntries(tx, nil, absent, ids, sups); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyIndexedSeq, u64(head))
}

// mergeInBatch is how many entries a batch's own transaction indexes.
const mergeInBatch = 4096

// indexPart bounds how many of the entries already indexed one
// transaction of indexAll spans. bbolt holds a node in memory for every
// page a transaction writes, and idMergeAt random keys touch nearly every
// page of the indexes: in one transaction, the ingest's peak Go heap at
// 1,000,000 events was 769 MiB, in parts 421. Each part holds the nodes of
// about indexPart entries' pages, whatever the ledger's size, and each
// page is still rewritten once for all the keys that land on it.
const indexPart = 100_000

// indexAll writes the ledger's unindexed entries to the buckets, up to
// head, in key-ordered parts of one transaction each, the last recording
// that they cover the log up to head. The caller holds appendMu. A part
// committed before a later one fails (or a crash) leaves keys in the
// buckets beyond indexed_seq: those entries are still unindexed (in memory,
// and read back from the log at Open), and readers of the buckets ignore
// them (supplierSeqs); putting them again changes nothing.
func (l *Ledger) indexAll(head uint64) error {
	if len(l.unindexed.ids) == 0 {
		return nil // the buckets cover the head
	}
	var covered uint64
	if err := l.db.View(func(tx *bolt.Tx) error { covered = indexedSeq(tx); return nil }); err != nil {
		return err
	}
	ids, sups := sortedEntries(l.unindexed)
	part := uint64(l.indexing.part)
	parts := max(1, int((covered+part-1)/part))
	for i := range parts {
		idPart := ids[i*len(ids)/parts : (i+1)*len(ids)/parts]
		supPart := sups[i*len(sups)/parts : (i+1)*len(sups)/parts]
		put := func(tx *bolt.Tx) error { return putEntries(tx, l.mappedTick, l.absentIDs, idPart, supPart) }
		if i < parts-1 {
			if err := l.db.Update(put); err != nil {
				return fmt.Errorf("ledger: index entries (part %d of %d): %w", i+1, parts, err)
			}
			continue
		}
		err := l.commit(func(tx *bolt.Tx) error {
			if err := put(tx); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keyIndexedSeq, u64(head))
		}, l.unindexed.reset)
		if err != nil {
			return fmt.Errorf("ledger: index entries (part %d of %d): %w", parts, parts, err)
		}
	}
	return nil
}

// readIndexes runs fn with the unindexed entries held still: fn sees them
// and the buckets of the same commit.
func (l *Ledger) readIndexes(fn func(tx *bolt.Tx, un *unindexed) error) error {
	return l.readCards(func(_ map[string]*cardUpdate, tx *bolt.Tx) error { return fn(tx, l.unindexed) })
}
