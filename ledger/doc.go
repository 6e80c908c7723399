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
//	            "stream_seq"  -> the JetStream stream sequence(8) of the last
//	                             message stored: where reading resumes
//	            "cards_seq"   -> seq(8) the stored scorecards reflect; the
//	                             cards of later entries are written in bulk
//	                             (projection.go) and replayed at Open after
//	                             a crash
//	            "indexed_seq" -> seq(8) event_ids and supplier_events
//	                             cover; later entries are indexed in memory,
//	                             written in bulk (ids.go) and read back from
//	                             the log at Open
//	            "cards_format" -> "2": card_digests hold scorecard.Hash
//	                             (a file without it was written by a sal
//	                             that hashed the JSON; its cards are
//	                             projected again at the first writable Open)
//	events      seq           -> entry (below)
//	event_ids   event id      -> seq
//	quarantine  qseq          -> JSON QuarantineRecord
//	q_digests   SHA-256(raw)  -> qseq (a redelivered bad message is kept once)
//	q_event_ids event id      -> qseq (latest quarantine record naming that id)
//	registry    key id        -> JSON keys.Authority (the keys in force at head)
//	scorecards  supplier id   -> JSON scorecard.Card: a card stored whole (by
//	                             RebuildProjections, or by a sal from before
//	                             cards were stored record by record)
//	card_records id 0x00 'f'  -> JSON scorecard.Frame: the card without its
//	                             records, and how many each section holds
//	            id 0x00 kind record-id -> pos(4) || open(4) || the record's
//	                             JSON: kind 'c' commitments, 'b' breaches,
//	                             'p' remediation plans, 'd' disputes, 'r'
//	                             disinvestment reviews; pos its place in its
//	                             section (from 0), open for a commitment the
//	                             breaches open against it (4-byte big-endian)
//	            id 0x00 'a' assessment-id -> the id of the commitment
//	                             holding that assessment
//	            id 0x00 'h' kind -> in a file from before card_sections:
//	                             the section's state as kept then, no
//	                             longer read
//	card_sections id 0x00 kind -> the section's hash(32) || the leaf
//	                             hash(32) of each of its records, in order
//	                             (scorecard.Hash): publishing a card hashes
//	                             only the records an event changed
//	card_digests supplier id  -> scorecard.Hash of its scorecard (for checkpoints)
//	supplier_events id 0x00 seq -> empty (index: a supplier's entries in order;
//	                             RebuildProjections rebuilds each card from it)
//	rebuild     (only while RebuildProjections runs) nested buckets
//	            "scorecards", "card_records" (empty), "card_digests" and
//	            "card_sections" (empty),
//	            staged in chunks and moved to the top level in its last
//	            transaction; one left by a crash is dropped at Open
//	tree        stored hash index (8) -> SHA-256 (RFC 6962 tree, sumdb/tlog layout)
//	checkpoints tree size     -> signed checkpoint note (see tree.go)
//
// The card buckets (scorecards, card_records, card_digests,
// card_sections) are the projection (rebuildable). A card is in exactly
// one of two forms: whole
// in scorecards, or in card_records; the first event for a card stored
// whole turns it into records in the transaction that stores the event
// (and deletes the whole value). Its JSON — what Scorecard serves and
// card_digests hashes — is the same in both: in records, its frame and
// records put together (scorecard.Assemble) give the bytes
// scorecard.Encode gives for the whole card. A file written before cards
// were stored record by record has every card whole and no card_records
// bucket (created at the first writable Open): it is read as it is.
//
// Scorecards, checkpoints and waiters follow the log at publications
// (publish.go); the stored cards may lag the log (cards_seq, projection.go).
//
// The Merkle leaf of an entry is 0x01 (leaf format version) || envelope;
// its hash is SHA-256(0x00 || leaf). A checkpoint is a C2SP signed note:
// origin, tree size, base64 root, and "sal-scorecards-v2 sha256:<hex>", the
// digest over every supplier's id and scorecard hash (CardsDigest). A sal
// before cards format 2 wrote "sal-scorecards sha256:<hex>" over each
// card's SHA-256; those checkpoints stay in the file and verify as they
// were made.
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
// # Damaged files
//
// Open checks the file as a bbolt file before using it, reading only, and
// refuses a damaged one with an error wrapping ErrDamaged (a *DamagedError
// naming the file and the problem, saying nothing was changed, pointing to
// `sal verify` and to restoring from a backup or a replica). It never
// changes, truncates or replaces such a file, and never creates a fresh
// ledger in its place. It checks:
//
//   - both meta pages (bbolt pages 0 and 1): magic, version, checksum, page
//     id and type. bbolt itself falls back silently to the older meta page
//     when the newer is invalid, which would drop the last committed batch
//     — one the broker has already been told is stored — so a ledger
//     refuses either being invalid. A meta page cannot be torn by a crash:
//     it is written in one 4 KiB write, the part that matters in its first
//     512-byte sector;
//   - the file's length: at least the pages its last commit uses (bbolt
//     grows the file before writing past its end), so a truncated file is
//     refused before bbolt maps pages that are not there;
//   - for files up to FullCheckLimit (2 GiB), every page: a read of every
//     key and value of every bucket, then bbolt's own consistency check
//     (every page reachable once or free, keys in order, a sane freelist).
//     bbolt panics on pages it cannot make sense of; Open recovers such
//     panics, and faults reading the mapped file, into ErrDamaged. This
//     costs a read of the file: about 0.1 s for 200,000 events (320 MiB)
//     with the file in the page cache. Larger files are opened on the first
//     two checks only; `sal verify` reads everything.
//
// bbolt keeps no checksums of its data pages, so a flipped byte inside a
// stored value leaves a sound bbolt file: that is content damage, found by
// Verify (the hash chain, signatures), not by Open.
//
// An empty file (0 bytes) is damage too. bbolt would silently initialize
// it as a new database, which for a ledger that once held data is a silent
// reset. A new ledger is therefore created whole: written and fsynced as
// "<name>.creating", then linked to its name (and the directory fsynced),
// so a crash during creation leaves no ledger file at all, and an empty or
// short ledger file was truncated or made by something else. (The error
// says so, and that deleting the file is the way to start afresh if it
// never held a ledger.) An empty bbolt database with no buckets at all —
// what an older sal could leave when its first start stopped between
// creating the file and its first commit — is still turned into a ledger:
// there is nothing in it to lose. A bbolt file with other buckets is
// refused as not a ledger file (ErrStoredFormat).
//
// # Full disk
//
// A batch that fails to commit — the disk or quota full (ENOSPC, EDQUOT),
// or any other error — stores nothing: bbolt rolls the transaction back and
// the meta page, written last, still names the previous commit. Append
// returns an error (wrapping ErrNoSpace for a full disk), AppendFailure
// reports it until an Append commits, and an Observer that is also a
// FailureObserver is told. The stream position is not advanced; the caller
// appends the same batch again (broker.Consume does, with backoff).
//
// # Caveats
//
// Only the card buckets may be deleted: RebuildProjections recreates them
// from the events and gives the same bytes. Everything else is the record.
// Long reads (replay, verification) page through the log in short read
// transactions so they never hold one open for long.
package ledger
