// Package bundle writes and reads audit bundles: a ledger exported as plain
// files that an auditor can read and verify without bbolt or this system.
//
// A bundle is a directory:
//
//	MANIFEST.json     format "sal-audit-bundle/1", origin, tree size, head hash,
//	                  the registry root public key, the checkpoint verifier key,
//	                  and the SHA-256 of every other file
//	entries.jsonl     one entry a line: seq, appended_at_unix_nano, prev_hash
//	                  and entry_hash (hex), envelope (base64 of the stored bytes)
//	checkpoints.jsonl one signed checkpoint note a line: size, note (text)
//	proofs.jsonl      a consistency proof between each two successive
//	                  checkpoints: from, to, hashes (base64, RFC 6962 order)
//	registry.jsonl    the key registry's history: every key authorization and
//	                  retirement with its seq (also derivable from the entries)
//	quarantine.jsonl  the refused messages, with their reasons
//	scorecards.json   the scorecards replayed at the bundle's tree size
//	README.txt        this description, for whoever opens the directory
//
// The hash chain, leaf hash and checkpoint formats are those of package
// ledger (ledger/doc.go); the envelope bytes are those the signatures cover.
package bundle

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// Format names this bundle layout.
const Format = "sal-audit-bundle/1"

// Manifest describes a bundle.
type Manifest struct {
	Format        string            `json:"format"`
	Origin        string            `json:"origin"`
	CreatedAt     time.Time         `json:"created_at"`
	TreeSize      uint64            `json:"tree_size"`
	HeadHash      string            `json:"head_hash"`
	RootPublicKey string            `json:"registry_root_public_key"` // hex
	RootKeyID     string            `json:"registry_root_key_id"`
	CheckpointKey string            `json:"checkpoint_verifier_key"`
	Files         map[string]string `json:"files"` // name -> hex SHA-256
}

type entryLine struct {
	Seq        uint64 `json:"seq"`
	AppendedAt int64  `json:"appended_at_unix_nano"`
	PrevHash   string `json:"prev_hash"`
	EntryHash  string `json:"entry_hash"`
	Envelope   []byte `json:"envelope"`
}

type checkpointLine struct {
	Size uint64 `json:"size"`
	Note string `json:"note"`
}

type proofLine struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes []string `json:"hashes"`
}

type registryLine struct {
	Seq        uint64   `json:"seq"`
	EventID    string   `json:"event_id"`
	Change     string   `json:"change"`
	KeyID      string   `json:"key_id"`
	Holder     string   `json:"holder,omitempty"`
	PublicKey  string   `json:"public_key,omitempty"`
	EventTypes []string `json:"event_types,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

const readme = `Audit bundle of the supplier accountability ledger (format sal-audit-bundle/1).

MANIFEST.json     what this is, the keys to trust, and the SHA-256 of every file
entries.jsonl     every event, in log order, with its hash-chain link and the exact signed bytes
checkpoints.jsonl the signed checkpoints (C2SP signed notes): tree size, Merkle root, scorecards digest
proofs.jsonl      consistency proofs between successive checkpoints
registry.jsonl    which key could sign what, and when that changed
quarantine.jsonl  messages the ledger refused, with the reason
scorecards.json   every supplier's scorecard, replayed at this bundle's tree size

Verify it with: sal verify -root-key <hex> -checkpoint-key <key> <this directory>
(take the two keys from a source you trust, not from this bundle).
`

// Ledger is what Write exports.
type Ledger interface {
	Scan(ctx context.Context, fn func(ledger.Entry) error) error
	Checkpoints() ([][]byte, error)
	Head() (uint64, [32]byte, error)
	ConsistencyProof(older, newer uint64) (tlog.TreeProof, error)
	Quarantine(from uint64, limit int) ([]ledger.QuarantineRecord, error)
}

// Keys names the trust anchors recorded in the manifest.
type Keys struct {
	Root          ed25519.PublicKey
	CheckpointKey string
	Origin        string
}

type hashingFile struct {
	f   *os.File
	w   *bufio.Writer
	sum hashWriter
}

type hashWriter struct {
	h interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
}

func create(dir, name string) (*hashingFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &hashingFile{f: f, w: bufio.NewWriter(f), sum: hashWriter{sha256.New()}}, nil
}

func (h *hashingFile) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	h.sum.h.Write(b)
	_, err = h.w.Write(b)
	return err
}

func (h *hashingFile) raw(b []byte) error {
	h.sum.h.Write(b)
	_, err := h.w.Write(b)
	return err
}

func (h *hashingFile) close() (string, error) {
	if err := h.w.Flush(); err != nil {
		h.f.Close()
		return "", err
	}
	if err := h.f.Sync(); err != nil {
		h.f.Close()
		return "", err
	}
	return hex.EncodeToString(h.sum.h.Sum(nil)), h.f.Close()
}

// Write exports l into dir, which must not exist yet. scorecards are the
// replayed cards at the head (see audit.Replay).
func Write(ctx context.Context, dir string, l Ledger, k Keys, scorecards map[string][]byte) (Manifest, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Manifest{}, fmt.Errorf("bundle: %w", err)
	}
	size, headHash, err := l.Head()
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{
		Format: Format, Origin: k.Origin, CreatedAt: time.Now().UTC(), TreeSize: size,
		HeadHash: hex.EncodeToString(headHash[:]), RootPublicKey: hex.EncodeToString(k.Root),
		RootKeyID: envelope.KeyID(k.Root), CheckpointKey: k.CheckpointKey, Files: map[string]string{},
	}
	done := func(name string, h *hashingFile) error {
		sum, err := h.close()
		if err != nil {
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
		m.Files[name] = sum
		return nil
	}

	ef, err := create(dir, "entries.jsonl")
	if err != nil {
		return m, err
	}
	rf, err := create(dir, "registry.jsonl")
	if err != nil {
		return m, err
	}
	err = l.Scan(ctx, func(e ledger.Entry) error {
		if e.Seq > size {
			return nil
		}
		if err := ef.line(entryLine{Seq: e.Seq, AppendedAt: e.AppendedAt.UnixNano(), PrevHash: hex.EncodeToString(e.PrevHash[:]), EntryHash: hex.EncodeToString(e.Hash[:]), Envelope: e.Envelope}); err != nil {
			return err
		}
		o, err := envelope.Open(e.Envelope)
		if err != nil || o.Event.SupplierId != "" {
			return nil
		}
		switch p := o.Payload.(type) {
		case *pb.KeyAuthorized:
			types := make([]string, len(p.EventTypes))
			for i, t := range p.EventTypes {
				types[i] = t.String()
			}
			return rf.line(registryLine{Seq: e.Seq, EventID: o.Event.EventId, Change: "authorized", KeyID: p.KeyId, Holder: p.Holder, PublicKey: hex.EncodeToString(p.PublicKey), EventTypes: types})
		case *pb.KeyRetired:
			return rf.line(registryLine{Seq: e.Seq, EventID: o.Event.EventId, Change: "retired", KeyID: p.KeyId, Reason: p.Reason})
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("bundle: entries: %w", err)
	}
	if err := done("entries.jsonl", ef); err != nil {
		return m, err
	}
	if err := done("registry.jsonl", rf); err != nil {
		return m, err
	}

	cps, err := l.Checkpoints()
	if err != nil {
		return m, err
	}
	cf, err := create(dir, "checkpoints.jsonl")
	if err != nil {
		return m, err
	}
	pf, err := create(dir, "proofs.jsonl")
	if err != nil {
		return m, err
	}
	var prev uint64
	for _, signed := range cps {
		c, err := ledger.ParseCheckpoint(ledger.CheckpointBody(signed))
		if err != nil {
			return m, fmt.Errorf("bundle: stored checkpoint: %w", err)
		}
		if c.Size > size {
			break
		}
		if err := cf.line(checkpointLine{Size: c.Size, Note: string(signed)}); err != nil {
			return m, err
		}
		if prev != 0 {
			p, err := l.ConsistencyProof(prev, c.Size)
			if err != nil {
				return m, err
			}
			hs := make([]string, len(p))
			for i, h := range p {
				hs[i] = base64.StdEncoding.EncodeToString(h[:])
			}
			if err := pf.line(proofLine{From: prev, To: c.Size, Hashes: hs}); err != nil {
				return m, err
			}
		}
		prev = c.Size
	}
	if err := done("checkpoints.jsonl", cf); err != nil {
		return m, err
	}
	if err := done("proofs.jsonl", pf); err != nil {
		return m, err
	}

	qf, err := create(dir, "quarantine.jsonl")
	if err != nil {
		return m, err
	}
	for from := uint64(1); ; {
		recs, err := l.Quarantine(from, 1000)
		if err != nil {
			return m, err
		}
		for _, r := range recs {
			if err := qf.line(r); err != nil {
				return m, err
			}
		}
		if len(recs) < 1000 {
			break
		}
		from = recs[len(recs)-1].Seq + 1
	}
	if err := done("quarantine.jsonl", qf); err != nil {
		return m, err
	}

	sf, err := create(dir, "scorecards.json")
	if err != nil {
		return m, err
	}
	ids := make([]string, 0, len(scorecards))
	for id := range scorecards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if err := sf.raw([]byte("{\n")); err != nil {
		return m, err
	}
	for i, id := range ids {
		key, _ := json.Marshal(id)
		sep := ",\n"
		if i == len(ids)-1 {
			sep = "\n"
		}
		if err := sf.raw(append(append(append(key, ": "...), scorecards[id]...), sep...)); err != nil {
			return m, err
		}
	}
	if err := sf.raw([]byte("}\n")); err != nil {
		return m, err
	}
	if err := done("scorecards.json", sf); err != nil {
		return m, err
	}

	rd, err := create(dir, "README.txt")
	if err != nil {
		return m, err
	}
	if err := rd.raw([]byte(readme)); err != nil {
		return m, err
	}
	if err := done("README.txt", rd); err != nil {
		return m, err
	}

	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST.json"), append(mb, '\n'), 0o644); err != nil {
		return m, fmt.Errorf("bundle: manifest: %w", err)
	}
	return m, nil
}

// Bundle is an opened bundle directory; it is an audit source.
type Bundle struct {
	Dir      string
	Manifest Manifest
}

// ErrFileAltered means a file's SHA-256 differs from the manifest's.
var ErrFileAltered = errors.New("bundle: file altered")

// Open reads a bundle's manifest.
func Open(dir string) (*Bundle, error) {
	b, err := os.ReadFile(filepath.Join(dir, "MANIFEST.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bundle: MANIFEST.json: %w", err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("bundle: format %q, this build reads %q", m.Format, Format)
	}
	return &Bundle{Dir: dir, Manifest: m}, nil
}

// RootKey is the registry root key the bundle names (trust it only if it
// matches one obtained independently).
func (b *Bundle) RootKey() (ed25519.PublicKey, error) {
	k, err := hex.DecodeString(b.Manifest.RootPublicKey)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("bundle: manifest root key %q is not a hex Ed25519 key", b.Manifest.RootPublicKey)
	}
	return k, nil
}

// CheckFiles compares every file's SHA-256 with the manifest. It is a
// convenience for locating accidental damage; the verification proper does
// not rely on it (the manifest is not signed).
func (b *Bundle) CheckFiles() error {
	for name, want := range b.Manifest.Files {
		f, err := os.Open(filepath.Join(b.Dir, name))
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("%w: %s", ErrFileAltered, name)
		}
	}
	return nil
}

// Scan reads entries.jsonl in order.
func (b *Bundle) Scan(ctx context.Context, fn func(ledger.Entry) error) error {
	f, err := os.Open(filepath.Join(b.Dir, "entries.jsonl"))
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 4*envelope.MaxSize)
	line := 0
	for sc.Scan() {
		line++
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var el entryLine
		if err := json.Unmarshal(sc.Bytes(), &el); err != nil {
			return &ledger.ChainError{Seq: uint64(line), Err: fmt.Errorf("entries.jsonl line %d: %v", line, err)}
		}
		e := ledger.Entry{Seq: el.Seq, AppendedAt: time.Unix(0, el.AppendedAt).UTC(), Envelope: el.Envelope}
		if err := hex32(el.PrevHash, &e.PrevHash); err != nil {
			return &ledger.ChainError{Seq: el.Seq, Err: fmt.Errorf("prev_hash: %v", err)}
		}
		if err := hex32(el.EntryHash, &e.Hash); err != nil {
			return &ledger.ChainError{Seq: el.Seq, Err: fmt.Errorf("entry_hash: %v", err)}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &ledger.ChainError{Seq: uint64(line + 1), Err: fmt.Errorf("entries.jsonl: %v", err)}
	}
	return nil
}

func hex32(s string, out *[32]byte) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%q is not 32 hex bytes", s)
	}
	copy(out[:], b)
	return nil
}

// Checkpoints reads checkpoints.jsonl.
func (b *Bundle) Checkpoints() ([][]byte, error) {
	var out [][]byte
	err := b.lines("checkpoints.jsonl", func(line []byte) error {
		var c checkpointLine
		if err := json.Unmarshal(line, &c); err != nil {
			return err
		}
		out = append(out, []byte(c.Note))
		return nil
	})
	return out, err
}

// Proof is a consistency proof between two checkpoint sizes.
type Proof struct {
	From, To uint64
	Hashes   [][]byte
}

// Proofs reads proofs.jsonl.
func (b *Bundle) Proofs() ([]Proof, error) {
	var out []Proof
	err := b.lines("proofs.jsonl", func(line []byte) error {
		var p proofLine
		if err := json.Unmarshal(line, &p); err != nil {
			return err
		}
		pr := Proof{From: p.From, To: p.To}
		for _, h := range p.Hashes {
			d, err := base64.StdEncoding.DecodeString(h)
			if err != nil {
				return err
			}
			pr.Hashes = append(pr.Hashes, d)
		}
		out = append(out, pr)
		return nil
	})
	return out, err
}

func (b *Bundle) lines(name string, fn func([]byte) error) error {
	f, err := os.Open(filepath.Join(b.Dir, name))
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("bundle: %s line %d: %w", name, n, err)
		}
	}
	return sc.Err()
}

// Head is the size and head hash the manifest claims.
func (b *Bundle) Head() (uint64, [32]byte, error) {
	var h [32]byte
	if err := hex32(b.Manifest.HeadHash, &h); err != nil {
		return 0, h, fmt.Errorf("bundle: manifest head_hash: %w", err)
	}
	return b.Manifest.TreeSize, h, nil
}
