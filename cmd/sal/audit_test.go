package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/system"
)

// mustDataDir runs the real system once to leave a data directory with a
// supplier, a commitment, an assessment and a breach raised by the rules.
func mustDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	now := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	sys, err := system.Start(context.Background(), system.Config{DataDir: dir, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sys.Handler)
	tok := map[string]string{}
	for _, d := range sys.DemoTokens {
		tok[d.Role] = d.Token
	}
	send := func(token, path, body string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("POST %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	send(tok["supplier:acme-health"], "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme"}`)
	send(tok["supplier:acme-health"], "/v1/suppliers/acme-health/commitments", `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-03-31"}`)
	now = time.Date(2027, 4, 1, 10, 0, 0, 0, time.UTC)
	if _, err := sys.Enforcer.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	sys.Close()
	return dir
}

func TestAuditCommandsOnARealDataDirectory(t *testing.T) {
	dir := mustDataDir(t)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"verify", "-data", dir}, &out, &errb); err != nil {
		t.Fatalf("verify: %v\n%s%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "OK: hash chain intact") || !strings.Contains(out.String(), "entries:      6") {
		t.Fatalf("verify output:\n%s", out.String())
	}

	out.Reset()
	errb.Reset()
	if err := run(ctx, []string{"replay", "-data", dir, "-at", "5", "-supplier", "acme-health"}, &out, &errb); err != nil {
		t.Fatalf("replay: %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), `"breaches": []`) || !strings.Contains(out.String(), "cm_") {
		t.Fatalf("replay at size 5 (before the breach):\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "matches the scorecards digest of the signed checkpoint at size 5") {
		t.Fatalf("replay did not compare with the checkpoint: %s", errb.String())
	}
	out.Reset()
	errb.Reset()
	if err := run(ctx, []string{"replay", "-data", dir, "-q"}, &out, &errb); err != nil || !strings.Contains(errb.String(), "matches the live projection byte for byte") {
		t.Fatalf("replay at head: %v %s", err, errb.String())
	}

	bdir := filepath.Join(t.TempDir(), "bundle")
	out.Reset()
	if err := run(ctx, []string{"export", "-data", dir, "-out", bdir}, &out, &errb); err != nil {
		t.Fatalf("export: %v", err)
	}
	// The export prints the exact command to verify it with independent keys.
	line := strings.TrimSpace(out.String()[strings.Index(out.String(), "sal verify"):])
	args := strings.Fields(line)[1:]
	out.Reset()
	if err := run(ctx, args, &out, &errb); err != nil || !strings.Contains(out.String(), "OK") || strings.Contains(out.String(), "warning") {
		t.Fatalf("verify bundle: %v\n%s", err, out.String())
	}

	out.Reset()
	if err := run(ctx, []string{"proof", "inclusion", "-data", dir, "-seq", "4"}, &out, &errb); err != nil || !strings.Contains(out.String(), `"hashes"`) {
		t.Fatalf("proof: %v %s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"audit-rules", "-data", dir}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "OK") {
		t.Fatalf("audit-rules: %v %s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"audit-rules", "-data", dir, "-at", "2027-06-01"}, &out, &errb); err == nil || !strings.Contains(out.String(), "missing") {
		t.Fatalf("audit-rules later: %v %s", err, out.String())
	}
}
