package audit_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bundle"
	"github.com/supplier-accountability/sal/ledger"
)

// bundleFixture exports one built ledger once; each case tampers a copy.
func bundleFixture(t testing.TB) (fixture, string) {
	t.Helper()
	f := mustBuildLedger(t)
	dir := filepath.Join(t.TempDir(), "bundle")
	exportBundle(t, f.open(t), f, dir)
	return f, dir
}

func copyDir(t testing.TB, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

func editLines(t testing.TB, dir, name string, fn func(lines []string) []string) {
	t.Helper()
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	lines = fn(lines)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flipInField flips one character inside the value of a JSON field on a line.
// The replacement is a digit, which changes the value in hex and base64
// alike (a letter would not: hex reads 'A' as 'a').
func flipInField(line, field string, offset int) string {
	i := strings.Index(line, `"`+field+`":`)
	if i < 0 {
		panic("no field " + field)
	}
	j := i + len(field) + 3
	for line[j] == '"' || line[j] == '[' {
		j++
	}
	j += offset
	return line[:j] + flipChar(line[j]) + line[j+1:]
}

func TestVerifyCatchesTamperingWithABundle(t *testing.T) {
	f, clean := bundleFixture(t)
	_, otherDir := bundleFixture(t)
	var foreign string
	editLines(t, copyDir(t, otherDir), "entries.jsonl", func(l []string) []string { foreign = l[5]; return l })

	cases := []struct {
		name    string
		file    string
		edit    func([]string) []string
		wantSeq uint64
		reason  string
	}{
		{"flip a byte of an event", "entries.jsonl", func(l []string) []string { l[6] = flipInField(l[6], "envelope", 30); return l }, 7, ""},
		{"flip a byte of a signature", "entries.jsonl", func(l []string) []string {
			i := strings.LastIndex(l[7], `"`)
			l[7] = l[7][:i-6] + flipChar(l[7][i-6]) + l[7][i-5:]
			return l
		}, 8, ""},
		{"flip a byte of an entry hash", "entries.jsonl", func(l []string) []string { l[8] = flipInField(l[8], "entry_hash", 3); return l }, 9, ""},
		{"flip a byte of a checkpoint", "checkpoints.jsonl", func(l []string) []string { l[2] = flipInField(l[2], "note", 25); return l }, 0, "checkpoint"},
		{"flip a byte of a consistency proof", "proofs.jsonl", func(l []string) []string { l[1] = flipInField(l[1], "hashes", 4); return l }, 0, "consistency proof"},
		{"delete an event", "entries.jsonl", func(l []string) []string { return append(l[:9:9], l[10:]...) }, 10, "missing"},
		{"swap two events", "entries.jsonl", func(l []string) []string { l[9], l[10] = l[10], l[9]; return l }, 10, ""},
		{"truncate the log", "entries.jsonl", func(l []string) []string { return l[:len(l)-3] }, 0, ""},
		{"splice in a validly signed event from another ledger", "entries.jsonl", func(l []string) []string { l[5] = foreign; return l }, 6, ""},
		{"garbage line", "entries.jsonl", func(l []string) []string { l[3] = "{not json"; return l }, 4, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, clean)
			editLines(t, dir, c.file, c.edit)
			b, err := bundle.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := audit.Verify(context.Background(), b, f.trust)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("verify passed a tampered bundle")
			}
			if c.wantSeq != 0 && rep.Failure.Seq != c.wantSeq {
				t.Fatalf("blamed seq %d (%s), want %d", rep.Failure.Seq, rep.Failure.Reason, c.wantSeq)
			}
			if !strings.Contains(rep.Failure.Reason, c.reason) {
				t.Fatalf("reason %q does not mention %q", rep.Failure.Reason, c.reason)
			}
		})
	}
}

func flipChar(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// TestVerifyRefusesABundleSignedForAnotherLedger: the keys the auditor
// trusts, not the keys the bundle names, decide.
func TestVerifyRefusesABundleSignedForAnotherLedger(t *testing.T) {
	_, dir := bundleFixture(t)
	other := mustBuildLedger(t)
	b, _ := bundle.Open(dir)
	rep, err := audit.Verify(context.Background(), b, other.trust)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Failure.Seq != 1 {
		t.Fatalf("verified with another ledger's keys: %+v", rep.Failure)
	}
}

// FuzzVerifyBundle mutates an exported bundle's entries and checkpoints:
// verification must never panic, and whenever it passes, what it read must
// be exactly the original entries.
func FuzzVerifyBundle(f *testing.F) {
	fx, clean := bundleFixture(f)
	f.Add(uint(100), byte(1), false)
	f.Add(uint(2000), byte(0x20), true)
	f.Fuzz(func(t *testing.T, pos uint, x byte, inCheckpoints bool) {
		dir := copyDir(t, clean)
		name := "entries.jsonl"
		if inCheckpoints {
			name = "checkpoints.jsonl"
		}
		p := filepath.Join(dir, name)
		b, _ := os.ReadFile(p)
		if len(b) == 0 || x == 0 {
			return
		}
		b[int(pos)%len(b)] ^= x
		os.WriteFile(p, b, 0o644)
		bd, err := bundle.Open(dir)
		if err != nil {
			return
		}
		rep, err := audit.Verify(context.Background(), bd, fx.trust)
		if err != nil || !rep.OK() {
			return
		}
		// It passed: the mutation must not have changed what was verified.
		var got bytes.Buffer
		orig, _ := bundle.Open(clean)
		var want bytes.Buffer
		collect(t, bd, &got)
		collect(t, orig, &want)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("a mutated bundle verified with different entries (pos %d, x %#x)", pos, x)
		}
	})
}

func collect(t *testing.T, b *bundle.Bundle, w *bytes.Buffer) {
	b.Scan(context.Background(), func(e ledger.Entry) error {
		w.Write(e.Envelope)
		w.Write(e.Hash[:])
		return nil
	})
}
