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

// Kind names a kind of record: one of the five sections of a card.
// Assessments are stored inside their commitment's record (Store.Holder
// finds it).
type Kind byte

// The kinds of record.
const (
	KindCommitment Kind = 'c'
	KindBreach     Kind = 'b'
	KindPlan       Kind = 'p'
	KindDispute    Kind = 'd'
	KindReview     Kind = 'r'
)

// Sections are the kinds stored as records, in the card's order.
func Sections() [5]Kind {
	return [5]Kind{KindCommitment, KindBreach, KindPlan, KindDispute, KindReview}
}

// SectionOf is k's place in Sections, -1 for no section.
func SectionOf(k Kind) int { return section(k) }

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
	// Record is the stored record of kind k (a section) with that id,
	// ok false when the card has none.
	Record(k Kind, id string) (r Stored, ok bool, err error)
	// Holder is the id of the commitment that holds an assessment, ok
	// false when the card has no such assessment.
	Holder(assessmentID string) (commitmentID string, ok bool, err error)
}

// Stored is a record as a Store keeps it.
type Stored struct {
	Pos  int    // its position in its section
	Open int    // for a commitment, the breaches open against it
	JSON []byte // the record's JSON, as on the card
}

// partial is what a card read record by record knows of the records it
// does not hold.
type partial struct {
	st   Store  // set while ApplyFrom runs
	err  error  // the first error reading from st
	base [5]int // per section, the records stored before the card was loaded
	pos  map[any]int
	// assessed is how many assessments a loaded commitment had stored.
	assessed map[*Commitment]int
}

// NewPartial returns the card of a frame with none of its records at
// hand: ApplyFrom reads those an event names from a Store.
func NewPartial(f Frame) *Card {
	c := New(f.SupplierID)
	c.Name, c.Registered, c.RegisteredBy = f.Name, f.Registered, f.RegisteredBy
	c.Ignored, c.LastSeq, c.LastEventTime, c.EventCount = f.Ignored, f.LastSeq, f.LastEventTime, f.EventCount
	c.idx = c.indexed() // empty: filled as records are read
	c.part = &partial{base: f.Counts, pos: map[any]int{}, assessed: map[*Commitment]int{}}
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

// read reads the stored record of kind k with that id into x, reporting
// whether there is one; an error is kept in the card's partial state.
// Lookups call it only for ids the card's index does not have, so a
// record is read once.
func (c *Card) read(k Kind, id string, x any) (Stored, bool) {
	p := c.part
	if p == nil || p.st == nil || p.err != nil {
		return Stored{}, false
	}
	r, ok, err := p.st.Record(k, id)
	if err == nil && ok && x != nil {
		err = gojson.Unmarshal(r.JSON, x)
	}
	if err != nil {
		p.err = fmt.Errorf("%c record %q: %w", k, id, err)
		return Stored{}, false
	}
	if ok && x != nil {
		p.pos[x] = r.Pos
	}
	return r, ok
}

func (c *Card) partCommitment(id string) *Commitment {
	cm := new(Commitment)
	r, ok := c.read(KindCommitment, id, cm)
	if !ok {
		return nil
	}
	c.Commitments = append(c.Commitments, cm)
	c.idx.addCommitment(cm)
	for _, a := range cm.Assessments {
		c.idx.addAssessment(a, cm)
	}
	c.part.assessed[cm] = len(cm.Assessments)
	// += : a breach closed before its commitment was read has already
	// taken itself off.
	c.idx.open[cm.ID] += r.Open
	return c.idx.commitments[id]
}

func (c *Card) partAssessment(id string) assessed {
	p := c.part
	if p.st == nil || p.err != nil {
		return assessed{}
	}
	cmID, ok, err := p.st.Holder(id)
	if err != nil {
		p.err = fmt.Errorf("holder of assessment %q: %w", id, err)
	}
	if !ok || err != nil {
		return assessed{}
	}
	c.commitment(cmID)
	return c.idx.assessments[id]
}

func (c *Card) partBreach(id string) *Breach {
	// Not through addBreach: an open breach stored is already counted in
	// its commitment's stored count.
	return partRecord(c, KindBreach, id, &c.Breaches, func(b *Breach) {
		if _, ok := c.idx.breaches[b.ID]; !ok {
			c.idx.breaches[b.ID] = b
		}
	})
}

func (c *Card) partDispute(id string) *Dispute {
	return partRecord(c, KindDispute, id, &c.Disputes, c.idx.addDispute)
}

func (c *Card) partReview(id string) *Review {
	return partRecord(c, KindReview, id, &c.Reviews, c.idx.addReview)
}

// partRecord reads the stored record of kind k with that id onto the
// card's list and index, or returns nil if there is none.
func partRecord[T any](c *Card, k Kind, id string, list *[]*T, index func(*T)) *T {
	x := new(T)
	if _, ok := c.read(k, id, x); !ok {
		return nil
	}
	*list = append(*list, x)
	index(x)
	return x
}

// Record is one record of a card to store.
type Record struct {
	Kind Kind
	ID   string
	Stored
}

// Holding says which commitment holds an assessment.
type Holding struct{ AssessmentID, CommitmentID string }

// Writes is what storing a card record by record writes: its frame, the
// records it holds (read or added), and the assessments it added.
type Writes struct {
	Frame   []byte
	Meta    Frame // the frame, not encoded
	Records []Record
	Held    []Holding
}

// Writes gives what to store for the card: for a partial card the records
// it read or added, for a whole card every record. Record ids are unique
// within a section (Apply refuses a second record of an id). Like Apply,
// it must not run concurrently with anything else on c.
func (c *Card) Writes() (Writes, error) {
	if hasNil(c.Commitments) || hasNil(c.Breaches) || hasNil(c.Plans) || hasNil(c.Disputes) || hasNil(c.Reviews) {
		return Writes{}, fmt.Errorf("scorecard: encode %s: a null record cannot be stored record by record", c.SupplierID)
	}
	f := Frame{
		SupplierID: c.SupplierID, Name: c.Name, Registered: c.Registered, RegisteredBy: c.RegisteredBy,
		Ignored: c.Ignored, LastSeq: c.LastSeq, LastEventTime: c.LastEventTime, EventCount: c.EventCount,
	}
	p := c.part
	if p == nil {
		p = &partial{pos: map[any]int{}, assessed: map[*Commitment]int{}}
	}
	w := Writes{Records: make([]Record, 0, len(c.Commitments)+len(c.Breaches)+len(c.Plans)+len(c.Disputes)+len(c.Reviews))}
	var err error
	fresh := [5]int{}
	add := func(k Kind, x any, id string, open int) int {
		s := section(k)
		pos, ok := p.pos[x]
		if !ok {
			pos = p.base[s] + fresh[s]
			fresh[s]++
		}
		b, merr := gojson.Marshal(x)
		if merr != nil && err == nil {
			err = fmt.Errorf("scorecard: encode %s: %w", c.SupplierID, merr)
		}
		w.Records = append(w.Records, Record{k, id, Stored{Pos: pos, Open: open, JSON: b}})
		return pos
	}
	for _, cm := range c.Commitments {
		add(KindCommitment, cm, cm.ID, c.openAgainst(cm.ID))
		for _, a := range cm.Assessments[p.assessed[cm]:] {
			w.Held = append(w.Held, Holding{a.ID, cm.ID})
		}
	}
	for _, b := range c.Breaches {
		add(KindBreach, b, b.ID, 0)
	}
	for _, pl := range c.Plans {
		add(KindPlan, pl, pl.ID, 0)
	}
	for _, d := range c.Disputes {
		add(KindDispute, d, d.ID, 0)
	}
	for _, r := range c.Reviews {
		add(KindReview, r, r.ID, 0)
	}
	for s := range f.Counts {
		f.Counts[s] = p.base[s] + fresh[s]
	}
	if err != nil {
		return Writes{}, err
	}
	w.Meta = f
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
