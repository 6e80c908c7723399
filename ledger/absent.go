package ledger

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Keys known to be absent.
//
// Applying an event reads the records it names from card_records, and most
// of those reads find nothing: a new commitment, assessment or breach is
// looked up before it is added (is the id already taken?), and a card's
// first events look for sections it has never had. In sal bench every
// record read of the ingest missed. Every event's id is looked up in
// event_ids too (has it been stored already?), and for a new event that
// misses. A miss still walks the bucket's pages down to the leaf where
// the key would be: a supplier's records are together, so the ingest's
// misses touch the records leaf of every supplier it carries, and event
// ids are random, so they touch every leaf of event_ids. Those are pages
// read through bbolt's map, which the mapped-pages watch (mapped.go)
// hands back past its budget and the next miss maps again, each fault
// mapping its neighbours too.
//
// An absentKeys is a Bloom filter of every key put in one of those buckets
// since the ledger was opened for writing, filled at Open from the
// bucket's keys. A key it has not seen is not in the bucket, so the read
// is answered without the file; a key it may have seen is read as
// before. It only grows: keys are never deleted from either bucket one by
// one, and a rebuild, which replaces card_records, leaves it holding keys
// the new bucket lacks, which costs reads, never a wrong answer (a reader
// still on the old bucket needs them).
//
// It holds bitsPerKey bits a key (1,000,000 keys: 1.5 MB), in parts of
// doubling size, so it need not know how many keys will come: at most
// twice the bits of the keys it holds. Each key sets probes bits of one
// 64-bit word (a blocked filter: one memory read a part to answer). Some
// absent keys are taken for present, and read from the file as before:
// 2.2% in TestAbsentKeysNeverMissesAKeyAdded (327,680 keys, three parts).
type absentKeys struct {
	seed  maphash.Seed
	mu    sync.Mutex // serialises adds; reads take no lock
	parts atomic.Pointer[[]*filterPart]
}

const (
	bitsPerKey   = 12
	probes       = 6
	firstPartCap = 1 << 16 // keys
)

type filterPart struct {
	words []atomic.Uint64
	keys  int // added so far (under absentKeys.mu)
	cap   int
}

func newFilterPart(capacity int) *filterPart {
	n := max((capacity*bitsPerKey+63)/64, 1)
	return &filterPart{words: make([]atomic.Uint64, n), cap: capacity}
}

// locate is the word of p a key with hash h is in, and the bits it sets.
func (p *filterPart) locate(h uint64) (*atomic.Uint64, uint64) {
	hi, _ := bits.Mul64(h, uint64(len(p.words)))
	var mask uint64
	// The probes' bit numbers come from the hash's low bits, six at a time;
	// the word from its high bits (through the multiply above).
	for i := range probes {
		mask |= 1 << ((h >> (6 * i)) & 63)
	}
	return &p.words[hi], mask
}

// add records that key is (or is about to be) in the bucket.
func (a *absentKeys) add(key []byte) {
	if a == nil {
		return
	}
	h := maphash.Bytes(a.seed, key)
	a.mu.Lock()
	defer a.mu.Unlock()
	parts := *a.parts.Load()
	last := parts[len(parts)-1]
	if last.keys >= last.cap {
		last = newFilterPart(2 * last.cap)
		grown := append(append(make([]*filterPart, 0, len(parts)+1), parts...), last)
		a.parts.Store(&grown)
	}
	w, mask := last.locate(h)
	w.Or(mask)
	last.keys++
}

// absent says whether key is certainly not in the bucket. With no
// filter (a ledger opened read-only) nothing is known absent.
func (a *absentKeys) absent(key []byte) bool {
	if a == nil {
		return false
	}
	h := maphash.Bytes(a.seed, key)
	for _, p := range *a.parts.Load() {
		w, mask := p.locate(h)
		if w.Load()&mask == mask {
			return false
		}
	}
	return true
}

// loadAbsentKeys is a filter holding every key of b, and
// room for as many again before it grows a part.
func loadAbsentKeys(b *bolt.Bucket) *absentKeys {
	seed := maphash.MakeSeed()
	var hashes []uint64
	if b != nil {
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			hashes = append(hashes, maphash.Bytes(seed, k))
		}
	}
	a := &absentKeys{seed: seed}
	p := newFilterPart(max(2*len(hashes), firstPartCap))
	for _, h := range hashes {
		w, mask := p.locate(h)
		w.Or(mask)
	}
	p.keys = len(hashes)
	parts := []*filterPart{p}
	a.parts.Store(&parts)
	return a
}
