package scorecard_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/supplier-accountability/sal/scorecard"
)

// TestHashFollowsTheCardAfterEveryEvent: the hash of a card kept in
// memory, whose records' leaves are kept between events, is the hash of
// its JSON after every event of long random histories (a leaf kept after
// its record changed makes them part), and changes with every event.
func TestHashFollowsTheCardAfterEveryEvent(t *testing.T) {
	for seed := range uint64(10) {
		h := newHistory(seed)
		c := scorecard.New("acme")
		seen := map[[32]byte]int{}
		for i := range 400 {
			p := h.next(i)
			apply(c, fmt.Sprint("e", i), p)
			got, err := scorecard.Hash(c)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(c)
			want, err := scorecard.HashJSON(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("seed %d, event %d (%T): hash of the card kept in memory differs from the hash of its JSON", seed, i, p)
			}
			if j, ok := seen[got]; ok {
				t.Fatalf("seed %d: the card after event %d has the hash it had after event %d", seed, i, j)
			}
			seen[got] = i
		}
	}
}

// TestHashIsTheDocumentedConstruction computes a card's hash as its
// documentation (hash.go) defines it, from the card's JSON, for a card
// whose commitments span three chunks.
func TestHashIsTheDocumentedConstruction(t *testing.T) {
	c := scorecard.New("acme")
	for i, p := range longHistory(130)[:131] {
		apply(c, fmt.Sprint("e", i), p)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var parts map[string]json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		t.Fatal(err)
	}
	sum := func(b ...[]byte) []byte {
		h := sha256.New()
		for _, x := range b {
			h.Write(x)
		}
		return h.Sum(nil)
	}
	section := func(field string) []byte {
		var recs []json.RawMessage
		if err := json.Unmarshal(parts[field], &recs); err != nil {
			t.Fatal(err)
		}
		n := make([]byte, 8)
		binary.BigEndian.PutUint64(n, uint64(len(recs)))
		body := [][]byte{{2}, n}
		for start := 0; start < len(recs); start += 64 {
			chunk := [][]byte{{1}}
			for _, r := range recs[start:min(start+64, len(recs))] {
				chunk = append(chunk, sum([]byte{0}, r))
			}
			body = append(body, sum(chunk...))
		}
		return sum(body...)
	}
	// head: the JSON up to the first section; tail: after the last.
	head := raw[:indexOf(raw, `,"commitments":`)]
	head = append(append([]byte{}, head...), '}')
	tail := append([]byte{'{'}, raw[indexOf(raw, `"ignored_events"`, `"last_seq"`):]...)
	lenOf := func(b []byte) []byte {
		n := make([]byte, 4)
		binary.BigEndian.PutUint32(n, uint32(len(b)))
		return n
	}
	want := sum([]byte("sal/scorecard/v2\n"), lenOf(head), head, lenOf(tail), tail,
		section("commitments"), section("breaches"), section("remediation_plans"), section("disputes"), section("disinvestment_reviews"))
	got, err := scorecard.Hash(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Commitments) != 130 || string(got[:]) != string(want) {
		t.Fatalf("%d commitments; hash %x, the documented construction gives %x", len(c.Commitments), got, want)
	}
}

// indexOf is the index of the first of the markers found in b.
func indexOf(b []byte, markers ...string) int {
	for _, m := range markers {
		for i := 0; i+len(m) <= len(b); i++ {
			if string(b[i:i+len(m)]) == m {
				return i
			}
		}
	}
	panic("marker not found")
}
