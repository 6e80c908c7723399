package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// layout is where things are in a ledger file, read through bbolt before
// the file is damaged.
type layout struct {
	pageSize int
	size     int   // bytes up to the high-water mark of the last commit
	leaves   []int // page ids of leaf pages in use
	branches []int // page ids of branch pages in use
	freelist int   // page id of the freelist
}

// bigLedger writes a ledger with a few hundred entries, so its buckets span
// branch and leaf pages, closes it, and returns the fixture, the file's
// bytes and its layout.
func bigLedger(t *testing.T) (*fixture, []byte, layout) {
	t.Helper()
	f := mustOpenLedger(t)
	f.mustAppend(t, f.seal(t, f.svc, "acme", &pb.SupplierRegistered{Name: "Acme"}))
	for batch := range 4 {
		var raws [][]byte
		for i := range 100 {
			n := batch*100 + i
			raws = append(raws, f.seal(t, f.svc, "acme", &pb.CommitmentMade{CommitmentId: fmt.Sprintf("cm-%04d", n), StandardId: "DICOM", StandardVersion: "2024d", Product: fmt.Sprintf("Product %04d", n), TargetDate: "2027-03-31"}))
		}
		f.mustAppend(t, raws...)
	}
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = nil
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	lay := layout{pageSize: db.Info().PageSize}
	err = db.View(func(tx *bolt.Tx) error {
		lay.size = int(tx.Size())
		for id := 2; id < lay.size/lay.pageSize; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			switch p.Type {
			case "leaf":
				lay.leaves = append(lay.leaves, id)
			case "branch":
				lay.branches = append(lay.branches, id)
			}
			id += p.OverflowCount
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	// The freelist page of the newer meta page (see damage.go for the
	// layout of a meta page).
	m0, m1 := b[16:], b[lay.pageSize+16:]
	lay.freelist = int(binary.NativeEndian.Uint64(m0[32:]))
	if binary.NativeEndian.Uint64(m1[48:]) > binary.NativeEndian.Uint64(m0[48:]) {
		lay.freelist = int(binary.NativeEndian.Uint64(m1[32:]))
	}
	if len(lay.branches) == 0 || len(lay.leaves) < 10 || lay.freelist < 2 || lay.freelist*lay.pageSize >= len(b) {
		t.Fatalf("test ledger too small to damage meaningfully: %+v", lay)
	}
	return f, b, lay
}

// TestOpenRefusesDamagedFiles damages a ledger file in every way a disk,
// a copy or a person can, and checks Open — for writing and read-only —
// refuses each with an error that wraps ErrDamaged, names the file, says
// nothing was changed and points to `sal verify`, and that the file's bytes
// are exactly what they were (nothing created beside it either).
func TestOpenRefusesDamagedFiles(t *testing.T) {
	f, good, lay := bigLedger(t)
	ps := lay.pageSize
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x40; return b }
	}
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		want   string // in the error's problem text
	}{
		{"truncated to zero bytes", func([]byte) []byte { return nil }, "empty (0 bytes)"},
		{"truncated to 100 bytes (less than a page)", func(b []byte) []byte { return b[:100] }, "too short"},
		{"truncated to one page", func(b []byte) []byte { return b[:ps] }, "too short"},
		{"truncated to its two meta pages", func(b []byte) []byte { return b[:2*ps] }, "truncated"},
		// Half of what the last commit uses: bbolt grows the file ahead
		// of use, so half the file can still hold every page in use.
		{"truncated to half its pages in use", func(b []byte) []byte { return b[:lay.size/2] }, "truncated"},
		{"truncated one page short of its last commit", func(b []byte) []byte { return b[:lay.size-ps] }, "truncated"},
		{"random bytes throughout", func(b []byte) []byte { return random(len(b)) }, "neither meta page"},
		{"random bytes over both meta pages", func(b []byte) []byte { copy(b, random(2*ps)); return b }, "neither meta page"},
		{"a byte flipped in meta page 0 (txid)", flip(16 + 48), "meta page 0"},
		{"a byte flipped in meta page 0 (root bucket)", flip(16 + 16), "meta page 0"},
		{"a byte flipped in meta page 1 (high-water mark)", flip(ps + 16 + 40), "meta page 1"},
		{"meta page 1 zeroed", func(b []byte) []byte { clear(b[ps : 2*ps]); return b }, "meta page 1"},
		{"a leaf page's id overwritten", flip(lay.leaves[len(lay.leaves)/2] * ps), "bbolt"},
		{"a branch page's type cleared", func(b []byte) []byte {
			off := lay.branches[0]*ps + 8
			b[off], b[off+1] = 0, 0
			return b
		}, "bbolt"},
		{"a branch page pointing out of the file", func(b []byte) []byte {
			binary.NativeEndian.PutUint64(b[lay.branches[0]*ps+16+8:], 1<<40)
			return b
		}, "bbolt"},
		{"a branch page pointing just past the end of the file", func(b []byte) []byte {
			binary.NativeEndian.PutUint64(b[lay.branches[0]*ps+16+8:], uint64(len(b)/ps+1))
			return b
		}, "bbolt"},
		{"a branch page pointing at another page in use", func(b []byte) []byte {
			binary.NativeEndian.PutUint64(b[lay.branches[0]*ps+16+8:], uint64(lay.leaves[len(lay.leaves)-1]))
			return b
		}, "bbolt"},
		{"random bytes over three pages in use", func(b []byte) []byte {
			p := lay.leaves[len(lay.leaves)/3]
			copy(b[p*ps:], random(3*ps))
			return b
		}, "bbolt"},
		{"the freelist claims a page in use", func(b []byte) []byte {
			off := lay.freelist * ps
			if count := binary.NativeEndian.Uint16(b[off+10:]); count == 0 || count == 0xFFFF {
				binary.NativeEndian.PutUint16(b[off+10:], 1)
			}
			binary.NativeEndian.PutUint64(b[off+16:], uint64(lay.leaves[0]))
			return b
		}, "consistency check"},
	}
	root := f.rootKey.Public().(ed25519.PublicKey)
	for _, c := range cases {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", c.name, readOnly), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "ledger.db")
				if err := os.WriteFile(path, c.damage(bytes.Clone(good)), 0o600); err != nil {
					t.Fatal(err)
				}
				before := fileState(t, dir)
				l, err := ledger.Open(path, root, ledger.Options{ReadOnly: readOnly})
				if err == nil {
					l.Close()
					t.Fatal("Open accepted the damaged file")
				}
				if !errors.Is(err, ledger.ErrDamaged) {
					t.Fatalf("Open = %v, want an error wrapping ErrDamaged", err)
				}
				var de *ledger.DamagedError
				if !errors.As(err, &de) || de.Path != path || !strings.Contains(de.Problem, c.want) {
					t.Fatalf("Open = %v, want a DamagedError for %s whose problem mentions %q", err, path, c.want)
				}
				t.Log(de.Problem)
				for _, want := range []string{path, "looks damaged", "Nothing was changed", "sal verify " + path, "backup or a replica"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error does not say %q:\n%v", want, err)
					}
				}
				if after := fileState(t, dir); !maps.Equal(before, after) {
					t.Fatalf("the directory changed:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
	}
}

// fileState is the name and SHA-256 of every file in dir.
func fileState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][32]byte{}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[de.Name()] = sha256.Sum256(b)
	}
	return m
}

// TestOpenLeavesContentDamageToVerify: a flipped byte inside a stored
// envelope leaves the file a sound bbolt file — bbolt keeps no checksums of
// its data pages — so Open accepts it, and the hash chain that Verify (and
// `sal verify`) checks names the entry.
func TestOpenLeavesContentDamageToVerify(t *testing.T) {
	f, good, _ := bigLedger(t)
	b := bytes.Clone(good)
	i := bytes.Index(b, []byte("Product 0123"))
	if i < 0 {
		t.Fatal("envelope of cm-0123 not found in the file")
	}
	b[i+len("Product ")] ^= 0x01
	if err := os.WriteFile(f.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(f.path, f.rootKey.Public().(ed25519.PublicKey), ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open refused a file whose pages are sound: %v", err)
	}
	defer l.Close()
	_, err = l.Verify(context.Background())
	var ce *ledger.ChainError
	if !errors.As(err, &ce) || ce.Seq != 3+123 {
		t.Fatalf("Verify = %v, want a ChainError at seq %d", err, 3+123)
	}
}

// TestCreateIsWholeOrNothing: a new ledger is written under a temporary
// name and linked into place complete, so a crash during creation leaves
// no ledger.db; a leftover temporary file is replaced; an empty bbolt file
// (an older sal's interrupted first start) becomes a ledger; a bbolt file
// of something else is refused untouched.
func TestCreateIsWholeOrNothing(t *testing.T) {
	root := newKey(t).Public().(ed25519.PublicKey)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	if err := os.WriteFile(path+".creating", []byte("half-written by a crashed start"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(path, root, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	names := slices.Sorted(maps.Keys(fileState(t, dir)))
	if !slices.Equal(names, []string{"ledger.db"}) {
		t.Fatalf("files after creation: %v, want only ledger.db", names)
	}

	empty := filepath.Join(t.TempDir(), "ledger.db")
	db, err := bolt.Open(empty, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	l, err = ledger.Open(empty, root, ledger.Options{})
	if err != nil {
		t.Fatalf("an empty bbolt file: %v", err)
	}
	l.Close()

	other := filepath.Join(t.TempDir(), "ledger.db")
	db, err = bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("something-else")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(other)
	if _, err := ledger.Open(other, root, ledger.Options{}); !errors.Is(err, ledger.ErrStoredFormat) {
		t.Fatalf("a bbolt file of something else: %v, want ErrStoredFormat", err)
	}
	if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
		t.Fatal("opening a bbolt file of something else changed it")
	}
}
