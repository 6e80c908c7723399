package scorecard

import (
	"encoding/json"
	"fmt"
	"io"

	gojson "github.com/goccy/go-json"
	"google.golang.org/protobuf/proto"

	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// A card can be stored record by record instead of whole: its frame (the
// supplier's name, the tail of counters and ignored events, and how many
// records each section holds) and, per section, each record's JSON at its
// position in the list. Applying an event then needs only the records the
// event names, read from a Store, and writes back only those: the cost of
// an event and the memory it takes no longer grow with the supplier's
// history. Assemble puts the stored pieces together into exactly the bytes
// Encode gives for the whole card.

// Kind names a kind of record: the five sections of a card, in the order
// the card's JSON lists them, and the assessments within commitments
// (indexed by id, stored inside their commitment's record).
type Kind byte

// The kinds of record.
const (
	KindCommitment Kind = 'c'
	KindBreach     Kind = 'b'
	KindPlan       Kind = 'p'
	KindDispute    Kind = 'd'
	KindReview     Kind = 'r'
	KindAssessment Kind = 'a'
)

// Sections are the kinds stored as records, in the card's order.
func Sections() [5]Kind {
	return [5]Kind{KindCommitment, KindBreach, KindPlan, KindDispute, KindReview}
}

func section(k Kind) int {
	switch k {
	case KindCommitment:
		return 0
	case KindBreach:
		return 1
	case KindPlan:
		return 2
	case KindDispute:
		return 3
	case KindReview:
		return 4
	}
	return -1
}

// sectionField is the JSON field of each section, as Encode writes it.
var sectionField = [5]string{`,"commitments":`, `,"breaches":`, `,"remediation_plans":`, `,"disputes":`, `,"disinvestment_reviews":`}

// Frame is a card without its records.
type Frame struct {
	SupplierID    string    `json:"supplier_id"`
	Name          string    `json:"name"`
	Registered    bool      `json:"registered"`
	RegisteredBy  string    `json:"registered_event,omitempty"`
	Ignored       []Ignored `json:"ignored_events,omitempty"`
	LastSeq       uint64    `json:"last_seq"`
	LastEventTime string    `json:"last_event_time"`
	EventCount    int       `json:"event_count"`
	// Counts is how many records each section holds (Sections order).
	Counts [5]int `json:"counts"`
}

// DecodeFrame reads a frame stored from Writes.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, fmt.Errorf("scorecard: decode frame: %w", err)
	}
	return f, nil
}

// Store is where a partial card finds the records it does not hold.
type Store interface {
	// Position is where the record of kind k with that id sits in its
	// section (for an assessment: where its commitment sits), ok false
	// when the card has none.
	Position(k Kind, id string) (pos int, ok bool, err error)
	// Record is the JSON of the record at pos in section k.
	Record(k Kind, pos int) ([]byte, error)
	// OpenBreaches counts the breaches open against a commitment.
	OpenBreaches(commitmentID string) (int, error)
}

// partial is what a card read record by record knows of the records it
// does not hold.
type partial struct {
	st     Store  // set while ApplyFrom runs
	err    error  // the first error reading from st
	base   [5]int // per section, the records stored before the card was loaded
	pos    map[any]int
	loaded map[loadKey]bool
	// assessed is how many assessments a loaded commitment had stored.
	assessed map[*Commitment]int
}

type loadKey struct {
	k   Kind
	pos int
}

// NewPartial returns the card of a frame with none of its records at
// hand: ApplyFrom reads those an event names from a Store.
func NewPartial(f Frame) *Card {
	c := New(f.SupplierID)
	c.Name, c.Registered, c.RegisteredBy = f.Name, f.Registered, f.RegisteredBy
	c.Ignored, c.LastSeq, c.LastEventTime, c.EventCount = f.Ignored, f.LastSeq, f.LastEventTime, f.EventCount
	c.idx = c.indexed() // empty: filled as records are read
	c.part = &partial{base: f.Counts, pos: map[any]int{}, loaded: map[loadKey]bool{}, assessed: map[*Commitment]int{}}
	return c
}

// ApplyFrom is Apply for a card from NewPartial, reading the records the
// event names from st. An error means st could not be read: the card is
// then in no defined state and must be dropped.
func ApplyFrom(c *Card, st Store, seq uint64, ev *pb.Event, payload proto.Message) error {
	if c.part == nil {
		Apply(c, seq, ev, payload)
		return nil
	}
	c.part.st = st
	Apply(c, seq, ev, payload)
	c.part.st = nil
	if err := c.part.err; err != nil {
		c.part.err = nil
		return fmt.Errorf("scorecard: supplier %s: %w", c.SupplierID, err)
	}
	return nil
}

// find looks up a record the card does not hold: its position, or ok false.
func (c *Card) find(k Kind, id string) (int, bool) {
	p := c.part
	if p == nil || p.st == nil || p.err != nil {
		return 0, false
	}
	pos, ok, err := p.st.Position(k, id)
	if err != nil {
		p.err = err
		return 0, false
	}
	return pos, ok
}

// load reads the record at pos in section k into x, reporting whether it
// did (false when it was read already, or on error).
func (c *Card) load(k Kind, pos int, x any) bool {
	p := c.part
	if p.loaded[loadKey{k, pos}] || p.err != nil {
		return false
	}
	b, err := p.st.Record(k, pos)
	if err == nil {
		err = gojson.Unmarshal(b, x)
	}
	if err != nil {
		p.err = fmt.Errorf("%c record %d: %w", k, pos, err)
		return false
	}
	p.loaded[loadKey{k, pos}] = true
	p.pos[x] = pos
	return true
}

func (c *Card) loadCommitment(pos int) {
	cm := new(Commitment)
	if !c.load(KindCommitment, pos, cm) {
		return
	}
	open, err := c.part.st.OpenBreaches(cm.ID)
	if err != nil {
		c.part.err = err
		return
	}
	c.Commitments = append(c.Commitments, cm)
	c.idx.addCommitment(cm)
	for _, a := range cm.Assessments {
		c.idx.addAssessment(a, cm)
	}
	c.part.assessed[cm] = len(cm.Assessments)
	// += : a breach closed before its commitment was read has already
	// taken itself off.
	c.idx.open[cm.ID] += open
}

func (c *Card) partCommitment(id string) *Commitment {
	if pos, ok := c.find(KindCommitment, id); ok {
		c.loadCommitment(pos)
	}
	return c.idx.commitments[id]
}

func (c *Card) partAssessment(id string) assessed {
	if pos, ok := c.find(KindAssessment, id); ok {
		c.loadCommitment(pos)
	}
	return c.idx.assessments[id]
}

func (c *Card) partBreach(id string) *Breach {
	if pos, ok := c.find(KindBreach, id); ok {
		// Not through addBreach: an open breach stored is already
		// counted in its commitment's stored count.
		if b := new(Breach); c.load(KindBreach, pos, b) {
			c.Breaches = append(c.Breaches, b)
			if _, ok := c.idx.breaches[b.ID]; !ok {
				c.idx.breaches[b.ID] = b
			}
		}
	}
	return c.idx.breaches[id]
}

func (c *Card) partDispute(id string) *Dispute {
	if pos, ok := c.find(KindDispute, id); ok {
		if d := new(Dispute); c.load(KindDispute, pos, d) {
			c.Disputes = append(c.Disputes, d)
			c.idx.addDispute(d)
		}
	}
	return c.idx.disputes[id]
}

func (c *Card) partReview(id string) *Review {
	if pos, ok := c.find(KindReview, id); ok {
		if r := new(Review); c.load(KindReview, pos, r) {
			c.Reviews = append(c.Reviews, r)
			c.idx.addReview(r)
		}
	}
	return c.idx.reviews[id]
}

// Record is one record of a card to store: its JSON at pos in section Kind.
type Record struct {
	Kind Kind
	Pos  int
	JSON []byte
}

// IndexEntry is an id to store in a card's index: the record's position
// (for an assessment, its commitment's). An id already in the index keeps
// its position: the first record of an id is the one found.
type IndexEntry struct {
	Kind Kind
	ID   string
	Pos  int
}

// Writes is what storing a card record by record writes: its frame, the
// records it holds (read or added), the ids it added, and the open
// breaches against each commitment it holds.
type Writes struct {
	Frame   []byte
	Records []Record
	Index   []IndexEntry
	Open    map[string]int
}

// Writes gives what to store for the card: for a partial card the records
// it read or added, for a whole card every record. Like Apply, it must not
// run concurrently with anything else on c.
func (c *Card) Writes() (Writes, error) {
	f := Frame{
		SupplierID: c.SupplierID, Name: c.Name, Registered: c.Registered, RegisteredBy: c.RegisteredBy,
		Ignored: c.Ignored, LastSeq: c.LastSeq, LastEventTime: c.LastEventTime, EventCount: c.EventCount,
	}
	p := c.part
	if p == nil {
		p = &partial{pos: map[any]int{}, assessed: map[*Commitment]int{}}
	}
	var w Writes
	w.Open = make(map[string]int, len(c.Commitments))
	var err error
	add := func(k Kind, x any, id string, fresh int) int {
		if err != nil {
			return fresh
		}
		s := section(k)
		pos, ok := p.pos[x]
		if !ok {
			pos = p.base[s] + fresh
			fresh++
			w.Index = append(w.Index, IndexEntry{k, id, pos})
		}
		b, merr := gojson.Marshal(x)
		if merr != nil {
			err = fmt.Errorf("scorecard: encode %s: %w", c.SupplierID, merr)
		}
		w.Records = append(w.Records, Record{k, pos, b})
		return fresh
	}
	if hasNil(c.Commitments) || hasNil(c.Breaches) || hasNil(c.Plans) || hasNil(c.Disputes) || hasNil(c.Reviews) {
		return Writes{}, fmt.Errorf("scorecard: encode %s: a null record cannot be stored record by record", c.SupplierID)
	}
	fresh := 0
	for _, cm := range c.Commitments {
		fresh = add(KindCommitment, cm, cm.ID, fresh)
		pos := w.Records[len(w.Records)-1].Pos
		for _, a := range cm.Assessments[p.assessed[cm]:] {
			w.Index = append(w.Index, IndexEntry{KindAssessment, a.ID, pos})
		}
		w.Open[cm.ID] = c.openAgainst(cm.ID)
	}
	f.Counts[0] = p.base[0] + fresh
	fresh = 0
	for _, b := range c.Breaches {
		fresh = add(KindBreach, b, b.ID, fresh)
	}
	f.Counts[1] = p.base[1] + fresh
	fresh = 0
	for _, pl := range c.Plans {
		fresh = add(KindPlan, pl, pl.ID, fresh)
	}
	f.Counts[2] = p.base[2] + fresh
	fresh = 0
	for _, d := range c.Disputes {
		fresh = add(KindDispute, d, d.ID, fresh)
	}
	f.Counts[3] = p.base[3] + fresh
	fresh = 0
	for _, r := range c.Reviews {
		fresh = add(KindReview, r, r.ID, fresh)
	}
	f.Counts[4] = p.base[4] + fresh
	if err != nil {
		return Writes{}, err
	}
	if w.Frame, err = json.Marshal(f); err != nil {
		return Writes{}, fmt.Errorf("scorecard: encode %s: %w", c.SupplierID, err)
	}
	return w, nil
}

func hasNil[T any](xs []*T) bool {
	for _, x := range xs {
		if x == nil {
			return true
		}
	}
	return false
}

// openAgainst counts the open breaches against a commitment.
func (c *Card) openAgainst(commitmentID string) int {
	if c.idx != nil {
		return c.idx.open[commitmentID]
	}
	n := 0
	for _, b := range c.Breaches {
		if b.CommitmentID == commitmentID && b.Status == BreachOpen {
			n++
		}
	}
	return n
}

// Assemble writes the JSON of a card stored as frame and records: exactly
// what Encode gives for the whole card. records calls each with the JSON
// of every record of section k, in order, and must give Counts[k] of them.
func Assemble(w io.Writer, f Frame, records func(k Kind, n int, each func([]byte) error) error) error {
	head, err := encodeHead(f.SupplierID, f.Name, f.Registered, f.RegisteredBy)
	if err != nil {
		return err
	}
	tail, err := encodeTail(f.Ignored, f.LastSeq, f.LastEventTime, f.EventCount)
	if err != nil {
		return err
	}
	bw := &errWriter{w: w}
	bw.write(head[:len(head)-1])
	for s, k := range Sections() {
		bw.write([]byte(sectionField[s]))
		bw.write([]byte{'['})
		n := 0
		err := records(k, f.Counts[s], func(b []byte) error {
			if n > 0 {
				bw.write([]byte{','})
			}
			n++
			bw.write(b)
			return bw.err
		})
		if err != nil {
			return fmt.Errorf("scorecard: assemble %s: %w", f.SupplierID, err)
		}
		if n != f.Counts[s] {
			return fmt.Errorf("scorecard: assemble %s: %d %c records, the frame says %d", f.SupplierID, n, k, f.Counts[s])
		}
		bw.write([]byte{']'})
	}
	bw.write([]byte{','})
	bw.write(tail[1:])
	return bw.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
