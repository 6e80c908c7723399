package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// LeafVersion is the first byte of every Merkle leaf: the leaf format
// version. Leaf data is LeafVersion || envelope bytes; its hash is the
// RFC 6962 leaf hash SHA-256(0x00 || leaf data).
const LeafVersion = 0x01

// LeafData is the Merkle leaf of an envelope.
func LeafData(env []byte) []byte {
	b := make([]byte, 0, 1+len(env))
	b = append(b, LeafVersion)
	return append(b, env...)
}

// LeafHash is the RFC 6962 leaf hash of an envelope's leaf.
func LeafHash(env []byte) tlog.Hash { return tlog.RecordHash(LeafData(env)) }

var (
	bucketTree        = []byte("tree")
	bucketCheckpoints = []byte("checkpoints")
	bucketCardDigests = []byte("card_digests")
	keyCheckpointSize = []byte("checkpoint_size")
)

// ErrNoCheckpoint means no checkpoint was published at the size asked for.
var ErrNoCheckpoint = errors.New("ledger: no checkpoint at that size")

// hashReader reads stored tree hashes inside a transaction.
func hashReader(tx *bolt.Tx) tlog.HashReaderFunc {
	return func(indexes []int64) ([]tlog.Hash, error) {
		b := tx.Bucket(bucketTree)
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			v := b.Get(u64(uint64(idx)))
			if len(v) != tlog.HashSize {
				return nil, fmt.Errorf("%w: tree hash %d missing", ErrChainBroken, idx)
			}
			copy(out[i][:], v)
		}
		return out, nil
	}
}

// addLeaf stores the tree hashes that record seq (1-based), of Merkle
// leaf hash leaf, adds. The hashes it stores are also kept in stored (by
// index), and the hashes it reads are looked up there first: nearly every
// hash a leaf needs is one a recent leaf of the same batch stored.
func addLeaf(tx *bolt.Tx, seq uint64, leaf tlog.Hash, stored map[int64]tlog.Hash) error {
	n := int64(seq - 1)
	read := hashReader(tx)
	hashes, err := tlog.StoredHashesForRecordHash(n, leaf, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		var missing []int64
		for i, idx := range indexes {
			h, ok := stored[idx]
			if !ok {
				missing = append(missing, idx)
				continue
			}
			out[i] = h
		}
		if len(missing) == 0 {
			return out, nil
		}
		got, err := read(missing)
		if err != nil {
			return nil, err
		}
		for i, idx := range indexes {
			if _, ok := stored[idx]; !ok {
				out[i], got = got[0], got[1:]
			}
		}
		return out, nil
	}))
	if err != nil {
		return fmt.Errorf("tree: leaf %d: %w", seq, err)
	}
	b := tx.Bucket(bucketTree)
	idx := tlog.StoredHashIndex(0, n)
	for i, h := range hashes {
		if err := b.Put(u64(uint64(idx+int64(i))), h[:]); err != nil {
			return fmt.Errorf("tree: put hash: %w", err)
		}
		stored[idx+int64(i)] = h
	}
	return nil
}

// CardsDigest is what a checkpoint commits to about the scorecards: the
// SHA-256 over, for every supplier in id order, the id, a zero byte and the
// hash of its scorecard: scorecard.Hash in checkpoints of CardsFormat 2,
// the SHA-256 of its JSON in those of format 1 (written by sal before
// format 2; still verified).
func CardsDigest(cardHashes map[string][32]byte) [32]byte {
	ids := make([]string, 0, len(cardHashes))
	for id := range cardHashes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	for _, id := range ids {
		sum := cardHashes[id]
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write(sum[:])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Checkpoint is a parsed checkpoint body (C2SP tlog-checkpoint): origin,
// tree size, root hash, and the extension line committing to the
// scorecards' digest at that size.
type Checkpoint struct {
	Origin      string
	Size        uint64
	Root        tlog.Hash
	CardsDigest [32]byte
	// CardsFormat is how the cards under CardsDigest are hashed: 2
	// (scorecard.Hash; what this ledger signs, and the zero value's
	// meaning) or 1 (the SHA-256 of a card's JSON).
	CardsFormat int
}

// CardsFormat is the format of the card hashes this ledger keeps and its
// checkpoints commit to (see Checkpoint.CardsFormat).
const CardsFormat = 2

// The extension line of each CardsFormat.
const (
	cardsExtV1 = "sal-scorecards sha256:"
	cardsExtV2 = "sal-scorecards-v2 sha256:"
)

// Text is the checkpoint body, ready to sign as a note.
func (c Checkpoint) Text() string {
	ext := cardsExtV2
	if c.CardsFormat == 1 {
		ext = cardsExtV1
	}
	return fmt.Sprintf("%s\n%d\n%s\n%s%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]), ext, hex.EncodeToString(c.CardsDigest[:]))
}

// ParseCheckpoint reads a checkpoint body (the text of a verified note).
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 4 {
		return c, fmt.Errorf("ledger: checkpoint has %d lines, want 4", len(lines))
	}
	c.Origin = lines[0]
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return c, fmt.Errorf("ledger: checkpoint size %q: %w", lines[1], err)
	}
	c.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("ledger: checkpoint root %q is not a base64 SHA-256", lines[2])
	}
	copy(c.Root[:], root)
	for _, l := range lines[3:] {
		rest, ok := strings.CutPrefix(l, cardsExtV2)
		c.CardsFormat = 2
		if !ok {
			rest, ok = strings.CutPrefix(l, cardsExtV1)
			c.CardsFormat = 1
		}
		if ok {
			d, err := hex.DecodeString(rest)
			if err != nil || len(d) != 32 {
				return c, fmt.Errorf("ledger: checkpoint scorecards digest %q malformed", rest)
			}
			copy(c.CardsDigest[:], d)
			return c, nil
		}
	}
	return c, errors.New("ledger: checkpoint has no scorecards digest line")
}

// CheckpointBody is the text of a signed checkpoint note before its
// signature lines, read without checking the signature: for stored
// checkpoints this ledger signed itself, or to say where a bad one claims
// to be. Verify a note from elsewhere with golang.org/x/mod/sumdb/note.
func CheckpointBody(signed []byte) string {
	s := string(signed)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[:i+1]
	}
	return s
}

// Checkpointer signs checkpoints for one log origin.
type Checkpointer struct {
	Origin string
	Signer note.Signer
}

// signCheckpoint signs and stores the checkpoint at size (the head), unless
// there is one already.
func signCheckpoint(tx *bolt.Tx, cp *Checkpointer, size uint64, cardsDigest [32]byte) error {
	meta := tx.Bucket(bucketMeta)
	if size == 0 || beUint64(meta.Get(keyCheckpointSize)) == size {
		return nil
	}
	root, err := tlog.TreeHash(int64(size), hashReader(tx))
	if err != nil {
		return fmt.Errorf("checkpoint at %d: %w", size, err)
	}
	c := Checkpoint{Origin: cp.Origin, Size: size, Root: root, CardsDigest: cardsDigest, CardsFormat: CardsFormat}
	signed, err := note.Sign(&note.Note{Text: c.Text()}, cp.Signer)
	if err != nil {
		return fmt.Errorf("sign checkpoint at %d: %w", size, err)
	}
	if err := tx.Bucket(bucketCheckpoints).Put(u64(size), signed); err != nil {
		return err
	}
	return meta.Put(keyCheckpointSize, u64(size))
}

// SignedCheckpoint returns the signed note of the checkpoint at size, or
// the latest one when size is 0.
func (l *Ledger) SignedCheckpoint(size uint64) ([]byte, error) {
	var out []byte
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		var v []byte
		if size == 0 {
			_, v = b.Cursor().Last()
		} else {
			v = b.Get(u64(size))
		}
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNoCheckpoint, size)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// CheckpointSizes lists the sizes at which checkpoints were published.
func (l *Ledger) CheckpointSizes() ([]uint64, error) {
	var out []uint64
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).ForEach(func(k, _ []byte) error {
			out = append(out, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	return out, err
}

// TreeHead returns the Merkle root of the first size entries.
func (l *Ledger) TreeHead(size uint64) (tlog.Hash, error) {
	var h tlog.Hash
	err := l.db.View(func(tx *bolt.Tx) error {
		if head := readHead(tx); size > head.seq {
			return fmt.Errorf("ledger: tree size %d is beyond the head %d", size, head.seq)
		}
		var err error
		h, err = tlog.TreeHash(int64(size), hashReader(tx))
		return err
	})
	return h, err
}

// InclusionProof proves that entry seq is in the tree of the given size.
// The proof is in RFC 6962 order (leaf upwards), for leaf index seq-1.
func (l *Ledger) InclusionProof(seq, size uint64) (tlog.RecordProof, error) {
	var p tlog.RecordProof
	if seq == 0 || seq > size {
		return nil, fmt.Errorf("ledger: entry %d is not in a tree of size %d", seq, size)
	}
	err := l.db.View(func(tx *bolt.Tx) error {
		if head := readHead(tx); size > head.seq {
			return fmt.Errorf("ledger: tree size %d is beyond the head %d", size, head.seq)
		}
		var err error
		p, err = tlog.ProveRecord(int64(size), int64(seq-1), hashReader(tx))
		return err
	})
	return p, err
}

// ConsistencyProof proves that the tree of size older is a prefix of the
// tree of size newer.
func (l *Ledger) ConsistencyProof(older, newer uint64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	if older == 0 || older > newer {
		return nil, fmt.Errorf("ledger: no consistency proof from size %d to %d", older, newer)
	}
	err := l.db.View(func(tx *bolt.Tx) error {
		if head := readHead(tx); newer > head.seq {
			return fmt.Errorf("ledger: tree size %d is beyond the head %d", newer, head.seq)
		}
		var err error
		p, err = tlog.ProveTree(int64(newer), int64(older), hashReader(tx))
		return err
	})
	return p, err
}

// Checkpoints returns every signed checkpoint, in size order.
func (l *Ledger) Checkpoints() ([][]byte, error) {
	var out [][]byte
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).ForEach(func(_, v []byte) error {
			out = append(out, bytes.Clone(v))
			return nil
		})
	})
	return out, err
}

// CardDigest is the hash (scorecard.Hash) of a supplier's scorecard as
// served, what checkpoints commit to: a cheap way to know whether it
// changed.
func (l *Ledger) CardDigest(supplierID string) ([32]byte, error) {
	var d [32]byte
	err := l.readCards(func(pending map[string]*cardUpdate, tx *bolt.Tx) error {
		if p, ok := pending[supplierID]; ok {
			d = p.digest
			return nil
		}
		v := tx.Bucket(bucketCardDigests).Get([]byte(supplierID))
		if len(v) != 32 {
			return fmt.Errorf("%w: scorecard of supplier %q", ErrNotFound, supplierID)
		}
		copy(d[:], v)
		return nil
	})
	return d, err
}
