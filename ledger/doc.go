// Package ledger is the append-only store of signed events. It verifies each
// incoming envelope against the key registry, drops exact redeliveries,
// quarantines what it refuses (with the reason), appends the rest with a
// gap-free sequence number and a hash chain, and keeps the per-supplier
// scorecards projected beside the log in the same bbolt transaction.
//
// # On-disk format (bbolt, one file, format version 1)
//
// Buckets and their keys; every sequence number is an 8-byte big-endian
// unsigned integer, so bbolt's byte order is log order.
//
//	meta        "format"      -> "1"
//	            "root_key_id" -> the registry root key id this ledger trusts
//	            "head"        -> seq(8) || entry_hash(32) of the last entry
//	            "qhead"       -> seq(8) of the last quarantine record
//	events      seq           -> entry (below)
//	event_ids   event id      -> seq
//	quarantine  qseq          -> JSON QuarantineRecord
//	q_digests   SHA-256(raw)  -> qseq (a redelivered bad message is kept once)
//	q_event_ids event id      -> qseq (latest quarantine record naming that id)
//	registry    key id        -> JSON keys.Authority (the keys in force at head)
//	scorecards  supplier id   -> JSON scorecard.Card (projection; rebuildable)
//	card_digests supplier id  -> SHA-256 of its stored scorecard (for checkpoints)
//	supplier_events id 0x00 seq -> empty (index: a supplier's entries in order)
//	tree        stored hash index (8) -> SHA-256 (RFC 6962 tree, sumdb/tlog layout)
//	checkpoints tree size     -> signed checkpoint note (see tree.go)
//
// The Merkle leaf of an entry is 0x01 (leaf format version) || envelope;
// its hash is SHA-256(0x00 || leaf). A checkpoint is a C2SP signed note:
// origin, tree size, base64 root, and "sal-scorecards sha256:<hex>", the
// digest over every supplier's id and scorecard hash (CardsDigest).
//
// An entry value is
//
//	version(1) = 0x01
//	appended_at(8)   unix nanoseconds, big-endian, the ledger's clock at append
//	prev_hash(32)    entry_hash of seq-1 (32 zero bytes for seq 1)
//	entry_hash(32)   SHA-256("sal/entry/v1\n" || seq(8) || appended_at(8) || prev_hash(32) || SHA-256(envelope))
//	envelope(...)    the accountability.v1.Envelope bytes exactly as received
//
// The envelope's signature covers "sal/event/v1\n" || Envelope.event (see
// package envelope); the ledger never re-encodes what was signed.
//
// # Caveats
//
// Only the scorecards bucket may be deleted: RebuildProjections recreates it
// from the events and gives the same bytes. Everything else is the record.
// Long reads (replay, verification) page through the log in short read
// transactions so they never hold one open for long.
package ledger
