package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/system"
)

// Options configure a run.
type Options struct {
	Events    int           // N, the generated events (default 200,000)
	Dir       string        // scratch directory, new or empty, kept (default: a temporary one, removed after)
	QueryRate int           // scorecard requests per second offered (default 1,000)
	QueryFor  time.Duration // how long queries are offered (default 5s)
	Ceiling   time.Duration // how long each ceiling is measured (default 3s; Ed25519 takes the best of three rounds)
	Progress  io.Writer     // progress lines, or nil
	// HeapProfile, if set, receives a heap profile (pprof) taken when the
	// live heap was at its highest in the run: what was held then, and what
	// had been allocated up to then.
	HeapProfile io.Writer
	// IngestTrace, if set, receives a runtime execution trace of the
	// ingest alone (read it with go tool trace): where the ledger's
	// appender waits, and for what.
	IngestTrace io.Writer
	// PeriodicNATSSync ingests with JetStream\'s periodic fsync instead of
	// an fsync per message (see system.Config.PeriodicNATSSync).
	PeriodicNATSSync bool
	// MappedResident is passed to the ledger (system.Config.LedgerMappedResident):
	// zero its default, negative never release the file's mapped pages.
	MappedResident int64
}

// Figure is one line of the report.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Ratio float64 `json:"ratio,omitempty"` // against Of
	Of    string  `json:"of,omitempty"`
	Note  string  `json:"note,omitempty"`
	// Target is the goal set for this figure on a 2-core machine (issue
	// #6), as text, and Met whether this run reached it; empty and nil
	// for figures without one.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
}

// aim sets f's target: met when ok.
func (f Figure) aim(target string, ok bool) Figure {
	f.Target, f.Met = target, &ok
	return f
}

// Report is a whole run.
type Report struct {
	Events  int      `json:"events"`
	Cores   int      `json:"cores"`
	Figures []Figure `json:"figures"`
}

func (r *Report) add(f Figure) { r.Figures = append(r.Figures, f) }

// Get returns the figure with that name.
func (r *Report) Get(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

func (o *Options) defaults() {
	if o.Events <= 0 {
		o.Events = 200_000
	}
	if o.QueryRate <= 0 {
		o.QueryRate = 1000
	}
	if o.QueryFor <= 0 {
		o.QueryFor = 5 * time.Second
	}
	if o.Ceiling <= 0 {
		o.Ceiling = 3 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Run measures everything in one run on this machine.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	dir := o.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bench: scratch directory: %w", err)
		}
		// The bench writes a ledger and a stream of its own there: in a
		// directory an earlier run (or anything else) left files in, its
		// events would be duplicates of those stored, and nothing of
		// anyone's is to be overwritten.
		if entries, err := os.ReadDir(dir); err != nil {
			return nil, fmt.Errorf("bench: scratch directory: %w", err)
		} else if len(entries) > 0 {
			return nil, fmt.Errorf("bench: scratch directory %s is not empty (%s, ...): give a new or empty one, the bench writes a ledger of its own there", dir, entries[0].Name())
		}
	} else {
		d, err := os.MkdirTemp("", "sal-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	rep := &Report{Events: o.Events, Cores: runtime.GOMAXPROCS(0)}
	mem := watchMemory(ctx, o.HeapProfile != nil)
	say := func(f string, a ...any) { fmt.Fprintf(o.Progress, f+"\n", a...) }
	// busy adds how much of the machine a timed phase kept busy: the
	// process's CPU time over the phase's wall time. Near every core, the
	// phase was bound by the cores; well under, by something that runs on
	// one goroutine or waits (an fsync, the next batch).
	busy := func(name string, cpu, wall time.Duration, events uint64, who string) {
		if cpu <= 0 || wall <= 0 {
			return // CPU time not read on this system
		}
		cores := cpu.Seconds() / wall.Seconds()
		rep.add(Figure{Name: name, Value: cores, Unit: "cores", Ratio: cores / float64(rep.Cores), Of: "cores",
			Note: fmt.Sprintf("%.1f µs of CPU an event; user and system time of the whole process (%s), %.2f s over %s", float64(cpu.Microseconds())/float64(events), who, cpu.Seconds(), wall.Round(time.Millisecond))})
	}
	// Each phase starts on a collected heap, so that one phase's garbage
	// (the verifier replays every scorecard in memory) is not collected on
	// the next one's time: in use, verification runs in its own process.
	settle := func() { runtime.GC() }
	// Each phase labels the work it starts (phase=ingest, ...), so that a
	// CPU profile of the whole run can be read one phase at a time
	// (go tool pprof -tagfocus phase=ingest). Goroutines take the label of
	// the phase that started them: the system's (JetStream, the ledger's
	// reader) are started by the ingest and keep its label after it.
	phase := func(name string) {
		mem.next(name)
		pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("phase", name)))
	}
	defer pprof.SetGoroutineLabels(ctx)

	phase("ceilings")
	say("ceilings: Ed25519 verify on %d cores, bbolt batched append, JetStream publish and consume", rep.Cores)
	edRate := ed25519Ceiling(o.Ceiling)
	rep.add(Figure{Name: "ceiling: ed25519 verify, all cores", Value: edRate, Unit: "verifies/s"})
	boltRate, err := boltCeiling(filepath.Join(dir, "ceiling.db"), o.Ceiling)
	if err != nil {
		return nil, err
	}
	rep.add(Figure{Name: "ceiling: bbolt append, 1,000 puts per fsync'd tx", Value: boltRate, Unit: "puts/s"})
	jsN := max(5_000, min(50_000, o.Events/4))
	pubRate, conRate, err := jetstreamCeiling(ctx, filepath.Join(dir, "ceiling-nats"), jsN, true)
	if err != nil {
		return nil, err
	}
	lazyRate, _, err := jetstreamCeiling(ctx, filepath.Join(dir, "ceiling-nats-lazy"), jsN, false)
	if err != nil {
		return nil, err
	}
	rep.add(Figure{Name: "ceiling: JetStream async publish, fsync every message (as run)", Value: pubRate, Unit: "msgs/s", Ratio: pubRate / lazyRate, Of: "periodic fsync", Note: "the cost of never losing an acknowledged event"})
	rep.add(Figure{Name: "ceiling: JetStream async publish, periodic fsync (default)", Value: lazyRate, Unit: "msgs/s"})
	rep.add(Figure{Name: "ceiling: JetStream pull consume", Value: conRate, Unit: "msgs/s"})

	phase("generate")
	say("generating %d signed events into a file", o.Events)
	keys := DeterministicKeys("bench")
	eventsFile := filepath.Join(dir, "events.bin")
	if err := writeEvents(eventsFile, keys, o.Events); err != nil {
		return nil, err
	}

	phase("ingest")
	say("ingest: publishing through NATS JetStream into the ledger")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "keys"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(data, "keys", "registry-root.key"), []byte(hex.EncodeToString(keys.Root.Seed())+"\n"), 0o600); err != nil {
		return nil, err
	}
	sys, err := system.Start(ctx, system.Config{DataDir: data, NoBackgroundEnforcement: true, PeriodicNATSSync: o.PeriodicNATSSync, LedgerMappedResident: o.MappedResident})
	if err != nil {
		return nil, err
	}
	defer sys.Close()
	base, _, err := sys.Ledger.Head()
	if err != nil {
		return nil, err
	}
	msgsBefore, err := broker.LastSeq(ctx, sys.JetStream())
	if err != nil {
		return nil, err
	}
	written := procIO("wchar")
	stopTrace := func() {}
	if o.IngestTrace != nil {
		if err := trace.Start(o.IngestTrace); err != nil {
			return nil, fmt.Errorf("bench: ingest trace: %w", err)
		}
		stopTrace = sync.OnceFunc(trace.Stop)
		defer stopTrace() // should the ingest fail
	}
	cpu := processCPU()
	start := time.Now()
	if err := publishFile(ctx, sys.JetStream(), eventsFile); err != nil {
		return nil, err
	}
	// Done when the last event is published: stored, on its scorecard and
	// under a signed checkpoint.
	want := base + uint64(o.Events)
	for {
		if _, err := sys.Ledger.SignedCheckpoint(want); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	took := time.Since(start)
	cpu = processCPU() - cpu
	stopTrace()
	if q, _ := sys.Ledger.Quarantine(1, 1); len(q) > 0 {
		return nil, fmt.Errorf("bench: an event was quarantined: %s", q[0].Reason)
	}
	ingest := float64(o.Events) / took.Seconds()
	mode := "JetStream fsync per message"
	if o.PeriodicNATSSync {
		mode = "JetStream periodic fsync"
	}
	rep.add(Figure{Name: "ingest: publish → verify → append → tree → checkpoint → project", Value: ingest, Unit: "events/s", Ratio: ingest / edRate, Of: "ed25519 ceiling", Note: mode + ", " + took.Round(time.Millisecond).String()}.aim("ratio ≥ 0.8", ingest/edRate >= 0.8))
	busy("ingest: cores busy", cpu, took, uint64(o.Events), "the JetStream server, the publisher, the ledger")
	if msgs, err := broker.LastSeq(ctx, sys.JetStream()); err == nil && msgs > msgsBefore {
		rep.add(Figure{Name: "ingest: events per JetStream message (group commit)", Value: float64(o.Events) / float64(msgs-msgsBefore), Unit: "events", Note: fmt.Sprintf("%d messages, so %d fsyncs of the stream", msgs-msgsBefore, msgs-msgsBefore)})
	}
	if sizes, err := sys.Ledger.CheckpointSizes(); err == nil {
		rep.add(Figure{Name: "ingest: checkpoints signed (publications)", Value: float64(len(sizes)), Unit: "checkpoints", Note: "one when the reader catches up, else at most every 250 ms"})
	}
	// What the ledger deferred to write in bulk (indexes, cards) is
	// written now, timed apart, so the rebuild does not begin with it.
	start = time.Now()
	if err := sys.Ledger.Flush(); err != nil {
		return nil, err
	}
	rep.add(Figure{Name: "ingest: then writing what it deferred", Value: float64(time.Since(start).Microseconds()) / 1000, Unit: "ms", Note: "index entries and scorecards held in memory to write in bulk; not in the ingest's time (done without it at a later flush, or replayed at Open after a crash)"})
	if w := procIO("wchar"); w > written {
		rep.add(Figure{Name: "ingest: bytes written per event", Value: float64(w-written) / float64(o.Events), Unit: "bytes", Note: "every write of the process (the ledger's pages, JetStream's store), /proc/self/io wchar"})
	}

	// The ceiling again, the system idle: on a shared machine the speed
	// of the cores moves within a run (by a fifth within minutes on the
	// project's machines), and this says by how much it moved around the
	// ingest. The ratios stay against the first measurement.
	phase("ceiling-again")
	say("ceilings: Ed25519 verify again, after the ingest")
	edAgain := ed25519Ceiling(o.Ceiling)
	rep.add(Figure{Name: "ceiling: ed25519 verify, all cores, again after the ingest", Value: edAgain, Unit: "verifies/s", Ratio: edAgain / edRate, Of: "first measurement", Note: fmt.Sprintf("ingest against this one: %.2f; how much the machine's speed moved during the run (the ratios are against the first)", ingest/edAgain)})

	settle()
	phase("rebuild")
	say("rebuild: dropping the scorecards and replaying them from the log, three times")
	// One rebuild of 200,000 events takes under half a second, short
	// enough for a neighbour on a shared machine to move it by a third:
	// the figure is the median of three, with the spread beside it.
	var rates []float64
	cpu, took = processCPU(), 0
	for range 3 {
		start = time.Now()
		if err := sys.Ledger.RebuildProjections(ctx); err != nil {
			return nil, err
		}
		round := time.Since(start)
		took += round
		rates = append(rates, float64(want)/round.Seconds())
	}
	cpu = processCPU() - cpu
	sort.Float64s(rates)
	rb := rates[1]
	rep.add(Figure{Name: "rebuild projections from the log", Value: rb, Unit: "events/s", Note: fmt.Sprintf("median of 3 (%.0f-%.0f)", rates[0], rates[2])}.aim("≥ 500,000 events/s", rb >= 500_000))
	busy("rebuild: cores busy", cpu, took, 3*want, "the three rounds")

	settle()
	phase("verify")
	say("verify: full offline verification")
	root := keys.Root.Public().(ed25519.PublicKey)
	cpu, start = processCPU(), time.Now()
	vr, err := audit.Verify(ctx, sys.Ledger, audit.Trust{RootKey: root, CheckpointKey: sys.CheckpointKey})
	if err != nil {
		return nil, err
	}
	if !vr.OK() {
		return nil, fmt.Errorf("bench: verification failed at %d: %s", vr.Failure.Seq, vr.Failure.Reason)
	}
	took, cpu = time.Since(start), processCPU()-cpu
	vrate := float64(vr.Entries) / took.Seconds()
	rep.add(Figure{Name: "verify: chain, signatures, tree, checkpoints, replayed digests", Value: vrate, Unit: "events/s", Ratio: vrate / edRate, Of: "ed25519 ceiling"}.aim("ratio ≥ 0.8", vrate/edRate >= 0.8))
	busy("verify: cores busy", cpu, took, uint64(vr.Entries), "the verifier")

	settle()
	phase("query")
	say("queries: scorecard reads at %d/s for %s", o.QueryRate, o.QueryFor)
	faults := majorFaults()
	p50, p99, rps, err := queries(ctx, sys, SupplierIDs(o.Events), o.QueryRate, o.QueryFor)
	if err != nil {
		return nil, err
	}
	faults = majorFaults() - faults
	rep.add(Figure{Name: "query: scorecard p50", Value: p50, Unit: "ms"})
	rep.add(Figure{Name: "query: scorecard p99", Value: p99, Unit: "ms"}.aim("≤ 5 ms at 1,000/s offered", p99 <= 5 && o.QueryRate >= 1000))
	rep.add(Figure{Name: "query: scorecard throughput", Value: rps, Unit: "requests/s", Ratio: rps / float64(o.QueryRate), Of: "offered rate"})
	rep.add(Figure{Name: "query: pages read from disk", Value: float64(faults), Unit: "faults", Note: "major page faults of the process while queries ran: pages of the mapped file no longer in the page cache"})

	mem.next("")
	anon, heaps := mem.peaks()
	var rssNotes []string
	for _, h := range heaps {
		rssNotes = append(rssNotes, fmt.Sprintf("%s %.0f", h.name, float64(h.rss)/(1<<20)))
	}
	rep.add(Figure{Name: "peak RSS", Value: float64(procStatus("VmHWM")) / (1 << 20), Unit: "MiB", Note: "includes bbolt's memory-mapped file; sampled by phase: " + strings.Join(rssNotes, ", ")})
	rep.add(Figure{Name: "ledger: mapped pages released", Value: float64(sys.Ledger.MappedReleases()), Unit: "times", Note: "the file's pages the process had read through bbolt's map, handed back to the page cache past the resident budget (-mapped-resident)"})
	rep.add(Figure{Name: "peak RSS without mapped files", Value: float64(anon) / (1 << 20), Unit: "MiB", Note: "RssAnon, sampled every 50 ms"})
	var top, topLive uint64
	var notes, liveNotes []string
	for _, h := range heaps {
		top, topLive = max(top, h.bytes), max(topLive, h.live)
		notes = append(notes, fmt.Sprintf("%s %.0f", h.name, float64(h.bytes)/(1<<20)))
		liveNotes = append(liveNotes, fmt.Sprintf("%s %.0f", h.name, float64(h.live)/(1<<20)))
	}
	rep.add(Figure{Name: "peak Go heap in use", Value: float64(top) / (1 << 20), Unit: "MiB", Note: "by phase: " + strings.Join(notes, ", ")})
	rep.add(Figure{Name: "peak Go heap live", Value: float64(topLive) / (1 << 20), Unit: "MiB", Note: "found live by a collection; by phase: " + strings.Join(liveNotes, ", ")})
	if o.HeapProfile != nil {
		at, err := mem.writeProfile(o.HeapProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: heap profile: %w", err)
		}
		say("heap profile: taken at the highest live heap, in the %s phase", at)
	}
	ledgerBytes := fileSize(filepath.Join(data, "ledger.db"))
	natsBytes := dirSize(filepath.Join(data, "nats"))
	rep.add(Figure{Name: "disk: ledger per event", Value: float64(ledgerBytes) / float64(want), Unit: "bytes"})
	rep.add(Figure{Name: "disk: JetStream per event", Value: float64(natsBytes) / float64(want), Unit: "bytes"})
	return rep, nil
}

// ed25519Ceiling is the best of three rounds of Ed25519 verification on
// every core, d in all: a ceiling is what the machine can do, and one round
// can be slowed by a neighbour on a shared machine (runs here have seen a
// single 2 s round at 26.7k/s and at 35.1k/s).
func ed25519Ceiling(d time.Duration) float64 {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 400)
	sig := ed25519.Sign(priv, msg)
	var best float64
	for range 3 {
		var n atomic.Int64
		var wg sync.WaitGroup
		deadline := time.Now().Add(d / 3)
		start := time.Now()
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					for range 64 {
						ed25519.Verify(pub, msg, sig)
					}
					n.Add(64)
				}
			}()
		}
		wg.Wait()
		best = max(best, float64(n.Load())/time.Since(start).Seconds())
	}
	return best
}

func boltCeiling(path string, d time.Duration) (float64, error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	val := make([]byte, 400)
	var seq uint64
	start := time.Now()
	for time.Since(start) < d {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("log"))
			if err != nil {
				return err
			}
			for range 1000 {
				seq++
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], seq)
				if err := b.Put(k[:], val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return float64(seq) / time.Since(start).Seconds(), nil
}

func jetstreamCeiling(ctx context.Context, dir string, n int, syncAlways bool) (pub, con float64, err error) {
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, SyncAlways: syncAlways})
	if err != nil {
		return 0, 0, err
	}
	defer srv.Shutdown()
	nc, err := broker.ConnectEmbedded(srv, "bench-ceiling")
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CEILING", Subjects: []string{"ceiling.>"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, 0, err
	}
	msg := make([]byte, 400)
	start := time.Now()
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("ceiling.%d", i%64), msg, jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return 0, 0, errors.New("bench: JetStream ceiling publish did not complete")
	}
	pub = float64(n) / time.Since(start).Seconds()
	c, err := js.CreateConsumer(ctx, "CEILING", jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	got := 0
	for got < n {
		b, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return 0, 0, err
		}
		for range b.Messages() {
			got++
		}
	}
	return pub, float64(n) / time.Since(start).Seconds(), nil
}

// writeEvents generates the events in chunks and writes them to a file,
// so memory stays flat in N. Each record is what a publishing service
// knows of an event without decoding it — its subject and event id — then
// the envelope: subject length (2 bytes), subject, id length (1 byte), id,
// envelope length (4 bytes), envelope; so the load generator spends no
// ingest time opening envelopes, as a real client on another machine
// would not.
func writeEvents(path string, k Keys, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := NewGenerator(k, n)
	for done := 0; done < n; {
		chunk := min(50_000, n-done)
		evs, err := g.Next(chunk)
		if err != nil {
			f.Close()
			return err
		}
		for _, e := range evs {
			o, err := envelope.Open(e)
			if err != nil {
				f.Close()
				return fmt.Errorf("bench: generated event %d: %w", done, err)
			}
			subject, id := broker.Subject(o.Event.Type, o.Event.SupplierId), o.Event.EventId
			var rec []byte
			rec = binary.BigEndian.AppendUint16(rec, uint16(len(subject)))
			rec = append(rec, subject...)
			rec = append(rec, byte(len(id)))
			rec = append(rec, id...)
			rec = binary.BigEndian.AppendUint32(rec, uint32(len(e)))
			w.Write(rec)
			w.Write(e)
		}
		done += chunk
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// publishFile publishes every event in the file asynchronously, with its
// event id as message id, keeping a bounded window in flight.
func publishFile(ctx context.Context, js jetstream.JetStream, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// As the services do: through the group-committing publisher, in
	// order, with up to maxOutstanding events handed over and not yet
	// acknowledged (as many concurrent writers would).
	const maxOutstanding = 4096
	pub := broker.NewPublisher(js)
	var outstanding []<-chan error
	wait := func(ch <-chan error) error {
		select {
		case err := <-ch:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		subject, id, raw, err := readEvent(r)
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		outstanding = append(outstanding, pub.Enqueue(subject, id, raw))
		if len(outstanding) == maxOutstanding {
			if err := wait(outstanding[0]); err != nil {
				return err
			}
			outstanding = outstanding[1:]
		}
	}
	for _, ch := range outstanding {
		if err := wait(ch); err != nil {
			return err
		}
	}
	return nil
}

// readEvent reads one record written by writeEvents; io.EOF at the end of
// the file, io.ErrUnexpectedEOF if it ends inside a record.
func readEvent(r *bufio.Reader) (subject, id string, raw []byte, err error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", "", nil, err
	}
	field := func(size int) ([]byte, error) {
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return b, nil
	}
	b, err := field(int(binary.BigEndian.Uint16(n[:])))
	if err != nil {
		return "", "", nil, err
	}
	subject = string(b)
	if b, err = field(1); err != nil {
		return "", "", nil, err
	}
	if b, err = field(int(b[0])); err != nil {
		return "", "", nil, err
	}
	id = string(b)
	if b, err = field(4); err != nil {
		return "", "", nil, err
	}
	if raw, err = field(int(binary.BigEndian.Uint32(b))); err != nil {
		return "", "", nil, err
	}
	return subject, id, raw, nil
}

func queries(ctx context.Context, sys *system.System, suppliers []string, rate int, d time.Duration) (p50, p99, rps float64, err error) {
	tok, err := sys.Tokens.Issue(auth.Principal{Role: auth.Commercial, Name: "bench"})
	if err != nil {
		return 0, 0, 0, err
	}
	srv := httptest.NewServer(sys.Handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; time.Since(start) < d; i++ {
		next := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(next))
		sem <- struct{}{}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/suppliers/"+id+"/scorecard", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				return
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
		}(suppliers[i%len(suppliers)])
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		return 0, 0, 0, fmt.Errorf("bench: %d scorecard requests failed", failed.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), float64(len(lat)) / elapsed.Seconds(), nil
}

// procIO reads a counter of the process's /proc/self/io (Linux); 0 where
// there is none.
func procIO(field string) uint64 { return procField("/proc/self/io", field) }

// procStatus reads a field of the process's /proc/self/status given in
// kB (Linux), in bytes; 0 where there is none.
func procStatus(field string) uint64 { return procField("/proc/self/status", field) << 10 }

// majorFaults is how many major page faults (a page read from disk) the
// process has had: field 12 of /proc/self/stat (Linux); 0 where unknown.
func majorFaults() uint64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 10 {
		return 0
	}
	var n uint64
	fmt.Sscanf(f[9], "%d", &n)
	return n
}

// procField reads the number after "field:" in a /proc file.
func procField(path, field string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var n uint64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &n)
			return n
		}
	}
	return 0
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// memory samples, every 50 ms, the Go heap in use, the heap live at the
// last collection (what the program holds, without the garbage the
// collector lets pile up to twice that) and the process's anonymous
// resident memory (its own, not the pages of files it maps), and keeps
// their peaks, the heaps' by phase. With profile set, it takes a heap
// profile whenever the live heap passes its peak by a twentieth, so the
// last one taken shows what the program held at its most.
type memory struct {
	mu      sync.Mutex
	phase   string
	heap    uint64 // peaks in the current phase
	live    uint64
	rss     uint64
	anon    uint64 // peak over the run
	top     uint64 // the live heap of the last profile taken
	profile bool
	prof    bytes.Buffer
	at      string // the phase the profile was taken in
	phases  []phaseHeap
}

type phaseHeap struct {
	name  string
	bytes uint64 // in use
	live  uint64
	rss   uint64 // resident, mapped files included
}

func watchMemory(ctx context.Context, profile bool) *memory {
	m := &memory{profile: profile}
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			live := liveHeap()
			anon, rss := procStatus("RssAnon"), procStatus("VmRSS")
			m.mu.Lock()
			m.heap, m.live, m.anon, m.rss = max(m.heap, ms.HeapInuse), max(m.live, live), max(m.anon, anon), max(m.rss, rss)
			if m.profile && live > m.top+m.top/20 {
				m.prof.Reset()
				if err := pprof.WriteHeapProfile(&m.prof); err == nil {
					m.top, m.at = live, m.phase
				}
			}
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// next ends the current phase, keeping its peaks, and starts the next.
func (m *memory) next(name string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := liveHeap()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != "" {
		m.phases = append(m.phases, phaseHeap{m.phase, max(m.heap, ms.HeapInuse), max(m.live, live), max(m.rss, procStatus("VmRSS"))})
	}
	m.phase, m.heap, m.live, m.rss = name, 0, 0, 0
}

func (m *memory) peaks() (anon uint64, heaps []phaseHeap) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.anon, procStatus("RssAnon")), append([]phaseHeap(nil), m.phases...)
}

// writeProfile writes the heap profile taken at the highest live heap,
// and says in which phase it was taken.
func (m *memory) writeProfile(w io.Writer) (phase string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prof.Len() == 0 {
		if err := pprof.WriteHeapProfile(&m.prof); err != nil {
			return "", err
		}
		m.at = m.phase
	}
	_, err = w.Write(m.prof.Bytes())
	return m.at, err
}

// liveHeap is the heap the last garbage collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
