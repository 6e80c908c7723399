package ledger_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/ledger"
)

func seqKey(n uint64) []byte {
	return []byte{0, 0, 0, 0, 0, 0, 0, byte(n)}
}

// TestVerifyNamesTheFirstTamperedEntry edits the bbolt file behind the
// ledger's back and checks Verify catches each edit at the right place.
func TestVerifyNamesTheFirstTamperedEntry(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(b *bolt.Bucket) error
		wantSeq uint64
	}{
		{"flip a byte of an event's envelope", func(b *bolt.Bucket) error {
			v := append([]byte{}, b.Get(seqKey(3))...)
			v[len(v)-5] ^= 1
			return b.Put(seqKey(3), v)
		}, 3},
		{"flip a byte of a signature", func(b *bolt.Bucket) error {
			v := append([]byte{}, b.Get(seqKey(2))...)
			v[len(v)-1] ^= 1 // the envelope ends with its signature bytes
			return b.Put(seqKey(2), v)
		}, 2},
		{"flip a byte of a stored hash", func(b *bolt.Bucket) error {
			v := append([]byte{}, b.Get(seqKey(4))...)
			v[50] ^= 1
			return b.Put(seqKey(4), v)
		}, 4},
		{"delete an event", func(b *bolt.Bucket) error { return b.Delete(seqKey(2)) }, 2},
		{"swap two events", func(b *bolt.Bucket) error {
			v2 := append([]byte{}, b.Get(seqKey(2))...)
			v3 := append([]byte{}, b.Get(seqKey(3))...)
			if err := b.Put(seqKey(2), v3); err != nil {
				return err
			}
			return b.Put(seqKey(3), v2)
		}, 2},
		{"truncate the log", func(b *bolt.Bucket) error { return b.Delete(seqKey(4)) }, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustOpenLedger(t)
			f.mustAppend(t, f.supplierEvents(t)...)
			if err := f.l.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(f.path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return c.edit(tx.Bucket([]byte("events"))) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			l, err := ledger.Open(f.path, f.rootKey.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return epoch }})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			f.l = l
			_, err = l.Verify(context.Background())
			var ce *ledger.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a ChainError", err)
			}
			if ce.Seq != c.wantSeq {
				t.Fatalf("Verify blamed seq %d (%v), want %d", ce.Seq, ce.Err, c.wantSeq)
			}
		})
	}
}
