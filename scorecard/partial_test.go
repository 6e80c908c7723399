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
	t     *testing.T
	frame scorecard.Frame
	recs  map[scorecard.Kind][][]byte
	index map[string]int
	open  map[string]int
}

func newMemStore(t *testing.T, supplier string) *memStore {
	return &memStore{t: t, frame: scorecard.Frame{SupplierID: supplier}, recs: map[scorecard.Kind][][]byte{}, index: map[string]int{}, open: map[string]int{}}
}

func (m *memStore) Position(k scorecard.Kind, id string) (int, bool, error) {
	pos, ok := m.index[string(k)+id]
	return pos, ok, nil
}

func (m *memStore) Record(k scorecard.Kind, pos int) ([]byte, error) {
	if pos >= len(m.recs[k]) {
		return nil, fmt.Errorf("no %c record %d", k, pos)
	}
	return m.recs[k][pos], nil
}

func (m *memStore) OpenBreaches(id string) (int, error) { return m.open[id], nil }

// write stores what a card gives to write, checking that new records come
// in order after the stored ones.
func (m *memStore) write(w scorecard.Writes) {
	m.t.Helper()
	f, err := scorecard.DecodeFrame(w.Frame)
	if err != nil {
		m.t.Fatal(err)
	}
	for _, r := range w.Records {
		switch n := len(m.recs[r.Kind]); {
		case r.Pos < n:
			m.recs[r.Kind][r.Pos] = r.JSON
		case r.Pos == n:
			m.recs[r.Kind] = append(m.recs[r.Kind], r.JSON)
		default:
			m.t.Fatalf("%c record at %d, %d stored", r.Kind, r.Pos, n)
		}
	}
	for _, e := range w.Index {
		if _, ok := m.index[string(e.Kind)+e.ID]; !ok {
			m.index[string(e.Kind)+e.ID] = e.Pos
		}
	}
	for id, n := range w.Open {
		m.open[id] = n
	}
	for s, k := range scorecard.Sections() {
		if f.Counts[s] != len(m.recs[k]) {
			m.t.Fatalf("frame counts %d %c records, %d stored", f.Counts[s], k, len(m.recs[k]))
		}
	}
	m.frame = f
}

func (m *memStore) assemble() []byte {
	var buf bytes.Buffer
	err := scorecard.Assemble(&buf, m.frame, func(k scorecard.Kind, n int, each func([]byte) error) error {
		for _, b := range m.recs[k][:n] {
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
		if fmt.Sprint(split.index) != fmt.Sprint(st.index) || fmt.Sprint(split.open) != fmt.Sprint(st.open) {
			t.Fatalf("seed %d: index of the split card differs from the one kept record by record\n split %v %v\n  kept %v %v", seed, split.index, split.open, st.index, st.open)
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

func (b brokenStore) Record(k scorecard.Kind, pos int) ([]byte, error) {
	return nil, fmt.Errorf("disk on fire")
}
