package ledger

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/envelope"
)

// The event-id index (bucket event_ids: id → seq) finds a redelivered or
// retried event by its id. Event ids are random (a service draws them, or
// derives them from an Idempotency-Key by SHA-256), so every new id lands
// on its own page of the index: a batch of 4,096 events rewrote about as
// many of the index's pages at its commit, and that was a quarter of the
// ingest's time (sal bench, 200,000 events: the appender's 11.4 s went to
// 8.7 s with the index not written at all).
//
// So the index is brought up to date in bulk: the ids of the events
// appended since (recentIDs) are held in memory, consulted before the
// bucket, and written to it sorted, in one transaction, once there are
// idMergeAt of them or when a flush finds the stream caught up. meta
// "ids_seq" is the log position the bucket covers; the ids after it are
// in the log, so Open reads them back from there (at most idMergeAt
// entries) and a crash loses nothing. A file without ids_seq (written
// before this) has every id in the bucket.
var keyIDsSeq = []byte("ids_seq")

// idMergeAt is how many ids may wait in memory (about 80 bytes each).
const idMergeAt = 50_000

// recentIDs are the event ids appended after the position the event_ids
// bucket covers, with their sequence numbers. Only the appender changes
// them, holding the pending cards' lock (commit), so a reader holding it
// sees the bucket and these of the same commit.
type recentIDs map[string]uint64

// idsSeq is the position the event_ids bucket covers.
func idsSeq(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyIDsSeq); len(v) == 8 {
		return beUint64(v)
	}
	return readHead(tx).seq
}

// loadRecentIDs reads the ids of the entries after the position the
// event_ids bucket covers.
func loadRecentIDs(tx *bolt.Tx) (recentIDs, error) {
	ids := recentIDs{}
	cur := tx.Bucket(bucketEvents).Cursor()
	for k, v := cur.Seek(u64(idsSeq(tx) + 1)); k != nil; k, v = cur.Next() {
		seq := beUint64(k)
		raw, err := entryEnvelope(seq, v)
		if err != nil {
			return nil, err
		}
		o, err := envelope.Open(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", seq, err)
		}
		ids[o.Event.EventId] = seq
	}
	return ids, nil
}

// findID is where the event id is stored: in the batch being appended,
// in the recent ids, or in the bucket.
func findID(tx *bolt.Tx, recent, batch recentIDs, id string) (uint64, bool) {
	if seq, ok := batch[id]; ok {
		return seq, true
	}
	if seq, ok := recent[id]; ok {
		return seq, true
	}
	if v := tx.Bucket(bucketEventIDs).Get([]byte(id)); v != nil {
		return beUint64(v), true
	}
	return 0, false
}

// mergeRecentIDs writes the recent ids and the batch's to the bucket, in key
// order, and records that it covers the log up to head.
func mergeRecentIDs(tx *bolt.Tx, head uint64, sets ...recentIDs) error {
	var kvs []kv
	for _, set := range sets {
		for id, seq := range set {
			kvs = append(kvs, kv{[]byte(id), u64(seq)})
		}
	}
	if err := putSorted(tx.Bucket(bucketEventIDs), kvs); err != nil {
		return fmt.Errorf("put event id %w", err)
	}
	return tx.Bucket(bucketMeta).Put(keyIDsSeq, u64(head))
}
