package broker

import (
	"testing"
	"time"
)

// TestByteBudget: a take that does not fit waits until bytes are given
// back; a take larger than the whole budget passes when nothing is held
// (so one huge message never stalls the reader); close releases a waiter
// with false.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	if !b.take(60) {
		t.Fatal("first take refused")
	}
	got := make(chan bool, 1)
	go func() { got <- b.take(50) }()
	select {
	case <-got:
		t.Fatal("a take past the budget did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	b.give(60)
	if ok := <-got; !ok {
		t.Fatal("the waiting take was refused after bytes were given back")
	}
	b.give(50)
	if !b.take(500) {
		t.Fatal("a take larger than the budget was refused with nothing held")
	}
	go func() { got <- b.take(1) }()
	select {
	case <-got:
		t.Fatal("a take with the budget spent did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	b.close()
	if ok := <-got; ok {
		t.Fatal("a take released by close reported success")
	}
	if b.take(1) {
		t.Fatal("take after close succeeded")
	}
}
