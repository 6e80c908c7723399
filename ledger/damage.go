package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged means Open found the file damaged — truncated, overwritten or
// with pages bbolt cannot read — and refused it without changing a byte.
var ErrDamaged = errors.New("ledger: file looks damaged")

// DamagedError is the error Open returns for a damaged file. It wraps
// ErrDamaged; its text names the file, what is wrong with it, and what to
// do.
type DamagedError struct {
	Path    string
	Problem string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("ledger: %s looks damaged: %s. Nothing was changed: sal does not start on a damaged ledger and never creates a new one in its place. "+
		"Restore the file from a backup or a replica, and check the restored copy with `sal verify %s` "+
		"(with -root-key and -checkpoint-key, or `sal verify -data <its data directory>`) before starting again",
		e.Path, e.Problem, e.Path)
}

func (e *DamagedError) Unwrap() error { return ErrDamaged }

func damaged(path, format string, args ...any) error {
	return &DamagedError{Path: path, Problem: fmt.Sprintf(format, args...)}
}

// emptyFileProblem explains why an empty ledger file is refused (see
// "Damaged files" in doc.go).
const emptyFileProblem = "the file is empty (0 bytes). sal writes a new ledger whole under a temporary name and only then gives it this name, " +
	"so an empty ledger file was not left by an interrupted first start: it was truncated, or made by something else " +
	"(if you are sure it never held a ledger, delete it and sal will create a new one)"

// FullCheckLimit is the largest file Open walks page by page (bbolt's own
// consistency check and a read of every key). Above it Open checks only the
// meta pages and the file's length; `sal verify` reads everything.
const FullCheckLimit = 2 << 30

// bbolt's file format (version 2): every page starts with a 16-byte header
// (id uint64, flags uint16, count uint16, overflow uint32); pages 0 and 1
// are meta pages, written alternately, whose body is magic, version,
// page size, flags (uint32 each), root bucket (root page, sequence),
// freelist page, high-water page id, txid (uint64 each) and an FNV-64a
// checksum of the body before it. Integers are in the machine's byte order.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltMetaFlag     = 0x04
	boltPageHeader   = 16
	boltMetaSize     = 64
	boltNoFreelist   = ^uint64(0)
	boltMinPageSize  = 1024
	boltMaxPageSize  = 1 << 16
	boltInitialPages = 4 // two meta pages, the freelist, the empty root leaf
)

// metaPage is one decoded bbolt meta page.
type metaPage struct {
	pageID, pageSize, freelist, hwm, txid uint64
	flags                                 uint16
	problem                               string // empty when valid
}

func decodeMeta(b []byte) metaPage {
	if len(b) < boltPageHeader+boltMetaSize {
		return metaPage{problem: "cut short"}
	}
	ne := binary.NativeEndian
	body := b[boltPageHeader : boltPageHeader+boltMetaSize]
	m := metaPage{
		pageID:   ne.Uint64(b[0:8]),
		flags:    ne.Uint16(b[8:10]),
		pageSize: uint64(ne.Uint32(body[8:12])),
		freelist: ne.Uint64(body[32:40]),
		hwm:      ne.Uint64(body[40:48]),
		txid:     ne.Uint64(body[48:56]),
	}
	h := fnv.New64a()
	h.Write(body[:56])
	switch {
	case ne.Uint32(body[0:4]) != boltMagic:
		m.problem = "no bbolt magic number"
	case ne.Uint32(body[4:8]) != boltVersion:
		m.problem = fmt.Sprintf("bbolt format version %d, want %d", ne.Uint32(body[4:8]), boltVersion)
	case ne.Uint64(body[56:64]) != h.Sum64():
		m.problem = "checksum does not match"
	case m.flags != boltMetaFlag:
		m.problem = fmt.Sprintf("page flags %#x, want a meta page", m.flags)
	case m.pageSize < boltMinPageSize || m.pageSize > boltMaxPageSize || m.pageSize&(m.pageSize-1) != 0:
		m.problem = fmt.Sprintf("page size %d", m.pageSize)
	case m.hwm < boltInitialPages:
		m.problem = fmt.Sprintf("high-water mark %d pages", m.hwm)
	case m.freelist != boltNoFreelist && m.freelist >= m.hwm:
		m.problem = fmt.Sprintf("freelist page %d beyond the high-water mark %d", m.freelist, m.hwm)
	}
	return m
}

// checkMeta reads the two meta pages of the file at path (size bytes) and
// says what is wrong with them, if anything. bbolt itself silently falls
// back to the older meta page when the newer one is invalid, which would
// drop the last committed (and acknowledged) batch; a ledger refuses that.
func checkMeta(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer f.Close()
	read := func(off int64) []byte {
		b := make([]byte, boltPageHeader+boltMetaSize)
		n, _ := f.ReadAt(b, off)
		return b[:n]
	}
	m0 := decodeMeta(read(0))
	pageSize := m0.pageSize
	if m0.problem != "" {
		// Page 0 does not say the page size: find page 1 as bbolt does,
		// trying every page size it supports.
		pageSize = 0
		for ps := int64(boltMinPageSize); ps <= boltMaxPageSize && ps < size; ps *= 2 {
			if m := decodeMeta(read(ps)); m.problem == "" && int64(m.pageSize) == ps {
				pageSize = m.pageSize
				break
			}
		}
		if pageSize == 0 {
			if size < 2*boltMinPageSize {
				return damaged(path, "the file is only %d bytes, too short to hold bbolt's two meta pages (truncated?)", size)
			}
			return damaged(path, "neither meta page is valid (meta page 0: %s): this is not a bbolt file, or its start was overwritten", m0.problem)
		}
	}
	if size < int64(2*pageSize) {
		return damaged(path, "the file is only %d bytes, too short to hold bbolt's two meta pages of %d bytes (truncated?)", size, pageSize)
	}
	m1 := decodeMeta(read(int64(pageSize)))
	for i, m := range []metaPage{m0, m1} {
		switch {
		case m.problem != "":
			return damaged(path, "meta page %d (bytes %d to %d) is invalid: %s; bbolt would fall back silently to the other one and lose the last committed batch",
				i, uint64(i)*pageSize, uint64(i+1)*pageSize-1, m.problem)
		case m.pageSize != pageSize:
			return damaged(path, "meta page %d says the page size is %d, meta page 0 says %d", i, m.pageSize, pageSize)
		case m.pageID != uint64(i):
			return damaged(path, "meta page %d is labelled page %d", i, m.pageID)
		}
	}
	newest := m0
	if m1.txid > m0.txid {
		newest = m1
	}
	if need := newest.hwm * pageSize; uint64(size) < need {
		return damaged(path, "the file is %d bytes but its last commit (transaction %d) uses %d pages of %d bytes, %d bytes: it was truncated",
			size, newest.txid, newest.hwm, pageSize, need)
	}
	return nil
}

// errUnreadable is a panic of bbolt's, or a fault, while reading the file.
var errUnreadable = errors.New("bbolt failed reading it")

// guard runs fn, turning a panic — bbolt panics on pages it cannot make
// sense of — and a fault reading the memory-mapped file into an error
// wrapping errUnreadable.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errUnreadable, r)
		}
	}()
	return fn()
}

// checkPages reads the whole file through bbolt in tx: every key and the
// last byte of every value of every bucket (so a page pointer out of the
// file faults here, in a guarded goroutine), then bbolt's own consistency
// check (every page reachable once or free, keys in order, a sane
// freelist). It returns the first problems found.
func checkPages(tx *bolt.Tx) error {
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				if child := b.Bucket(k); child != nil {
					if err := walk(child); err != nil {
						return err
					}
				}
			} else if len(v) > 0 {
				_ = v[len(v)-1]
			}
		}
		return nil
	}
	if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) }); err != nil {
		return err
	}
	var problems []string
	for err := range tx.Check() {
		if len(problems) < 3 {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New("bbolt's consistency check failed: " + strings.Join(problems, "; "))
	}
	return nil
}

// create makes a new ledger file at path whole: it initializes it under a
// temporary name, fsyncs it, and only then links it into place, so a crash
// during creation never leaves a partial ledger.db behind (and an empty or
// short ledger.db is always damage). init writes the ledger's buckets and
// metadata in the first transaction.
func create(path string, noSync bool, init func(*bolt.Tx) error) error {
	tmp := path + ".creating"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: noSync, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op once it is linked and removed
	if err := db.Update(init); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	// A hard link does not replace a file someone created meanwhile;
	// filesystems without hard links get a rename after a last look.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.Remove(tmp)
		}
		if _, statErr := os.Stat(path); statErr == nil {
			return os.Remove(tmp)
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else if err := os.Remove(tmp); err != nil {
		return err
	}
	if noSync {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
