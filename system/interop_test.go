package system_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/supplier-accountability/sal/ledger"
)

func (in *instance) text(t *testing.T, path, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", in.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// openCheckpoint verifies a checkpoint note with x/mod's own verifier.
func openCheckpoint(t *testing.T, signed []byte, vkey string) ledger.Checkpoint {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify with sumdb/note: %v\n%s", err, signed)
	}
	c, err := ledger.ParseCheckpoint(n.Text)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckpointsAndProofsVerifyWithIndependentLibraries judges the
// ledger's checkpoints with golang.org/x/mod/sumdb/note and its proofs with
// github.com/transparency-dev/merkle, neither of which built them.
func TestCheckpointsAndProofsVerifyWithIndependentLibraries(t *testing.T) {
	in := mustStart(t, t.TempDir())
	acme, auditor := in.tokens["supplier:acme-health"], in.tokens["auditor"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`)

	var keys struct {
		CheckpointKey string `json:"checkpoint_verifier_key"`
	}
	json.Unmarshal(in.text(t, "/v1/audit/keys", auditor), &keys)
	first := openCheckpoint(t, in.text(t, "/v1/audit/checkpoint", auditor), keys.CheckpointKey)
	if first.Size < 5 {
		t.Fatalf("checkpoint size %d, want at least 5 (3 key authorizations, registration, commitment)", first.Size)
	}

	var events struct {
		Events []struct {
			Seq      uint64 `json:"seq"`
			Envelope []byte `json:"envelope"`
		} `json:"events"`
	}
	json.Unmarshal(in.text(t, "/v1/audit/events?limit=1000", auditor), &events)
	h := rfc6962.DefaultHasher
	for _, e := range events.Events[:first.Size] {
		var p struct {
			Hashes []string `json:"hashes"`
		}
		json.Unmarshal(in.text(t, fmt.Sprintf("/v1/audit/proofs/inclusion?seq=%d&size=%d", e.Seq, first.Size), auditor), &p)
		leaf := h.HashLeaf(append([]byte{ledger.LeafVersion}, e.Envelope...))
		if err := proof.VerifyInclusion(h, e.Seq-1, first.Size, leaf, decode(t, p.Hashes), first.Root[:]); err != nil {
			t.Fatalf("inclusion of seq %d in checkpoint %d: %v", e.Seq, first.Size, err)
		}
	}

	in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DSPT","version":"2026-27","product":"Hosting","target_date":"2027-06-30"}`)
	second := openCheckpoint(t, in.text(t, "/v1/audit/checkpoint", auditor), keys.CheckpointKey)
	if second.Size <= first.Size {
		t.Fatalf("no newer checkpoint: %d then %d", first.Size, second.Size)
	}
	var c struct {
		Hashes []string `json:"hashes"`
	}
	json.Unmarshal(in.text(t, fmt.Sprintf("/v1/audit/proofs/consistency?from=%d&to=%d", first.Size, second.Size), auditor), &c)
	if err := proof.VerifyConsistency(h, first.Size, second.Size, decode(t, c.Hashes), first.Root[:], second.Root[:]); err != nil {
		t.Fatalf("consistency %d -> %d: %v", first.Size, second.Size, err)
	}
	// A tampered proof must not verify: the judge can say no.
	bad := decode(t, c.Hashes)
	bad[0][0] ^= 1
	if err := proof.VerifyConsistency(h, first.Size, second.Size, bad, first.Root[:], second.Root[:]); err == nil {
		t.Fatal("a tampered consistency proof verified")
	}
}

func decode(t *testing.T, hs []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(hs))
	for i, s := range hs {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}
