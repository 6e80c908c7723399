package ledger_test

import (
	"testing"

	"github.com/supplier-accountability/sal/ledger"
)

// FuzzParseCheckpoint: checkpoint text comes from outside (a bundle, the
// HTTP API). Parsing must never panic, and whatever parses must print back
// to a checkpoint that parses to the same values.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add("sal.ledger/abc\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nsal-scorecards sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + "\n")
	f.Add("sal.ledger/abc\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nsal-scorecards-v2 sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + "\n")
	f.Add("origin\n-1\nroot\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ledger.ParseCheckpoint(text)
		if err != nil {
			return
		}
		again, err := ledger.ParseCheckpoint(c.Text())
		if err != nil || again != c {
			t.Fatalf("round trip: %+v -> %q -> %+v, %v", c, c.Text(), again, err)
		}
	})
}
