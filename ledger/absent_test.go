package ledger

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Every key added is reported perhaps present, through the parts the
// filter grows, while readers ask concurrently; few keys never added are.
func TestAbsentKeysNeverMissesAKeyAdded(t *testing.T) {
	a := loadAbsentKeys(nil)
	const n = 5 * firstPartCap // grows two parts past the first
	key := func(i int) []byte { return cardKey(fmt.Sprintf("supplier-%05d", i%997), 'c', fmt.Sprintf("cm_%x", i)) }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() { // readers while the filter grows
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a.absent(key(i % n))
			}
		}()
	}
	for i := range n {
		a.add(key(i))
		if i%1000 == 0 && a.absent(key(i/2)) {
			t.Fatalf("key %d, added, reported absent after %d adds", i/2, i+1)
		}
	}
	close(stop)
	wg.Wait()
	if parts := len(*a.parts.Load()); parts < 3 {
		t.Fatalf("%d parts after %d keys: the filter did not grow", parts, n)
	}
	for i := range n {
		if a.absent(key(i)) {
			t.Fatalf("key %d added, reported absent", i)
		}
	}
	taken := 0
	for i := n; i < 2*n; i++ {
		if !a.absent(key(i)) {
			taken++
		}
	}
	if rate := float64(taken) / n; rate > 0.05 {
		t.Fatalf("%.1f%% of keys never added taken for present; the filter is meant to answer most misses", 100*rate)
	}
	t.Logf("%d keys in %d parts; %.2f%% of absent keys taken for present", n, len(*a.parts.Load()), 100*float64(taken)/n)
}

// A filter loaded from a bucket knows every key in it.
func TestAbsentKeysLoadedFromTheBucket(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "records.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 20_000
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketCardRecords)
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(cardKey(fmt.Sprintf("s%d", i%50), 'b', fmt.Sprint(i)), []byte{1}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var a *absentKeys
	if err := db.View(func(tx *bolt.Tx) error { a = loadAbsentKeys(tx.Bucket(bucketCardRecords)); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if k := cardKey(fmt.Sprintf("s%d", i%50), 'b', fmt.Sprint(i)); a.absent(k) {
			t.Fatalf("stored key %q reported absent", k)
		}
	}
	var none *absentKeys // read-only ledgers have none: nothing is known absent
	if none.absent([]byte("anything")) {
		t.Fatal("no filter reported a key absent")
	}
}
