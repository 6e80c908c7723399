package scorecard_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/scorecard"
)

// memStore keeps a card record by record in memory, as the ledger keeps
// it in bbolt.
type memStore struct {
	t       *testing.T
	frame   scorecard.Frame
	recs    map[string]scorecard.Stored // kind and id
	holders map[string]string
}

func newMemStore(t *testing.T, supplier string) *memStore {
	return &memStore{t: t, frame: scorecard.Frame{SupplierID: supplier}, recs: map[string]scorecard.Stored{}, holders: map[string]string{}}
}

func (m *memStore) Record(k scorecard.Kind, id string) (scorecard.Stored, bool, error) {
	r, ok := m.recs[string(k)+id]
	return r, ok, nil
}

func (m *memStore) Holder(id string) (string, bool, error) {
	cm, ok := m.holders[id]
	return cm, ok, nil
}

// write stores what a card gives to write, checking that every record
// keeps its position and that the frame counts them.
func (m *memStore) write(w scorecard.Writes) {
	m.t.Helper()
	f, err := scorecard.DecodeFrame(w.Frame)
	if err != nil {
		m.t.Fatal(err)
	}
	for _, r := range w.Records {
		if old, ok := m.recs[string(r.Kind)+r.ID]; ok && old.Pos != r.Pos {
			m.t.Fatalf("%c record %s moved from %d to %d", r.Kind, r.ID, old.Pos, r.Pos)
		}
		m.recs[string(r.Kind)+r.ID] = r.Stored
	}
	for _, h := range w.Held {
		m.holders[h.AssessmentID] = h.CommitmentID
	}
	m.frame = f
	m.assemble()
}

// sections is the stored records of each section in order, checking that
// their positions are those the frame counts.
func (m *memStore) sections() map[scorecard.Kind][][]byte {
	m.t.Helper()
	out := map[scorecard.Kind][][]byte{}
	for s, k := range scorecard.Sections() {
		out[k] = make([][]byte, m.frame.Counts[s])
	}
	for key, r := range m.recs {
		k := scorecard.Kind(key[0])
		if r.Pos >= len(out[k]) || out[k][r.Pos] != nil {
			m.t.Fatalf("%c record %s at %d: the frame counts %d, or two are there", k, key[1:], r.Pos, len(out[k]))
		}
		out[k][r.Pos] = r.JSON
	}
	return out
}

func (m *memStore) assemble() []byte {
	m.t.Helper()
	secs := m.sections()
	var buf bytes.Buffer
	err := scorecard.Assemble(&buf, m.frame, func(k scorecard.Kind, n int, each func([]byte) error) error {
		for _, b := range secs[k][:n] {
			if b == nil {
				return fmt.Errorf("a %c record is missing", k)
			}
			if err := each(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPartialCardAppliesLikeWholeCard: a card kept whole in memory and the
// same card kept record by record — applied on with only the records each
// event names read back, written back at random points — assemble to the
// same bytes at every write-back, over long random histories with every
// event type, replays and unknown references. The whole card split into
// records assembles to the same bytes too.
func TestPartialCardAppliesLikeWholeCard(t *testing.T) {
	for seed := range uint64(30) {
		h := newHistory(seed)
		points := rand.New(rand.NewPCG(seed, 17))
		whole := scorecard.New("acme")
		st := newMemStore(t, "acme")
		part := scorecard.NewPartial(st.frame)
		var sent []proto.Message
		for i := range 600 {
			p := h.next(i)
			if len(sent) > 0 && points.IntN(10) == 0 {
				p = sent[points.IntN(len(sent))]
			}
			sent = append(sent, p)
			apply(whole, fmt.Sprint("e", i), p)
			ev := eventFor(fmt.Sprint("e", i))
			if err := scorecard.ApplyFrom(part, st, uint64(part.EventCount+1), ev, p); err != nil {
				t.Fatal(err)
			}
			if points.IntN(4) != 0 && i != 599 {
				continue
			}
			w, err := part.Writes()
			if err != nil {
				t.Fatal(err)
			}
			st.write(w)
			want, err := scorecard.Encode(whole)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.assemble(); !bytes.Equal(got, want) {
				t.Fatalf("seed %d, event %d (%T): card kept record by record differs from the whole card\n got %s\nwant %s", seed, i, p, got, want)
			}
			part = scorecard.NewPartial(st.frame)
		}
		split := newMemStore(t, "acme")
		w, err := whole.Writes()
		if err != nil {
			t.Fatal(err)
		}
		split.write(w)
		if want, _ := scorecard.Encode(whole); !bytes.Equal(split.assemble(), want) {
			t.Fatalf("seed %d: whole card split into records assembles to other bytes", seed)
		}
		if fmt.Sprint(split.recs) != fmt.Sprint(st.recs) || fmt.Sprint(split.holders) != fmt.Sprint(st.holders) {
			t.Fatalf("seed %d: the split card's records differ from those kept record by record", seed)
		}
	}
}

// TestPartialCardStoreFailure: a store that cannot be read fails the event
// with its error instead of applying it to a card missing records.
func TestPartialCardStoreFailure(t *testing.T) {
	st := newMemStore(t, "acme")
	c := scorecard.New("acme")
	h := newHistory(1)
	for i := range 50 {
		apply(c, fmt.Sprint("e", i), h.next(i))
	}
	w, err := c.Writes()
	if err != nil {
		t.Fatal(err)
	}
	st.write(w)
	part := scorecard.NewPartial(st.frame)
	broken := brokenStore{st}
	err = scorecard.ApplyFrom(part, broken, 51, eventFor("e51"), h.next(51))
	for i := 52; err == nil && i < 100; i++ {
		err = scorecard.ApplyFrom(scorecard.NewPartial(st.frame), broken, uint64(i), eventFor(fmt.Sprint("e", i)), h.next(i))
	}
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk on fire")) {
		t.Fatalf("ApplyFrom with a failing store: %v, want its error", err)
	}
}

type brokenStore struct{ *memStore }

func (b brokenStore) Record(scorecard.Kind, string) (scorecard.Stored, bool, error) {
	return scorecard.Stored{}, false, fmt.Errorf("disk on fire")
}
