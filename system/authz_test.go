package system_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuthorizationMatrix calls every API route as every kind of caller.
// A caller the route does not allow gets 403 (or 401 without a valid
// token) and changes nothing; an allowed caller is never refused for who
// it is (it may still get 404 or 409 for the state of the records).
func TestAuthorizationMatrix(t *testing.T) {
	in := mustStart(t, t.TempDir())
	acme, commercial := in.tokens["supplier:acme-health"], in.tokens["commercial"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	_, cmb := in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`)
	cm := cmb["commitment_id"].(string)
	_, asb := in.do(t, "POST", "/v1/suppliers/acme-health/commitments/"+cm+"/assessments", commercial, `{"outcome":"non_conformant","evidence_ref":"E","assessor":"A"}`)
	as := asb["assessment_id"].(string)

	callers := map[string]string{
		"commercial":     commercial,
		"auditor":        in.tokens["auditor"],
		"supplier self":  acme,
		"supplier other": in.tokens["supplier:bright-records"],
	}
	routes := []struct {
		method, path, body string
		allowed            []string
	}{
		{"POST", "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme"}`, []string{"commercial", "supplier self"}},
		{"POST", "/v1/suppliers/acme-health/commitments", `{"standard":"DSPT","version":"2026-27","product":"Hosting","target_date":"2027-06-30"}`, []string{"supplier self"}},
		{"POST", "/v1/suppliers/acme-health/commitments/" + cm + "/withdrawal", `{"reason":"r"}`, []string{"supplier self"}},
		{"POST", "/v1/suppliers/acme-health/commitments/" + cm + "/assessments", `{"outcome":"conformant","evidence_ref":"E","assessor":"A"}`, []string{"commercial"}},
		{"POST", "/v1/suppliers/acme-health/assessments/" + as + "/disputes", `{"grounds":"g"}`, []string{"supplier self"}},
		{"POST", "/v1/suppliers/acme-health/disputes/dp_none/resolution", `{"outcome":"upheld","reason":"r"}`, []string{"commercial"}},
		{"POST", "/v1/suppliers/acme-health/breaches/br_none/plans", `{"due_date":"2099-01-01","summary":"s"}`, []string{"commercial"}},
		{"POST", "/v1/suppliers/acme-health/reviews/rv_none/closure", `{"reason":"r"}`, []string{"commercial"}},
		{"POST", "/v1/enforcement/evaluate", ``, []string{"commercial"}},
		{"GET", "/v1/suppliers/acme-health/scorecard", ``, []string{"commercial", "auditor", "supplier self"}},
		{"GET", "/v1/suppliers", ``, []string{"commercial", "auditor"}},
		{"GET", "/v1/standards", ``, []string{"commercial", "auditor", "supplier self", "supplier other"}},
		{"GET", "/v1/rules", ``, []string{"commercial", "auditor", "supplier self", "supplier other"}},
		{"GET", "/v1/audit/events", ``, []string{"commercial", "auditor"}},
		{"GET", "/v1/audit/quarantine", ``, []string{"commercial", "auditor"}},
		{"GET", "/v1/audit/keys", ``, []string{"commercial", "auditor"}},
		{"POST", "/v1/audit/verify", ``, []string{"commercial", "auditor"}},
		{"GET", "/v1/audit/checkpoint", ``, []string{"commercial", "auditor"}},
		{"GET", "/v1/audit/proofs/inclusion?seq=1", ``, []string{"commercial", "auditor"}},
		{"GET", "/v1/audit/proofs/consistency?from=1", ``, []string{"commercial", "auditor"}},
	}
	head := func() uint64 { n, _, _ := in.sys.Ledger.Head(); return n }
	for _, r := range routes {
		for who, tok := range callers {
			allowed := false
			for _, a := range r.allowed {
				allowed = allowed || a == who
			}
			if allowed {
				continue // allowed calls run below, after every refusal, so they cannot mask one
			}
			before := head()
			code := call(t, in, r.method, r.path, tok, r.body)
			if code != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want 403", r.method, r.path, who, code)
			}
			if head() != before {
				t.Errorf("%s %s as %s wrote to the ledger", r.method, r.path, who)
			}
		}
		for _, tok := range []string{"", "sal_not-a-token"} {
			if code := call(t, in, r.method, r.path, tok, r.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", r.method, r.path, tok, code)
			}
		}
	}
	for _, r := range routes {
		for _, who := range r.allowed {
			if code := call(t, in, r.method, r.path, callers[who], r.body); code == http.StatusForbidden || code == http.StatusUnauthorized {
				t.Errorf("%s %s as %s: refused with %d, but the role may", r.method, r.path, who, code)
			}
		}
	}
}

func call(t *testing.T, in *instance, method, path, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, in.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
