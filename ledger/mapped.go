package ledger

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The ledger reads its file through bbolt's memory map. Every page read
// that way stays mapped into the process, counted in its RSS, until the
// map is dropped — which bbolt does only when the file outgrows it. A
// rebuild or a verification reads the whole file, so without a limit the
// process's RSS grows with the ledger: 2,100 MiB at 1,000,000 events
// against about 400 at 100,000 in sal bench, nearly all of it the file.
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

// mappedPoll is how often the resident size is read (from
// /proc/self/statm, about 13 µs a reading, measured alone). In an ingest
// of 1,000,000 events the appender's reads of the scorecards' records map
// the file at several GB/s: polled every 25 ms, the file-backed RSS
// reached 267 MB; every 5 ms, 244 MB (hence mappedTick).
const mappedPoll = 5 * time.Millisecond

var errReleaseUnsupported = errors.New("ledger: releasing mapped pages is not supported on this system")

// mappedTickEvery is how many reads or puts of the file go between two
// readings of the resident size by the goroutine doing them (mappedTick):
// a reading takes about 13 µs. Two alternating pairs of sal bench at
// 1,000,000 events, 1,024 against 256: ingest 19,579 / 22,376 events/s
// against 19,027 / 18,515, rebuild 353,049 / 371,023 against 281,800 /
// 318,226, peak RSS 541 / 547 MiB against 558 / 556.
const mappedTickEvery = 1024

// mappedWatch releases the ledger's mapped pages whenever the process's
// file-backed resident memory has grown by more than budget since the
// last release. Its goroutine reads the size every mappedPoll; the
// appender, the writers and the card readers read it every
// mappedTickEvery reads or puts (mappedTick) and, past the budget, wake
// the goroutine: an ingest of 1,000,000 events maps the file at several
// GB/s, and with both cores busy, polling alone let the map reach 244 MB
// past the last release (108 MB with readings every 256 reads). The release
// itself (2-8 ms to unmap 60-230 MB in the runs logged) is left to the
// goroutine, so the appender does not wait for it.
type mappedWatch struct {
	budget   int64
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
	kick     chan struct{} // the budget is passed: release now
	ticks    atomic.Uint32

	mu       sync.Mutex
	base     int64 // file-backed resident bytes after the last release
	failed   bool  // a reading or a release failed: stop trying
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
	w := &mappedWatch{budget: budget, base: base, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
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
			case <-w.kick:
			}
			if !w.release(l) {
				return
			}
		}
	}()
}

// mappedTick is called by the ledger's goroutines after each read or put
// of the file.
func (l *Ledger) mappedTick() {
	w := l.mapped
	if w == nil || w.ticks.Add(1)%mappedTickEvery != 0 {
		return
	}
	if !w.mu.TryLock() {
		return // a release is under way
	}
	over := !w.failed && w.over()
	w.mu.Unlock()
	if over {
		select {
		case w.kick <- struct{}{}:
		default: // already woken
		}
	}
}

// over reports whether the mapped pages are past the budget (w.mu held).
func (w *mappedWatch) over() bool {
	now, err := residentFile()
	if err != nil {
		w.failed = true
		return false
	}
	if now < w.base {
		// Another mapping was dropped (or released by another ledger in
		// the process): measure from here.
		w.base = now
	}
	return now-w.base > w.budget
}

// release releases the mapped pages if they are past the budget. It
// reports false once a reading or a release has failed (closed under the
// watch, or the kernel refused): reading the file does not depend on the
// release, so the watch stops trying.
func (w *mappedWatch) release(l *Ledger) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed || !w.over() {
		return !w.failed
	}
	if err := l.ReleaseMapped(); err != nil {
		w.failed = true
		return false
	}
	w.releases++
	var err error
	if w.base, err = residentFile(); err != nil {
		w.failed = true
		return false
	}
	return true
}

// stopMapped ends the watch, before the file is closed.
func (l *Ledger) stopMapped() {
	if l.mapped == nil {
		return
	}
	l.mapped.stopOnce.Do(func() { close(l.mapped.stop) })
	l.mapped.done.Wait()
	l.mapped.mu.Lock()
	l.mapped.failed = true // a writer's tick after Close does nothing
	l.mapped.mu.Unlock()
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
