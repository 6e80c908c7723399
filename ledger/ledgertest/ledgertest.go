// Package ledgertest helps tests reproduce what a crash or an older sal
// leaves on disk.
package ledgertest

import (
	"io"
	"os"
	"testing"
)

// CopyFile copies a ledger file between commits: what a crash at that
// moment leaves on disk (every committed batch, nothing held in memory).
func CopyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
