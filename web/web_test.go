package web_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// client signs in over plain HTTP and carries the session cookie by hand
// (Go's cookie jar keeps Secure cookies for https only).
type client struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
}

func signInHTTP(t *testing.T, s *site, token string) *client {
	t.Helper()
	c := &client{t: t, base: s.url}
	resp := c.post("/signin", url.Values{"token": {token}})
	for _, ck := range resp.Cookies() {
		if ck.Name == "sal_session" {
			if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
				t.Fatalf("session cookie %+v is not HttpOnly, Secure and SameSite=Strict", ck)
			}
			c.cookie = ck
		}
	}
	if c.cookie == nil {
		t.Fatalf("sign-in set no session cookie (%d)", resp.StatusCode)
	}
	return c
}

func (c *client) do(req *http.Request) *http.Response {
	c.t.Helper()
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *client) post(path string, form url.Values) *http.Response {
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *client) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", c.base+path, nil)
	resp := c.do(req)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFormsWithoutTheCSRFTokenAreRefusedAndChangeNothing(t *testing.T) {
	s := mustStartSite(t)
	acme := s.tokens["supplier:acme-health"]
	s.api(t, acme, "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme"}`)
	cm := s.api(t, acme, "/v1/suppliers/acme-health/commitments", `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`)["commitment_id"].(string)
	c := signInHTTP(t, s, s.tokens["commercial"])
	head := func() uint64 { n, _, _ := s.sys.Ledger.Head(); return n }
	before := head()
	resp := c.post("/suppliers/acme-health/actions/assess", url.Values{"commitment": {cm}, "outcome": {"conformant"}, "evidence_ref": {"E"}, "assessor": {"A"}})
	if resp.StatusCode != http.StatusForbidden || head() != before {
		t.Fatalf("form without CSRF token: %d, ledger grew by %d", resp.StatusCode, head()-before)
	}
	resp = c.post("/suppliers/acme-health/actions/assess", url.Values{"csrf": {"forged"}, "commitment": {cm}, "outcome": {"conformant"}, "evidence_ref": {"E"}, "assessor": {"A"}})
	if resp.StatusCode != http.StatusForbidden || head() != before {
		t.Fatalf("form with a wrong CSRF token: %d", resp.StatusCode)
	}
}

func TestPagesKeepSuppliersToThemselves(t *testing.T) {
	s := mustStartSite(t)
	s.api(t, s.tokens["supplier:bright-records"], "/v1/suppliers", `{"supplier_id":"bright-records","name":"Bright Records plc"}`)
	c := signInHTTP(t, s, s.tokens["supplier:acme-health"])
	for _, path := range []string{"/suppliers/bright-records", "/suppliers/bright-records/trend.svg", "/suppliers/nobody-at-all", "/suppliers", "/audit", "/suppliers/bright-records/actions/assess?commitment=x", "/suppliers/acme-health?at=2026-01-01"} {
		code, body := c.get(path)
		if code != http.StatusForbidden && code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 403", path, code)
		}
		if strings.Contains(body, "Bright Records") {
			t.Errorf("%s mentions another supplier", path)
		}
	}
	if code, _ := (&client{t: t, base: s.url}).get("/suppliers"); code != http.StatusSeeOther {
		t.Errorf("signed-out visit: %d, want a redirect to sign in", code)
	}
	if code, body := c.get("/openapi.yaml"); code != 200 || !strings.Contains(body, "openapi: 3.0.3") {
		t.Errorf("openapi: %d", code)
	}
}
