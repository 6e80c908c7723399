package scorecard

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	gojson "github.com/goccy/go-json"
)

// A card's hash is what a checkpoint commits to for that card (format 2
// of the checkpoints' scorecards line). It is built from the same bytes
// as the card's JSON, but so that a change to one record is hashed again
// without the rest of the card:
//
//	leaf    = SHA-256(0x00 || the record's JSON)
//	chunk   = SHA-256(0x01 || the leaves of 64 consecutive records, the
//	          last chunk of a section holding the rest)
//	section = SHA-256(0x02 || n(8) || the hash of every chunk of its n
//	          records, in order)
//	          (SHA-256(0x03) for a section that is null, not a list)
//	card    = SHA-256("sal/scorecard/v2\n" || len(head)(4) || head ||
//	          len(tail)(4) || tail || the five sections' hashes)
//
// where head and tail are the JSON objects of the card's fields before its
// first section and after its last (the supplier; the ignored events and
// counters), each as its own object: head is the card's JSON up to the
// comma before its first section, closed with "}"; tail is "{" and the
// card's JSON after the comma that follows its last section. Lengths and
// counts are big-endian, sections in the card's order. A ledger
// keeps each section's leaves beside its records, so publishing a card
// hashes the records an event changed and 32 bytes for each of the rest,
// not the whole card; a card's JSON alone gives the same hash (HashJSON).

// HashChunk is how many records' leaves make one chunk.
const HashChunk = 64

const hashDomain = "sal/scorecard/v2\n"

// Leaf is the leaf hash of a record's JSON.
func Leaf(recordJSON []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(recordJSON)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// SectionHash is the hash of a section from its records' leaves, 32 bytes
// each, in order.
func SectionHash(leaves []byte) ([32]byte, error) {
	if len(leaves)%32 != 0 {
		return [32]byte{}, fmt.Errorf("scorecard: section leaves of %d bytes, not a multiple of 32", len(leaves))
	}
	h := sha256.New()
	var n [9]byte
	n[0] = 2
	binary.BigEndian.PutUint64(n[1:], uint64(len(leaves)/32))
	h.Write(n[:])
	var chunk [32]byte
	for len(leaves) > 0 {
		part := leaves[:min(len(leaves), HashChunk*32)]
		leaves = leaves[len(part):]
		c := sha256.New()
		c.Write([]byte{1})
		c.Write(part)
		h.Write(c.Sum(chunk[:0]))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

// nullSection is the hash of a section that is null.
var nullSection = sha256.Sum256([]byte{3})

// HashFrame is the hash of a card from its frame and its five sections'
// hashes (Sections order).
func HashFrame(f Frame, sections [5][32]byte) ([32]byte, error) {
	head, err := encodeHead(f.SupplierID, f.Name, f.Registered, f.RegisteredBy)
	if err != nil {
		return [32]byte{}, err
	}
	tail, err := encodeTail(f.Ignored, f.LastSeq, f.LastEventTime, f.EventCount)
	if err != nil {
		return [32]byte{}, err
	}
	return hashParts(head, tail, sections), nil
}

// frameOf is the frame of a card's fields outside its records (Counts
// left out: the hash does not read them).
func frameOf(c *Card) Frame {
	return Frame{SupplierID: c.SupplierID, Name: c.Name, Registered: c.Registered, RegisteredBy: c.RegisteredBy,
		Ignored: c.Ignored, LastSeq: c.LastSeq, LastEventTime: c.LastEventTime, EventCount: c.EventCount}
}

func hashParts(head, tail []byte, sections [5][32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(head)))
	h.Write(n[:])
	h.Write(head)
	binary.BigEndian.PutUint32(n[:], uint32(len(tail)))
	h.Write(n[:])
	h.Write(tail)
	for _, s := range sections {
		h.Write(s[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Hash is the hash of a whole card (see above). Like Encode, whose record
// encodings it shares, it hashes again only the records changed since it
// last ran, and must not run concurrently with anything else on c.
func Hash(c *Card) ([32]byte, error) {
	if c.part != nil {
		return [32]byte{}, fmt.Errorf("scorecard: hash %s: a partial card is hashed from its stored sections", c.SupplierID)
	}
	if c.encoded == nil {
		c.encoded = map[any][]byte{}
	}
	if c.leaves == nil {
		c.leaves = map[any][32]byte{}
	}
	var s [5][32]byte
	var err error
	s[0], err = hashSection(c, c.Commitments)
	if err == nil {
		s[1], err = hashSection(c, c.Breaches)
	}
	if err == nil {
		s[2], err = hashSection(c, c.Plans)
	}
	if err == nil {
		s[3], err = hashSection(c, c.Disputes)
	}
	if err == nil {
		s[4], err = hashSection(c, c.Reviews)
	}
	if err != nil {
		return [32]byte{}, fmt.Errorf("scorecard: hash %s: %w", c.SupplierID, err)
	}
	return HashFrame(frameOf(c), s)
}

func hashSection[T any](c *Card, xs []*T) ([32]byte, error) {
	if xs == nil {
		return nullSection, nil
	}
	leaves := make([]byte, 0, 32*len(xs))
	for _, x := range xs {
		if x == nil {
			leaf := Leaf([]byte("null"))
			leaves = append(leaves, leaf[:]...)
			continue
		}
		leaf, ok := c.leaves[x]
		if !ok {
			b, ok := c.encoded[x]
			if !ok {
				var err error
				if b, err = gojson.Marshal(x); err != nil {
					return [32]byte{}, err
				}
				c.encoded[x] = b
			}
			leaf = Leaf(b)
			c.leaves[x] = leaf
		}
		leaves = append(leaves, leaf[:]...)
	}
	return SectionHash(leaves)
}

// HashJSON is the hash of a card from its JSON, as Encode or Assemble
// write it: the records' bytes are hashed as they are.
func HashJSON(b []byte) ([32]byte, error) {
	var raw struct {
		SupplierID    string            `json:"supplier_id"`
		Name          string            `json:"name"`
		Registered    bool              `json:"registered"`
		RegisteredBy  string            `json:"registered_event"`
		Commitments   []json.RawMessage `json:"commitments"`
		Breaches      []json.RawMessage `json:"breaches"`
		Plans         []json.RawMessage `json:"remediation_plans"`
		Disputes      []json.RawMessage `json:"disputes"`
		Reviews       []json.RawMessage `json:"disinvestment_reviews"`
		Ignored       []Ignored         `json:"ignored_events"`
		LastSeq       uint64            `json:"last_seq"`
		LastEventTime string            `json:"last_event_time"`
		EventCount    int               `json:"event_count"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return [32]byte{}, fmt.Errorf("scorecard: hash: %w", err)
	}
	var s [5][32]byte
	var err error
	for i, sec := range [5][]json.RawMessage{raw.Commitments, raw.Breaches, raw.Plans, raw.Disputes, raw.Reviews} {
		if sec == nil {
			s[i] = nullSection
			continue
		}
		leaves := make([]byte, 0, 32*len(sec))
		for _, r := range sec {
			leaf := Leaf(r)
			leaves = append(leaves, leaf[:]...)
		}
		if s[i], err = SectionHash(leaves); err != nil {
			return [32]byte{}, err
		}
	}
	return HashFrame(Frame{SupplierID: raw.SupplierID, Name: raw.Name, Registered: raw.Registered, RegisteredBy: raw.RegisteredBy,
		Ignored: raw.Ignored, LastSeq: raw.LastSeq, LastEventTime: raw.LastEventTime, EventCount: raw.EventCount}, s)
}

// ErrNoLeaves says a section's stored leaves do not cover its records: the
// card must be hashed whole.
var ErrNoLeaves = errors.New("scorecard: section leaves missing")

// UpdateLeaves gives a section's leaves (32 bytes a record) after the
// records at the given positions (with their JSON) changed, from the
// leaves stored before (nil if none), for a section of n records. It
// fails with ErrNoLeaves when a record is covered by neither.
func UpdateLeaves(stored []byte, n int, changed map[int][]byte) ([]byte, error) {
	if len(stored)%32 != 0 || len(stored)/32 > n {
		return nil, fmt.Errorf("scorecard: stored leaves of %d bytes for a section of %d records", len(stored), n)
	}
	out := make([]byte, 32*n)
	copy(out, stored)
	for pos, b := range changed {
		if pos < 0 || pos >= n {
			return nil, fmt.Errorf("scorecard: record at %d of a section of %d", pos, n)
		}
		leaf := Leaf(b)
		copy(out[32*pos:], leaf[:])
	}
	for pos := len(stored) / 32; pos < n; pos++ {
		if _, ok := changed[pos]; !ok {
			return nil, ErrNoLeaves
		}
	}
	return out, nil
}
