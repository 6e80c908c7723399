// Package audit lets an auditor check a ledger without trusting whoever
// runs it: Verify walks every entry of a ledger file or an exported bundle
// and checks the hash chain, every signature against the key registry in
// force at that entry, the Merkle tree against every signed checkpoint, and
// that replaying the events reproduces the scorecard digests the
// checkpoints committed to. Replay rebuilds scorecards at any past point,
// and Rules re-runs the enforcement rules over the history.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/supplier-accountability/sal/bundle"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/scorecard"
)

// Source is a ledger to audit: a bbolt file or an exported bundle.
type Source interface {
	// Scan calls fn for every entry in log order.
	Scan(ctx context.Context, fn func(ledger.Entry) error) error
	// Checkpoints returns every signed checkpoint note, in size order.
	Checkpoints() ([][]byte, error)
	// Head is the size and last entry hash the source claims.
	Head() (uint64, [32]byte, error)
}

// Trust is what the auditor brings from outside the source: the registry
// root key and the checkpoint verifier key.
type Trust struct {
	RootKey       ed25519.PublicKey
	CheckpointKey string // signed-note verifier key, "name+hash+key"
}

// Failure locates the first problem found.
type Failure struct {
	Seq    uint64 // the first bad sequence number (a checkpoint's size for checkpoint failures)
	Reason string
}

func (f *Failure) Error() string { return fmt.Sprintf("audit: seq %d: %s", f.Seq, f.Reason) }

// Report is the outcome of a verification.
type Report struct {
	Entries     uint64
	Checkpoints int
	Root        [32]byte // Merkle root at the last entry
	Suppliers   int
	Passes      int      // readings of the log: one per group of suppliers (see cardBudget)
	Failure     *Failure // nil when everything verified
}

// OK says whether everything verified.
func (r Report) OK() bool { return r.Failure == nil }

// parsedCheckpoint is a checkpoint note read ahead of the walk. Its size is
// read even when the signature fails, to say where the failure is.
type parsedCheckpoint struct {
	cp  ledger.Checkpoint
	err error
}

type pending struct {
	e   ledger.Entry
	o   *envelope.Opened
	pub ed25519.PublicKey
}

// cardBudget is how many events' worth of scorecards verification holds
// in memory at once. A longer log is verified in passes: the first checks
// everything but projects only the first group of suppliers, each later
// pass reads the log again and projects the next group, and the
// checkpoints' scorecard digests are checked last, from the card hashes
// each pass recorded at every checkpoint. Suppliers are grouped by a hash
// of their id, so a group holds about its share of the events (one
// supplier's card is never split). What grows with the log is then two
// bytes per entry (its group) and a hash per card per checkpoint it
// changed at. BenchmarkVerifyInPasses, 200,000 events: peak Go heap 406
// MiB in one pass, 110 MiB in four, at 0.92 of the speed.
const cardBudget = 100_000

// noGroup marks an entry that is on no scorecard (a registry change).
const noGroup = math.MaxUint16

// cardHash is a card's hash as it stood at a checkpoint.
type cardHash struct {
	id  string
	sum [32]byte
}

// verifier is the state of one walk over the log.
type verifier struct {
	reg      *keys.Registry
	cpv      note.Verifier
	prevHash [32]byte
	prev     *sigJob
	want     uint64
	tree     *compact.Range
	cards    map[string]*scorecard.Card
	hashes   map[string][32]byte
	dirty    map[string]bool
	cps      []parsedCheckpoint
	nextCP   int
	origin   string
	checked  int
	roots    map[uint64][]byte // checkpoint size -> verified root
	batch    []pending
	workers  int

	// With more than one group (see cardBudget): the group each entry's
	// supplier is in, by seq-1, and, by checkpoint, the cards changed
	// since the checkpoint before with their hashes there.
	groups    int
	owner     []uint16
	changed   [][]cardHash
	cpHash    [][32]byte // by checkpoint, the hash of its last entry
	format    int        // the cards format of the last checkpoint reached
	suppliers int        // counted by laterPasses
}

// groupOf is the group a supplier's card is projected in.
func (v *verifier) groupOf(id string) int {
	if v.groups == 1 {
		return 0
	}
	return int(crc32.ChecksumIEEE([]byte(id)) % uint32(v.groups))
}

// Verify checks src against trust. It returns a Report whose Failure names
// the first bad sequence number; the error is for failures to read. A log
// of more than cardBudget entries is read once per group of suppliers (see
// cardBudget), so src must give the same entries each time it is scanned;
// one that does not fails verification.
func Verify(ctx context.Context, src Source, trust Trust) (Report, error) {
	return verify(ctx, src, trust, cardBudget)
}

// verify is Verify holding at most budget events' worth of cards.
func verify(ctx context.Context, src Source, trust Trust, budget int) (Report, error) {
	cpv, err := note.NewVerifier(trust.CheckpointKey)
	if err != nil {
		return Report{}, fmt.Errorf("audit: checkpoint key: %w", err)
	}
	notes, err := src.Checkpoints()
	if err != nil {
		return Report{}, err
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	v := &verifier{
		reg: keys.NewRegistry(trust.RootKey), cpv: cpv, want: 1, tree: rf.NewEmptyRange(0),
		cards: map[string]*scorecard.Card{}, hashes: map[string][32]byte{}, dirty: map[string]bool{},
		workers: runtime.GOMAXPROCS(0), roots: map[uint64][]byte{}, groups: 1,
	}
	if size, _, err := src.Head(); err == nil && size > uint64(budget) {
		v.groups = int(min((size+uint64(budget)-1)/uint64(budget), noGroup))
	}
	for i, n := range notes {
		c, err := v.openCheckpoint(n)
		if err != nil && c.Size == 0 {
			// Unreadable even unverified: it sits between its neighbours.
			if i > 0 {
				c.Size = v.cps[i-1].cp.Size + 1
			} else {
				c.Size = 1
			}
		}
		v.cps = append(v.cps, parsedCheckpoint{cp: c, err: err})
	}
	if v.groups > 1 {
		v.changed = make([][]cardHash, len(v.cps))
	}
	rep := Report{Passes: 1}
	fail := func(f *Failure) (Report, error) {
		if v.groups > 1 && f.Seq > 0 {
			// A scorecard digest wrong at an earlier checkpoint is the
			// first failure: finish the checkpoints before this one (of
			// the entries the first pass got through).
			// Checking them may fail to read; the failure found stands.
			if first, err := v.laterPasses(ctx, src, min(f.Seq-1, uint64(len(v.owner)))); err == nil && first != nil {
				f = first
			}
		}
		rep.Entries, rep.Checkpoints, rep.Failure = v.want-1, v.checked, f
		return rep, nil
	}
	err = src.Scan(ctx, func(e ledger.Entry) error {
		v.batch = append(v.batch, pending{e: e})
		if len(v.batch) < 1024 {
			return nil
		}
		return v.flush()
	})
	if err == nil {
		err = v.flush()
	}
	if err == nil {
		err = v.drain()
	}
	var f *Failure
	if errors.As(err, &f) {
		return fail(f)
	}
	var ce *ledger.ChainError
	if errors.As(err, &ce) {
		return fail(&Failure{Seq: ce.Seq, Reason: ce.Err.Error()})
	}
	if err != nil {
		return rep, err
	}
	size, headHash, err := src.Head()
	if err != nil {
		return rep, err
	}
	if size != v.want-1 {
		return fail(&Failure{Seq: v.want, Reason: fmt.Sprintf("the log ends at %d but claims %d entries (truncated?)", v.want-1, size)})
	}
	if headHash != v.prevHash {
		return fail(&Failure{Seq: size, Reason: "the recorded head hash does not match the last entry"})
	}
	if v.nextCP < len(v.cps) {
		c := v.cps[v.nextCP].cp
		return fail(&Failure{Seq: c.Size, Reason: fmt.Sprintf("checkpoint at size %d is beyond the log's %d entries (truncated?)", c.Size, v.want-1)})
	}
	if v.groups > 1 {
		rep.Passes = v.groups
		f, err := v.laterPasses(ctx, src, size)
		if err != nil {
			return rep, err
		}
		if f != nil {
			rep.Entries, rep.Checkpoints, rep.Failure = v.want-1, v.checked, f
			return rep, nil
		}
	}
	if ps, ok := src.(interface {
		Proofs() ([]bundle.Proof, error)
	}); ok {
		proofs, err := ps.Proofs()
		if err != nil {
			return rep, err
		}
		for _, p := range proofs {
			r1, ok1 := v.roots[p.From]
			r2, ok2 := v.roots[p.To]
			if !ok1 || !ok2 {
				return fail(&Failure{Seq: p.To, Reason: fmt.Sprintf("consistency proof %d -> %d names a size with no verified checkpoint", p.From, p.To)})
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, p.From, p.To, p.Hashes, r1, r2); err != nil {
				return fail(&Failure{Seq: p.To, Reason: fmt.Sprintf("consistency proof %d -> %d does not verify: %v", p.From, p.To, err)})
			}
		}
	}
	rep.Entries, rep.Checkpoints, rep.Suppliers = v.want-1, v.checked, len(v.cards)
	if v.groups > 1 {
		rep.Suppliers = v.suppliers
	}
	root, err := v.tree.GetRootHash(nil)
	if err != nil {
		return rep, err
	}
	copy(rep.Root[:], root)
	return rep, nil
}

func (v *verifier) openCheckpoint(signed []byte) (ledger.Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(v.cpv))
	if err != nil {
		c, _ := ledger.ParseCheckpoint(ledger.CheckpointBody(signed))
		return c, fmt.Errorf("checkpoint at size %d: signature does not verify: %v", c.Size, err)
	}
	c, err := ledger.ParseCheckpoint(n.Text)
	if err != nil {
		return c, err
	}
	if v.origin == "" {
		v.origin = c.Origin
	} else if c.Origin != v.origin {
		return c, fmt.Errorf("checkpoint at size %d names origin %q, earlier ones %q", c.Size, c.Origin, v.origin)
	}
	return c, nil
}

// sigJob is one batch's signatures, verified on every core while the
// previous batch's tree, projections and checkpoints are computed.
type sigJob struct {
	ps   []pending
	bad  []bool
	done chan struct{}
}

// flush checks a batch in three steps: in order, the sequence, the hash
// chain and each event's key (registry changes take effect as they come);
// then every signature, in parallel, started now and collected by the next
// flush; then, in order, the tree, the projections and the checkpoints.
// Failures are reported in sequence order: a problem found early in a later
// batch waits until the batches before it are fully checked.
func (v *verifier) flush() error {
	batch := v.batch
	v.batch = make([]pending, 0, cap(batch))
	var perr *Failure
	n := 0
	for i := range batch {
		if perr = v.precheck(&batch[i]); perr != nil {
			break
		}
		n++
	}
	job := v.startSignatures(batch[:n])
	if v.prev != nil {
		if err := v.finish(v.prev); err != nil {
			return err
		}
	}
	v.prev = job
	if perr != nil {
		v.prev = nil
		if err := v.finish(job); err != nil {
			return err
		}
		return perr
	}
	return nil
}

// drain finishes the last batch.
func (v *verifier) drain() error {
	if v.prev == nil {
		return nil
	}
	j := v.prev
	v.prev = nil
	return v.finish(j)
}

func (v *verifier) precheck(p *pending) *Failure {
	e := p.e
	if e.Seq != v.want {
		if e.Seq > v.want {
			return &Failure{Seq: v.want, Reason: fmt.Sprintf("entry %d is missing (next is %d)", v.want, e.Seq)}
		}
		return &Failure{Seq: e.Seq, Reason: fmt.Sprintf("entry %d out of order (expected %d)", e.Seq, v.want)}
	}
	if e.PrevHash != v.prevHash {
		return &Failure{Seq: e.Seq, Reason: fmt.Sprintf("previous hash does not match entry %d", e.Seq-1)}
	}
	if ledger.EntryHash(e.Seq, e.AppendedAt.UnixNano(), e.PrevHash, e.Envelope) != e.Hash {
		return &Failure{Seq: e.Seq, Reason: "entry hash does not match its content"}
	}
	o, err := envelope.Open(e.Envelope)
	if err != nil {
		return &Failure{Seq: e.Seq, Reason: err.Error()}
	}
	pub, err := v.reg.KeyFor(o)
	if err != nil {
		return &Failure{Seq: e.Seq, Reason: err.Error()}
	}
	if o.Event.SupplierId == "" {
		// A registry change is verified here, before it changes which keys
		// count for the entries after it.
		if err := o.Verify(pub); err != nil {
			return &Failure{Seq: e.Seq, Reason: fmt.Sprintf("signature does not verify with key %s", o.Event.KeyId)}
		}
		v.reg.Apply(o, e.Seq)
	}
	p.o, p.pub = o, pub
	v.prevHash = e.Hash
	v.want++
	return nil
}

func (v *verifier) startSignatures(ps []pending) *sigJob {
	j := &sigJob{ps: ps, bad: make([]bool, len(ps)), done: make(chan struct{})}
	if len(ps) == 0 {
		close(j.done)
		return j
	}
	var wg sync.WaitGroup
	chunk := (len(ps) + v.workers - 1) / v.workers
	for w := 0; w < len(ps); w += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			os := make([]*envelope.Opened, 0, hi-lo)
			pubs := make([]ed25519.PublicKey, 0, hi-lo)
			for i := lo; i < hi; i++ {
				os, pubs = append(os, ps[i].o), append(pubs, ps[i].pub)
			}
			for k, ok := range envelope.VerifyAll(os, pubs) {
				j.bad[lo+k] = !ok
			}
		}(w, min(w+chunk, len(ps)))
	}
	go func() { wg.Wait(); close(j.done) }()
	return j
}

func (v *verifier) finish(j *sigJob) error {
	<-j.done
	for i, p := range j.ps {
		if j.bad[i] {
			return &Failure{Seq: p.e.Seq, Reason: fmt.Sprintf("signature does not verify with key %s", p.o.Event.KeyId)}
		}
		if err := v.after(p); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) after(p pending) error {
	if err := v.tree.Append(rfc6962.DefaultHasher.HashLeaf(ledger.LeafData(p.e.Envelope)), nil); err != nil {
		return err
	}
	g := noGroup
	if id := p.o.Event.SupplierId; id != "" {
		if g = v.groupOf(id); g == 0 {
			ledger.ProjectOpened(v.cards, p.e.Seq, p.o)
			v.dirty[id] = true
		}
	}
	if v.groups > 1 {
		v.owner = append(v.owner, uint16(g))
	}
	for v.nextCP < len(v.cps) {
		c, err := v.cps[v.nextCP].cp, v.cps[v.nextCP].err
		if c.Size > p.e.Seq {
			break
		}
		if err != nil {
			return &Failure{Seq: c.Size, Reason: err.Error()}
		}
		if c.Size < p.e.Seq {
			return &Failure{Seq: c.Size, Reason: fmt.Sprintf("checkpoint at size %d is out of order", c.Size)}
		}
		root, err := v.tree.GetRootHash(nil)
		if err != nil {
			return err
		}
		if string(root) != string(c.Root[:]) {
			return &Failure{Seq: c.Size, Reason: fmt.Sprintf("Merkle root of the first %d entries does not match the signed checkpoint", c.Size)}
		}
		v.format = v.rehashOn(v.format, c.CardsFormat)
		if v.groups > 1 {
			v.changed[v.nextCP] = append(v.changed[v.nextCP], v.hashChanged(c.CardsFormat)...)
			v.cpHash = append(v.cpHash, p.e.Hash)
		} else if d := v.cardsDigest(c.CardsFormat); d != c.CardsDigest {
			return digestFailure(c.Size)
		}
		v.roots[c.Size] = root
		v.checked++
		v.nextCP++
	}
	return nil
}

func digestFailure(size uint64) *Failure {
	return &Failure{Seq: size, Reason: fmt.Sprintf("replayed scorecards do not match the digest checkpoint %d committed to", size)}
}

// rehashOn marks every card changed when a checkpoint's cards format is
// not the one the cards were last hashed in (a ledger written by an older
// sal and carried on by a newer one), and returns the format now in use.
func (v *verifier) rehashOn(was, format int) int {
	if was != 0 && was != format {
		for id := range v.cards {
			v.dirty[id] = true
		}
	}
	return format
}

// cardsDigest re-hashes the cards changed since the last checkpoint and
// returns the digest over all, the cards hashed in the given format
// (ledger.Checkpoint.CardsFormat).
func (v *verifier) cardsDigest(format int) [32]byte {
	for _, c := range v.hashChanged(format) {
		v.hashes[c.id] = c.sum
	}
	return ledger.CardsDigest(v.hashes)
}

// hashChanged hashes the cards changed since the last checkpoint in the
// given format, on every core (cards are independent), and marks them
// unchanged.
func (v *verifier) hashChanged(format int) []cardHash {
	ids := make([]string, 0, len(v.dirty))
	for id := range v.dirty {
		ids = append(ids, id)
	}
	clear(v.dirty)
	sums := make([][32]byte, len(ids))
	var wg sync.WaitGroup
	for w := range v.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += v.workers {
				// Neither can fail for a card built by Apply.
				if format == 1 {
					if b, err := scorecard.Encode(v.cards[ids[i]]); err == nil {
						sums[i] = sha256.Sum256(b)
					}
				} else {
					sums[i], _ = scorecard.Hash(v.cards[ids[i]])
				}
			}
		}()
	}
	wg.Wait()
	out := make([]cardHash, len(ids))
	for i, id := range ids {
		out[i] = cardHash{id, sums[i]}
	}
	return out
}

// laterPasses projects the groups after the first, a pass over the first
// size entries each, then checks the scorecard digest of every checkpoint
// the first pass reached (up to size), returning the first that fails.
// Each pass checks the hash chain again and, at every checkpoint, that it
// reached the entry hash the first pass did, so a source that changes
// between passes is caught, not trusted.
func (v *verifier) laterPasses(ctx context.Context, src Source, size uint64) (*Failure, error) {
	errStop := errors.New("stop")
	suppliers := len(v.cards)
	for group := 1; group < v.groups; group++ {
		clear(v.cards)
		clear(v.dirty)
		prev, next, cp, format := [32]byte{}, uint64(1), 0, 0
		err := src.Scan(ctx, func(e ledger.Entry) error {
			if e.Seq > size {
				return errStop
			}
			if e.Seq != next || e.Seq > uint64(len(v.owner)) || e.PrevHash != prev || ledger.EntryHash(e.Seq, e.AppendedAt.UnixNano(), e.PrevHash, e.Envelope) != e.Hash {
				return changedFailure(e.Seq)
			}
			prev, next = e.Hash, next+1
			if int(v.owner[e.Seq-1]) == group {
				o, err := envelope.Open(e.Envelope)
				if err != nil {
					return changedFailure(e.Seq)
				}
				ledger.ProjectOpened(v.cards, e.Seq, o)
				v.dirty[o.Event.SupplierId] = true
			}
			for cp < v.nextCP && v.cps[cp].cp.Size == e.Seq {
				if e.Hash != v.cpHash[cp] {
					return changedFailure(e.Seq)
				}
				format = v.rehashOn(format, v.cps[cp].cp.CardsFormat)
				v.changed[cp] = append(v.changed[cp], v.hashChanged(format)...)
				cp++
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			var f *Failure
			if errors.As(err, &f) {
				return f, nil
			}
			var ce *ledger.ChainError
			if errors.As(err, &ce) {
				return changedFailure(ce.Seq), nil
			}
			return nil, err
		}
		suppliers += len(v.cards)
	}
	clear(v.cards)
	clear(v.hashes)
	for i := range v.nextCP {
		c := v.cps[i].cp
		if c.Size > size {
			break
		}
		for _, h := range v.changed[i] {
			v.hashes[h.id] = h.sum
		}
		if ledger.CardsDigest(v.hashes) != c.CardsDigest {
			v.checked = i
			return digestFailure(c.Size), nil
		}
	}
	v.suppliers = suppliers
	return nil, nil
}

func changedFailure(seq uint64) *Failure {
	return &Failure{Seq: seq, Reason: "the ledger changed while it was being verified: this entry differs from the first reading"}
}

// Replay rebuilds every scorecard from the first size entries of src,
// trusting nothing but the events. It returns the cards as their stored
// bytes, by supplier id.
func Replay(ctx context.Context, src Source, size uint64) (map[string][]byte, error) {
	cards := map[string]*scorecard.Card{}
	errStop := errors.New("stop")
	err := src.Scan(ctx, func(e ledger.Entry) error {
		if e.Seq > size {
			return errStop
		}
		return ledger.Project(cards, e)
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	out := make(map[string][]byte, len(cards))
	for id, c := range cards {
		b, err := scorecard.Encode(c)
		if err != nil {
			return nil, err
		}
		out[id] = b
	}
	return out, nil
}

// Digest is the checkpoints' scorecards digest of replayed cards, each
// hashed in the given format (ledger.Checkpoint.CardsFormat).
func Digest(cards map[string][]byte, format int) ([32]byte, error) {
	m := make(map[string][32]byte, len(cards))
	for id, b := range cards {
		if format == 1 {
			m[id] = sha256.Sum256(b)
			continue
		}
		h, err := scorecard.HashJSON(b)
		if err != nil {
			return [32]byte{}, fmt.Errorf("audit: scorecard of %s: %w", id, err)
		}
		m[id] = h
	}
	return ledger.CardsDigest(m), nil
}

// SortedIDs lists the suppliers of a replay in order.
func SortedIDs(cards map[string][]byte) []string {
	ids := make([]string, 0, len(cards))
	for id := range cards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
