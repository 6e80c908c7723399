package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bodies to the decoder every write handler
// uses: it must never panic, must answer every refusal with an *Error
// carrying a 4xx status and a one-line reason, and must accept only one
// JSON object that fits the target.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"standard":"FHIR-R4-UKCORE","version":"2.0.1","product":"ePrescribing","target_date":"2027-03-31"}`,
		`{"outcome":"conformant","evidence_ref":"E","assessor":"A","count":3}`,
		`{"standard":`, ``, `[]`, `{} {}`, `{"colour":"red"}`, `{"count":"three"}`, `null`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var v struct {
			Standard   string `json:"standard"`
			Version    string `json:"version"`
			Product    string `json:"product"`
			TargetDate string `json:"target_date"`
			Outcome    string `json:"outcome"`
			Count      int    `json:"count"`
		}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		err := Decode(r, &v)
		if err == nil {
			return
		}
		e, ok := err.(*Error)
		if !ok {
			t.Fatalf("refusal is %T, not *Error: %v", err, err)
		}
		if e.Status < 400 || e.Status > 499 || e.Msg == "" || strings.Contains(e.Msg, "\n") {
			t.Fatalf("refusal %d %q is not a 4xx with a one-line reason", e.Status, e.Msg)
		}
	})
}
