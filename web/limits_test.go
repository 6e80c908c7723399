package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/supplier-accountability/sal/system"
)

func TestOversizedFormsAreRefused(t *testing.T) {
	s := mustStartSite(t)
	acme := s.tokens["supplier:acme-health"]
	s.api(t, acme, "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme"}`)
	cm := s.api(t, acme, "/v1/suppliers/acme-health/commitments", `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`)["commitment_id"].(string)
	huge := strings.Repeat("x", 100<<10)

	anon := &client{t: t, base: s.url}
	resp := anon.post("/signin", url.Values{"token": {huge}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("sign-in form of 100 KiB: %d, want 413", resp.StatusCode)
	}

	c := signInHTTP(t, s, s.tokens["commercial"])
	csrf, _ := formTokens(t, c, "/suppliers/acme-health/actions/assess?commitment="+cm)
	head := func() uint64 { n, _, _ := s.sys.Ledger.Head(); return n }
	before := head()
	resp = c.post("/suppliers/acme-health/actions/assess", url.Values{"csrf": {csrf}, "commitment": {cm}, "outcome": {"conformant"}, "evidence_ref": {huge}, "assessor": {"A"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || head() != before {
		t.Errorf("assessment form of 100 KiB: %d, ledger grew by %d; want 413 and nothing written", resp.StatusCode, head()-before)
	}
}

// TestPageWritesShareTheTokensWriteRate: a form sent from the pages
// spends from the same bucket as the API calls of the same principal, and
// once it is empty the page says why the write was not recorded.
func TestPageWritesShareTheTokensWriteRate(t *testing.T) {
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), WriteRate: 0.01, WriteBurst: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sys.Handler)
	t.Cleanup(func() { srv.Close(); sys.Close() })
	s := &site{url: srv.URL, sys: sys, tokens: map[string]string{}}
	for _, d := range sys.DemoTokens {
		s.tokens[d.Role] = d.Token
	}
	acme, commercial := s.tokens["supplier:acme-health"], s.tokens["commercial"]
	s.api(t, acme, "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme"}`)
	cm := s.api(t, acme, "/v1/suppliers/acme-health/commitments", `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`)["commitment_id"].(string)
	head := func() uint64 { n, _, _ := sys.Ledger.Head(); return n }

	c := signInHTTP(t, s, commercial)
	assess := func() string {
		t.Helper()
		csrf, key := formTokens(t, c, "/suppliers/acme-health/actions/assess?commitment="+cm)
		resp := c.post("/suppliers/acme-health/actions/assess", url.Values{"csrf": {csrf}, "idempotency_key": {key}, "commitment": {cm}, "outcome": {"non_conformant"}, "evidence_ref": {"E"}, "assessor": {"A"}})
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("assessment form: %d, want 303", resp.StatusCode)
		}
		_, page := c.get("/suppliers/acme-health")
		return page
	}
	if page := assess(); strings.Contains(page, "Not recorded") {
		t.Fatalf("first assessment from the pages refused: %s", flash(page))
	}
	// The commercial token's API write spends the second token...
	s.api(t, commercial, "/v1/suppliers/acme-health/commitments/"+cm+"/assessments", `{"outcome":"non_conformant","evidence_ref":"E2","assessor":"A"}`)
	before := head()
	// ...so the next form is refused, with the reason on the page.
	if page := assess(); !strings.Contains(page, "Not recorded: too many writes") {
		t.Errorf("third write of a burst of two, from the pages: flash %q, want the 429's reason", flash(page))
	}
	if head() != before {
		t.Errorf("the refused form wrote %d entries", head()-before)
	}
}

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	keyField  = regexp.MustCompile(`name="idempotency_key" value="([^"]+)"`)
	flashDiv  = regexp.MustCompile(`<div class="flash[^"]*"[^>]*>([^<]*)</div>`)
)

// formTokens opens a form page and returns its CSRF token and idempotency key.
func formTokens(t *testing.T, c *client, path string) (csrf, key string) {
	t.Helper()
	code, page := c.get(path)
	m, k := csrfField.FindStringSubmatch(page), keyField.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil || k == nil {
		t.Fatalf("GET %s: %d, no CSRF token or idempotency key in the form", path, code)
	}
	return m[1], k[1]
}

func flash(page string) string {
	if m := flashDiv.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}
