package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/ledger"
)

// mappedRSS is how many bytes of the file at path are mapped and resident
// in this process, summed over its mappings in /proc/self/smaps.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && len(fields) >= 5 {
			// A mapping's first line: address range, perms, offset,
			// device, inode and (for a file) its path.
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if in && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// mappedLedger is a ledger file of n generated events, opened with opts.
func mappedLedger(t *testing.T, n int, opts ledger.Options) *ledger.Ledger {
	t.Helper()
	k := bench.DeterministicKeys("mapped")
	evs, err := bench.Events(k, n)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	opts.Now, opts.NoSync = func() time.Time { return now }, true
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), k.Root.Public().(ed25519.PublicKey), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := 0; i < n; i += 1000 {
		if _, err := l.Append(context.Background(), evs[i:min(i+1000, n)]); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// scanAll reads every entry and returns how many there were and the last
// entry's hash.
func scanAll(t *testing.T, l *ledger.Ledger) (int, [32]byte) {
	t.Helper()
	var n int
	var last [32]byte
	if err := l.Scan(context.Background(), func(e ledger.Entry) error {
		n, last = n+1, e.Hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, last
}

func TestReleaseMappedDropsTheFilesPagesAndReadsGoOn(t *testing.T) {
	l := mappedLedger(t, 10_000, ledger.Options{MappedResident: -1})
	n, last := scanAll(t, l)
	read := mappedRSS(t, l.Path())
	if read < 4<<20 {
		t.Fatalf("after reading %d entries only %d bytes of the file are mapped; the test needs a file read through its map", n, read)
	}
	if err := l.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	if got := mappedRSS(t, l.Path()); got != 0 {
		t.Fatalf("after the release %d bytes of the file are still mapped (%d before)", got, read)
	}
	n2, last2 := scanAll(t, l)
	if n2 != n || last2 != last {
		t.Fatalf("read again after the release: %d entries ending %x, before %d ending %x", n2, last2, n, last)
	}
	if l.MappedReleases() != 0 {
		t.Fatalf("a ledger opened with MappedResident -1 watched its map: %d releases", l.MappedReleases())
	}
}

func TestLedgerKeepsItsMappedPagesWithinTheBudget(t *testing.T) {
	const budget = 1 << 20
	l := mappedLedger(t, 10_000, ledger.Options{MappedResident: budget})
	scanAll(t, l)
	// The watch reads the resident size every few milliseconds; give it
	// (generously) the time to see the scan.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rss := mappedRSS(t, l.Path())
		if l.MappedReleases() > 0 && rss <= budget {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reading the whole file, %d bytes of it mapped and %d releases; the budget is %d", rss, l.MappedReleases(), budget)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The watch releases the map while writers are in the middle of their
// transactions (they wake it past the budget): what they write must not
// change.
func TestReleasingInTheMiddleOfWritesChangesNothing(t *testing.T) {
	const n = 10_000
	kept := mappedLedger(t, n, ledger.Options{MappedResident: -1})
	released := mappedLedger(t, n, ledger.Options{MappedResident: 1 << 12})
	for _, l := range []*ledger.Ledger{kept, released} {
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := l.RebuildProjections(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, err := l.Verify(context.Background()); err != nil || got != n {
			t.Fatalf("verify: %d entries, %v", got, err)
		}
	}
	if released.MappedReleases() == 0 {
		t.Fatal("a ledger with a budget of 4 KiB appended, flushed and rebuilt without releasing its map")
	}
	for _, id := range bench.SupplierIDs(n) {
		a, err := kept.Scorecard(id)
		if err != nil {
			t.Fatal(err)
		}
		b, err := released.Scorecard(id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("scorecard %s differs when the map was released during the writes:\n%s\n%s", id, a, b)
		}
	}
	ka, kh, _ := kept.Head()
	ra, rh, _ := released.Head()
	if ka != ra || kh != rh {
		t.Fatalf("heads differ: %d %x against %d %x", ka, kh, ra, rh)
	}
}
