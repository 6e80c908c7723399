package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/scorecard"
)

const formatVersion = "1"

// entryLabel is the domain-separation prefix of the hash chain.
const entryLabel = "sal/entry/v1\n"

// MaxClockSkew is how far in the future an event may claim to have occurred,
// relative to the ledger's clock, before it is quarantined.
const MaxClockSkew = 5 * time.Minute

var (
	bucketMeta       = []byte("meta")
	bucketEvents     = []byte("events")
	bucketEventIDs   = []byte("event_ids")
	bucketQuarantine = []byte("quarantine")
	bucketQDigests   = []byte("q_digests")
	bucketQEventIDs  = []byte("q_event_ids")
	bucketRegistry   = []byte("registry")

	keyFormat = []byte("format")
	// keyCardsFormat is the CardsFormat of the stored card digests; a
	// file without it was written by a sal that hashed cards as format 1.
	keyCardsFormat = []byte("cards_format")
	keyRootKeyID   = []byte("root_key_id")
	keyHead        = []byte("head")
	keyQHead       = []byte("qhead")
	keyStreamSeq   = []byte("stream_seq")
)

// Errors callers branch on.
var (
	ErrNotFound     = errors.New("ledger: not found")
	ErrWrongRoot    = errors.New("ledger: file trusts another registry root key")
	ErrChainBroken  = errors.New("ledger: hash chain broken")
	ErrClosed       = errors.New("ledger: closed")
	ErrQuarantined  = errors.New("ledger: event quarantined")
	ErrFutureEvent  = errors.New("ledger: event occurred in the future")
	ErrIDReused     = errors.New("ledger: event id reused with different content")
	ErrBadEntry     = errors.New("ledger: stored entry malformed")
	ErrStoredFormat = errors.New("ledger: unsupported file format")
)

// Result says what became of one appended message.
type Result struct {
	EventID     string `json:"event_id,omitempty"`
	Seq         uint64 `json:"seq,omitempty"`
	Duplicate   bool   `json:"duplicate,omitempty"`
	Quarantined bool   `json:"quarantined,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Code        string `json:"code,omitempty"` // the quarantine reason's code
	// SupplierID and Type of an event appended or quarantined in this
	// batch, for logs (empty when the envelope did not decode).
	SupplierID string `json:"-"`
	Type       string `json:"-"`
}

// Observer is told about every committed batch. The ledger does not log
// or export metrics itself; a main wires an observer to its exporter.
type Observer interface {
	Batch(results []Result, took time.Duration)
}

// Ledger is an open ledger file. It is safe for concurrent use; appends are
// serialized.
type Ledger struct {
	db  *bolt.DB
	now func() time.Time

	appendMu sync.Mutex // serializes Append and RebuildProjections
	reg      *keys.Registry
	// regSnap is reg as of the last commit, for Prepare (which holds no
	// lock). A registry stored there is never changed again: appends
	// change a clone.
	regSnap atomic.Pointer[keys.Registry]
	// rebuildChunk, if set, replaces the rebuildChunk bound, and
	// rebuildStaged, if set, is called after each chunk is staged (tests).
	rebuildChunk  int
	rebuildStaged func()
	// flushPart, if set, replaces the flushPart bound, and partWritten,
	// if set, is called after each part of a flush commits (tests).
	flushPart   int
	partWritten func(last bool)
	// pending are the published cards changed since they were last
	// written to the file (see projection.go).
	pending pendingCards
	// unindexed are the entries not yet in the event_ids and
	// supplier_events buckets (ids.go), changed under pending.mu.
	unindexed *unindexed
	indexing  indexing
	// absentRecords and absentIDs know keys card_records and event_ids
	// have never held (absent.go); nil when read-only.
	absentRecords, absentIDs *absentKeys
	// Publication (see publish.go), guarded by appendMu: the cards changed
	// and the results of batches committed since the last publication.
	dirty       map[string]*scorecard.Card
	unpublished []Result
	lastPublish time.Time
	published   atomic.Uint64 // the head at the last publication
	// announcedQ is the quarantine head at the last publication: Wait
	// answers from the file for quarantine records up to it only, so
	// whoever it answers finds the batch counted (Observer) too.
	announcedQ atomic.Uint64
	broken     error // set when dirty cards could not be restored

	mapped *mappedWatch // nil: mapped pages not watched (mapped.go)

	cp  *Checkpointer // nil: no checkpoints (tools that only read)
	obs Observer

	failMu  sync.Mutex
	failure error // of the last Append, nil once one commits

	mu      sync.Mutex
	waiters map[string][]chan Result
	updated chan struct{} // closed and replaced after every commit
	closed  bool
}

// Options tune Open.
type Options struct {
	// Now is the ledger's clock, used for appended_at and the future-event
	// check. Default time.Now.
	Now func() time.Time
	// NoSync skips fsync on commit. Only benchmarks of the raw cost set it.
	NoSync bool
	// Checkpoints, when set, signs a checkpoint at every publication
	// (see publish.go).
	Checkpoints *Checkpointer
	// ReadOnly opens an existing file for reading only (auditing, replay,
	// export); appends fail.
	ReadOnly bool
	// Observer, when set, is told about every committed batch.
	Observer Observer
	// Logger receives what Open does beyond opening: bringing an older
	// sal's file up to date. Default: discard.
	Logger *slog.Logger
	// MappedResident is how many bytes of the file, read through bbolt's
	// memory map, may stay mapped in the process before the ledger
	// releases them to the page cache (mapped.go). Zero means
	// DefaultMappedResident; negative, never release.
	MappedResident int64
}

// Open opens (creating if needed) the ledger file at path, trusting the
// registry root key root. A file created for another root is refused.
//
// Before anything else, Open checks the file as a bbolt file, reading it
// only: both meta pages valid, the file as long as its last commit needs,
// and (up to FullCheckLimit) every page readable and consistent. A file
// that fails is refused with an error wrapping ErrDamaged, and is neither
// changed nor replaced: an empty file included (see "Damaged files" in
// doc.go). The ledger's content — hash chain, signatures — is Verify's job.
func Open(path string, root ed25519.PublicKey, opts Options) (*Ledger, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rootID := envelope.KeyID(root)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !opts.ReadOnly:
		if err := create(path, opts.NoSync, func(tx *bolt.Tx) error { return initTx(tx, rootID) }); err != nil {
			return nil, fmt.Errorf("ledger: create %s: %w", path, err)
		}
		if fi, err = os.Stat(path); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("ledger: %w", err)
	case fi.Size() == 0:
		return nil, damaged(path, emptyFileProblem)
	}
	if err := checkMeta(path, fi.Size()); err != nil {
		return nil, err
	}
	// Read-only first: a damaged file is refused before bbolt may write
	// to it (opening for writing can already commit).
	db, err := openBolt(path, true, opts.NoSync)
	if err != nil {
		return nil, err
	}
	if fi.Size() <= FullCheckLimit {
		err = guard(func() error { return db.View(checkPages) })
		if err != nil {
			db.Close()
			return nil, damaged(path, "%v", err)
		}
	}
	if !opts.ReadOnly {
		db.Close()
		if db, err = openBolt(path, false, opts.NoSync); err != nil {
			return nil, err
		}
	}
	l := &Ledger{db: db, now: opts.Now, cp: opts.Checkpoints, obs: opts.Observer, waiters: map[string][]chan Result{}, updated: make(chan struct{})}
	l.pending.cards = map[string]*cardUpdate{}
	l.indexing = indexing{at: idMergeAt, inBatch: mergeInBatch, part: indexPart}
	l.dirty = map[string]*scorecard.Card{}
	reg := keys.NewRegistry(root)
	var cardsFormat []byte
	setup := db.Update
	if opts.ReadOnly {
		setup = db.View
	}

	err = guard(func() error {
		return setup(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) == nil {
				empty := true
				_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
				if opts.ReadOnly || !empty {
					return fmt.Errorf("%w: not a ledger file (no meta bucket)", ErrStoredFormat)
				}
				// An empty bbolt file: a first start of an older sal,
				// which did not create the file whole, stopped before its
				// first commit. Nothing was ever stored in it.
				if err := initTx(tx, rootID); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bucketMeta)
			switch f := meta.Get(keyFormat); {
			case string(f) != formatVersion:
				return fmt.Errorf("%w: %q", ErrStoredFormat, f)
			case string(meta.Get(keyRootKeyID)) != rootID:
				return fmt.Errorf("%w: file has %s, given %s", ErrWrongRoot, meta.Get(keyRootKeyID), rootID)
			}
			if !opts.ReadOnly {
				// Buckets added after format 1 was first written.
				if err := createBuckets(tx); err != nil {
					return err
				}
				// A rebuild cut short: the stored cards are the old ones.
				if err := dropStaging(tx); err != nil {
					return err
				}
				// Written before the indexes were written in bulk:
				// they hold every entry.
				if meta.Get(keyIndexedSeq) == nil {
					if err := meta.Put(keyIndexedSeq, u64(readHead(tx).seq)); err != nil {
						return err
					}
				}
			} else if tx.Bucket(bucketRegistry) == nil {
				return fmt.Errorf("%w: no registry bucket", ErrStoredFormat)
			}
			if err := loadRegistry(tx, reg); err != nil {
				return err
			}
			if !opts.ReadOnly {
				l.absentRecords = loadAbsentKeys(tx.Bucket(bucketCardRecords))
				l.absentIDs = loadAbsentKeys(tx.Bucket(bucketEventIDs))
			}
			cardsFormat = bytes.Clone(meta.Get(keyCardsFormat))
			un, err := loadUnindexed(tx)
			l.unindexed = un
			return err
		})
	})
	if err != nil {
		db.Close()
		if errors.Is(err, errUnreadable) {
			return nil, damaged(path, "%v", err)
		}
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	l.reg = reg
	l.regSnap.Store(reg)
	if !opts.ReadOnly && string(cardsFormat) != fmt.Sprint(CardsFormat) {
		// Written by a sal that hashed the cards the older way: its
		// checkpoints stay as they are (Verify checks them the way they
		// were made), and the cards are projected again from the log,
		// with the digests the checkpoints from now on commit to.
		start := time.Now()
		if err := l.RebuildProjections(context.Background()); err != nil {
			db.Close()
			return nil, fmt.Errorf("ledger: open %s: hash the scorecards as format %d: %w", path, CardsFormat, err)
		}
		if opts.Logger != nil {
			head, _, _ := l.Head()
			opts.Logger.Info("scorecards projected again from the log, hashed as cards format 2; earlier checkpoints keep format 1 and verify as made",
				"path", path, "entries", head, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	if err := l.catchUp(opts.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	l.announcedQ.Store(l.storedQHead())
	if opts.MappedResident == 0 {
		opts.MappedResident = DefaultMappedResident
	}
	l.watchMapped(opts.MappedResident)
	return l, nil
}

// initialMmap is how much of the ledger file bbolt maps from the start.
// bbolt maps the file in memory and, as the file grows past the mapping,
// unmaps it and maps it anew, larger (doubling up to 1 GiB): each time the
// next reads of every page fault it in again, and the remap waits for the
// open read transactions. A file growing to 434 MB (200,000 events) was
// remapped on its way there, during the ingest and again during the
// rebuild that stages a second copy of the cards. Mapping 1 GiB from the
// start takes address space, not memory: pages are read in as they are
// touched. sal bench, 200,000 events, alternating runs: ingest
// 27,582/30,438 events/s without, 31,154/31,774 with; rebuild (median of
// three) 384,004/375,355 without, 427,596/439,976 with; query p99 4.2/3.7
// ms without, 2.5/2.5 with.
const initialMmap = 1 << 30

func openBolt(path string, readOnly, noSync bool) (*bolt.DB, error) {
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: noSync, ReadOnly: readOnly, InitialMmapSize: initialMmap})
		return err
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("ledger: open %s: another process holds it (is the system already running?)", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, errUnreadable):
		return nil, damaged(path, "bbolt cannot open it: %v", err)
	case err != nil:
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	return db, nil
}

// initTx writes a new ledger's buckets and metadata.
func initTx(tx *bolt.Tx, rootID string) error {
	if err := createBuckets(tx); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
		return err
	}
	if err := meta.Put(keyCardsFormat, []byte(fmt.Sprint(CardsFormat))); err != nil {
		return err
	}
	return meta.Put(keyRootKeyID, []byte(rootID))
}

func createBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketEvents, bucketEventIDs, bucketQuarantine, bucketQDigests, bucketQEventIDs, bucketRegistry, bucketTree, bucketCheckpoints, bucketSupplierEvents} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	for _, b := range cardBucketNames() {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	return nil
}

func loadRegistry(tx *bolt.Tx, reg *keys.Registry) error {
	return tx.Bucket(bucketRegistry).ForEach(func(k, v []byte) error {
		var a keys.Authority
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("registry entry %s: %w", k, err)
		}
		reg.Restore(a)
		return nil
	})
}

// Flush writes to the file what the ledger holds in memory to write in
// bulk later — the scorecards changed since the last flush, the index
// entries of the last batches — and publishes what is stored but not yet
// published, with a checkpoint at the head: what Close does before it
// closes. Nothing is lost without it (Open replays the log); it moves
// that work to now, out of whatever would next do it (a rebuild begins
// by writing the indexes).
func (l *Ledger) Flush() error {
	if l.db.IsReadOnly() {
		return nil
	}
	return l.publishAll()
}

// Close writes the pending scorecards, closes the file and wakes every
// waiter with ErrClosed.
func (l *Ledger) Close() error {
	var ferr error
	if !l.db.IsReadOnly() {
		ferr = l.publishAll()
	}
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.updated)
	}
	l.mu.Unlock()
	l.stopMapped()
	return errors.Join(ferr, l.db.Close())
}

// Path is the file the ledger lives in.
func (l *Ledger) Path() string { return l.db.Path() }

// Registry returns a copy of the key registry in force at the head.
func (l *Ledger) Registry() *keys.Registry {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.reg.Clone()
}

// Updated returns a channel closed at the next commit (or at Close).
func (l *Ledger) Updated() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.updated
}

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

// EntryHash computes the hash chain link of one entry (see doc.go).
func EntryHash(seq uint64, appendedAt int64, prev [32]byte, env []byte) [32]byte {
	envSum := sha256.Sum256(env)
	h := sha256.New()
	h.Write([]byte(entryLabel))
	h.Write(u64(seq))
	h.Write(u64(uint64(appendedAt)))
	h.Write(prev[:])
	h.Write(envSum[:])
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func encodeEntry(appendedAt int64, prev, hash [32]byte, env []byte) []byte {
	b := make([]byte, 0, 1+8+32+32+len(env))
	b = append(b, 1)
	b = append(b, u64(uint64(appendedAt))...)
	b = append(b, prev[:]...)
	b = append(b, hash[:]...)
	return append(b, env...)
}

// Entry is one stored event.
type Entry struct {
	Seq        uint64
	AppendedAt time.Time
	PrevHash   [32]byte
	Hash       [32]byte
	Envelope   []byte
}

func decodeEntry(seq uint64, v []byte) (Entry, error) {
	env, err := entryEnvelope(seq, v)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Seq: seq, AppendedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()}
	copy(e.PrevHash[:], v[9:41])
	copy(e.Hash[:], v[41:73])
	e.Envelope = bytes.Clone(env)
	return e, nil
}

// entryEnvelope is the envelope inside a stored entry value, not copied:
// valid only as long as v is (within the read transaction).
func entryEnvelope(seq uint64, v []byte) ([]byte, error) {
	if len(v) < 1+8+32+32 || v[0] != 1 {
		return nil, fmt.Errorf("%w: seq %d", ErrBadEntry, seq)
	}
	return v[73:], nil
}

type head struct {
	seq  uint64
	hash [32]byte
}

// StreamPosition is the stream sequence of the last message stored by
// AppendFromStream: the ledger has read the event stream up to there, in
// order. 0 when it has read nothing from the stream.
func (l *Ledger) StreamPosition() (uint64, error) {
	var pos uint64
	err := l.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyStreamSeq); len(v) == 8 {
			pos = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return pos, err
}

func readHead(tx *bolt.Tx) head {
	var h head
	if v := tx.Bucket(bucketMeta).Get(keyHead); len(v) == 40 {
		h.seq = binary.BigEndian.Uint64(v[:8])
		copy(h.hash[:], v[8:])
	}
	return h
}

// Head is the sequence number and entry hash of the last entry.
func (l *Ledger) Head() (seq uint64, hash [32]byte, err error) {
	err = l.db.View(func(tx *bolt.Tx) error {
		h := readHead(tx)
		seq, hash = h.seq, h.hash
		return nil
	})
	return seq, hash, err
}
