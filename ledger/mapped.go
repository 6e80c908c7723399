package ledger

import (
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The ledger reads its file through bbolt's memory map. Every page read
// that way stays mapped into the process, counted in its RSS, until the
// map is dropped — which bbolt does only when the file outgrows it. A
// rebuild or a verification reads the whole file, so without a limit the
// process's RSS grows with the ledger: 2,100 MiB at 1,000,000 events
// against 440 at 100,000 in sal bench, nearly all of it the file.
//
// So the ledger watches how much of its mapping is resident and, past a
// budget, tells the kernel it no longer needs the pages it has mapped
// (madvise MADV_DONTNEED on the whole map). The pages stay in the page
// cache — the next read of one maps it again without going to the disk —
// but they are no longer the process's: the kernel can reclaim them
// without unmapping them first, and the RSS stays within the budget plus
// what the process itself allocates. The map is read-only (bbolt writes
// with pwrite), so no page is ever dirty and nothing written is lost.
//
// The release runs inside a read transaction: bbolt remaps only under a
// lock every read transaction holds, so the address range released is
// the map in use and nothing else.

// DefaultMappedResident is how much of the ledger file may stay mapped in
// the process before the ledger releases its mapping.
const DefaultMappedResident = 64 << 20

// mappedPoll is how often the resident size is read. A rebuild reads the
// file at about 1 GB/s, so the budget is overshot by up to about 25 MB.
const mappedPoll = 25 * time.Millisecond

var errReleaseUnsupported = errors.New("ledger: releasing mapped pages is not supported on this system")

// mappedWatch releases the ledger's mapped pages whenever the process's
// file-backed resident memory has grown by more than budget since the
// last release.
type mappedWatch struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
	// releases counts the releases made (tests, sal bench).
	mu       sync.Mutex
	releases int
}

// watchMapped starts the watch; budget ≤ 0 starts nothing. It does
// nothing either where the resident size cannot be read.
func (l *Ledger) watchMapped(budget int64) {
	if budget <= 0 {
		return
	}
	base, err := residentFile()
	if err != nil {
		return
	}
	w := &mappedWatch{stop: make(chan struct{})}
	l.mapped = w
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		t := time.NewTicker(mappedPoll)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			now, err := residentFile()
			if err != nil {
				return
			}
			if now < base {
				// Another mapping was dropped (or released by another
				// ledger in the process): measure from here.
				base = now
			}
			if now-base <= budget {
				continue
			}
			if err := l.ReleaseMapped(); err != nil {
				// Closed under us, or the kernel refused: reading the
				// file does not depend on the release, so stop trying.
				return
			}
			w.mu.Lock()
			w.releases++
			w.mu.Unlock()
			if base, err = residentFile(); err != nil {
				return
			}
		}
	}()
}

// stopMapped ends the watch, before the file is closed.
func (l *Ledger) stopMapped() {
	if l.mapped == nil {
		return
	}
	l.mapped.stopOnce.Do(func() { close(l.mapped.stop) })
	l.mapped.done.Wait()
}

// MappedReleases is how many times the ledger has released its mapped
// pages since it was opened.
func (l *Ledger) MappedReleases() int {
	if l.mapped == nil {
		return 0
	}
	l.mapped.mu.Lock()
	defer l.mapped.mu.Unlock()
	return l.mapped.releases
}

// ReleaseMapped releases the process's mapping of every page of the file
// it has read (the page cache keeps them). Reads go on meanwhile: a page
// released under a reader is mapped again at its next touch.
func (l *Ledger) ReleaseMapped() error {
	err := l.db.View(func(tx *bolt.Tx) error {
		// tx.Size is the file as far as this transaction's meta reaches:
		// never past the map, which covers every page a reader can reach.
		return releaseMapped(l.db.Info().Data, uintptr(tx.Size()))
	})
	if errors.Is(err, errReleaseUnsupported) {
		return nil
	}
	return err
}
