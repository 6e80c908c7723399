package system_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/system"
)

type instance struct {
	sys    *system.System
	srv    *httptest.Server
	tokens map[string]string
}

func mustStart(tb testing.TB, dir string) *instance {
	tb.Helper()
	sys, err := system.Start(context.Background(), system.Config{DataDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	in := &instance{sys: sys, srv: httptest.NewServer(sys.Handler), tokens: map[string]string{}}
	for _, t := range sys.DemoTokens {
		in.tokens[t.Role] = t.Token
	}
	tb.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	in.srv.Close()
	in.sys.Close()
}

func (in *instance) do(tb testing.TB, method, path, token, body string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, in.srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatalf("%s %s: answer is not a JSON object: %s", method, path, b)
	}
	return resp.StatusCode, out
}

func TestCurlWalkFromTheReadme(t *testing.T) {
	in := mustStart(t, t.TempDir())
	acme, bright, commercial := in.tokens["supplier:acme-health"], in.tokens["supplier:bright-records"], in.tokens["commercial"]

	code, _ := in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme Health Systems Ltd"}`)
	if code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	code, body := in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme,
		`{"standard":"FHIR-R4-UKCORE","version":"2.0.1","product":"ePrescribing","target_date":"2027-03-31"}`)
	if code != http.StatusCreated {
		t.Fatalf("commit: %d %v", code, body)
	}
	cm := body["commitment_id"].(string)
	code, body = in.do(t, "POST", "/v1/suppliers/acme-health/commitments/"+cm+"/assessments", commercial,
		`{"outcome":"non_conformant","evidence_ref":"ASSURE-2026-0142","assessor":"J. Patel"}`)
	if code != http.StatusCreated {
		t.Fatalf("assess: %d %v", code, body)
	}
	code, card := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	if code != http.StatusOK {
		t.Fatalf("scorecard: %d", code)
	}
	c := card["commitments"].([]any)[0].(map[string]any)
	la := c["latest_assessment"].(map[string]any)
	if c["standard_id"] != "FHIR-R4-UKCORE" || c["status"] != "at_risk" || la["outcome"] != "non_conformant" || la["evidence_ref"] != "ASSURE-2026-0142" {
		t.Fatalf("scorecard line = %v", c)
	}

	refusals := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"another supplier's scorecard", "GET", "/v1/suppliers/acme-health/scorecard", bright, "", 403},
		{"an unregistered supplier's scorecard, asked by another supplier", "GET", "/v1/suppliers/nobody-here/scorecard", bright, "", 403},
		{"no token", "GET", "/v1/suppliers/acme-health/scorecard", "", "", 401},
		{"wrong token", "GET", "/v1/suppliers/acme-health/scorecard", "sal_wrong", "", 401},
		{"supplier assessing itself", "POST", "/v1/suppliers/acme-health/commitments/" + cm + "/assessments", acme, `{"outcome":"conformant","evidence_ref":"x","assessor":"y"}`, 403},
		{"commitment for another supplier", "POST", "/v1/suppliers/acme-health/commitments", bright, `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-03-31"}`, 403},
		{"malformed JSON", "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":`, 400},
		{"unknown standard", "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"HL8","version":"1","product":"P","target_date":"2027-03-31"}`, 400},
		{"missing field", "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","product":"P","target_date":"2027-03-31"}`, 400},
		{"date in the wrong format", "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"P","target_date":"31/03/2027"}`, 400},
		{"unknown field", "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"P","target_date":"2027-03-31","colour":"red"}`, 400},
		{"unknown supplier", "POST", "/v1/suppliers/bright-records/commitments", bright, `{"standard":"DICOM","version":"2024d","product":"P","target_date":"2027-03-31"}`, 404},
		{"unknown commitment", "POST", "/v1/suppliers/acme-health/commitments/cm_nope/assessments", commercial, `{"outcome":"conformant","evidence_ref":"x","assessor":"y"}`, 404},
		{"bad outcome", "POST", "/v1/suppliers/acme-health/commitments/" + cm + "/assessments", commercial, `{"outcome":"splendid","evidence_ref":"x","assessor":"y"}`, 400},
		{"registering twice", "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Again"}`, 409},
	}
	head := func() uint64 { s, _, _ := in.sys.Ledger.Head(); return s }
	before := head()
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			code, body := in.do(t, r.method, r.path, r.token, r.body)
			if code != r.want {
				t.Fatalf("got %d %v, want %d", code, body, r.want)
			}
			if msg, _ := body["error"].(string); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("error body %v is not a one-line reason", body)
			}
		})
	}
	if after := head(); after != before {
		t.Fatalf("refused requests wrote %d events", after-before)
	}
}

func TestIdempotencyKeyStoresARetriedRequestOnce(t *testing.T) {
	in := mustStart(t, t.TempDir())
	acme := in.tokens["supplier:acme-health"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	send := func() (int, map[string]any) {
		req, _ := http.NewRequest("POST", in.srv.URL+"/v1/suppliers/acme-health/commitments",
			strings.NewReader(`{"standard":"DSPT","version":"2025-26","product":"ePrescribing","target_date":"2027-06-30"}`))
		req.Header.Set("Authorization", "Bearer "+acme)
		req.Header.Set("Idempotency-Key", "retry-me-7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	c1, b1 := send()
	c2, b2 := send()
	if c1 != http.StatusCreated || c2 != http.StatusOK || b1["commitment_id"] != b2["commitment_id"] {
		t.Fatalf("first %d %v, retry %d %v", c1, b1, c2, b2)
	}
	_, card := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	if n := len(card["commitments"].([]any)); n != 1 {
		t.Fatalf("%d commitments after a retried request, want 1", n)
	}
}

// TestEventPublishedThreeTimesIsStoredOnce publishes one signed envelope
// three times straight onto the stream, under three message ids, so
// JetStream's own dedup cannot help: the ledger must.
func TestEventPublishedThreeTimesIsStoredOnce(t *testing.T) {
	dir := t.TempDir()
	in := mustStart(t, dir)
	signer := serviceSigner(t, dir, "commitments")
	raw, ev, err := signer.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Now(), Payload: &pb.SupplierRegistered{Name: "Acme"}})
	if err != nil {
		t.Fatal(err)
	}
	js := in.sys.JetStream()
	for i := range 3 {
		if _, err := js.Publish(context.Background(), broker.Subject(ev.Type, "acme-health"), raw, jetstream.WithMsgID(ev.EventId+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.sys.Ledger.Wait(context.Background(), ev.EventId); err != nil {
		t.Fatal(err)
	}
	waitForLedger(t, in.sys)
	card, err := in.sys.Ledger.Card("acme-health")
	if err != nil {
		t.Fatal(err)
	}
	if card.EventCount != 1 {
		t.Fatalf("event applied %d times", card.EventCount)
	}
	entries, _ := in.sys.Ledger.Entries(1, 100)
	n := 0
	for _, e := range entries {
		if bytes.Equal(e.Envelope, raw) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("event stored %d times, want once", n)
	}
}

// waitForLedger waits until the ledger has read everything on the stream.
func waitForLedger(t *testing.T, sys *system.System) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		last, err := broker.LastSeq(context.Background(), sys.JetStream())
		pos, perr := sys.Ledger.StreamPosition()
		if err == nil && perr == nil && pos >= last {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the ledger did not read the whole stream within 10s")
}

func serviceSigner(t *testing.T, dir, name string) *envelope.Signer {
	t.Helper()
	k, err := keys.Load(dir + "/keys/" + name + ".key")
	if err != nil {
		t.Fatal(err)
	}
	return envelope.NewSigner(k)
}

func TestForgedEventLandsInQuarantineVisibleToAuditors(t *testing.T) {
	dir := t.TempDir()
	in := mustStart(t, dir)
	acme := in.tokens["supplier:acme-health"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	_, before := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")

	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	forger := envelope.NewSigner(stranger)
	// A stranger's key, and the commitments service's key used for an
	// assessment (outside its authority).
	forged, fev, _ := forger.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Now(), Payload: &pb.CommitmentMade{CommitmentId: "cm_forged", StandardId: "DICOM"}})
	wrong, wev, _ := serviceSigner(t, dir, "commitments").Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Now(), Payload: &pb.AssessmentRecorded{AssessmentId: "as_x", CommitmentId: "cm_forged", Outcome: pb.Outcome_OUTCOME_CONFORMANT}})
	pub := broker.NewPublisher(in.sys.JetStream())
	for _, m := range []struct {
		raw []byte
		ev  *pb.Event
	}{{forged, fev}, {wrong, wev}} {
		if err := pub.Publish(context.Background(), broker.Subject(m.ev.Type, "acme-health"), m.ev.EventId, m.raw); err != nil {
			t.Fatal(err)
		}
		r, err := in.sys.Ledger.Wait(context.Background(), m.ev.EventId)
		if err != nil || !r.Quarantined {
			t.Fatalf("forged event %s: %+v %v, want quarantined", m.ev.EventId, r, err)
		}
	}
	code, q := in.do(t, "GET", "/v1/audit/quarantine", in.tokens["auditor"], "")
	recs, _ := q["quarantine"].([]any)
	if code != 200 || len(recs) != 2 {
		t.Fatalf("quarantine: %d %v", code, q)
	}
	codes := []string{recs[0].(map[string]any)["code"].(string), recs[1].(map[string]any)["code"].(string)}
	if codes[0] != "unknown_key" || codes[1] != "outside_authority" {
		t.Fatalf("quarantine codes %v", codes)
	}
	if code, _ := in.do(t, "GET", "/v1/audit/quarantine", acme, ""); code != 403 {
		t.Fatalf("supplier reading the quarantine: %d, want 403", code)
	}
	_, after := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	if b1, b2 := mustJSON(t, before), mustJSON(t, after); b1 != b2 {
		t.Fatalf("quarantined events changed the scorecard:\n%s\n%s", b1, b2)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	in := mustStart(t, dir)
	acme := in.tokens["supplier:acme-health"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	_, body := in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"WCAG22-AA","version":"2.2","product":"Patient portal","target_date":"2027-09-30"}`)
	_, before := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	in.stop()

	again := mustStart(t, dir)
	if len(again.sys.DemoTokens) != 0 {
		t.Fatal("demo tokens issued again on restart")
	}
	code, after := again.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	if code != 200 || mustJSON(t, before) != mustJSON(t, after) {
		t.Fatalf("after restart: %d\n%v\nwant\n%v", code, after, before)
	}
	// Service keys are reused, not re-authorized.
	if n := len(again.sys.Ledger.Registry().Keys()); n != 3 { // commitments, assessments, enforcement
		t.Fatalf("%d keys in the registry after restart, want 3", n)
	}
	code, _ = again.do(t, "POST", "/v1/suppliers/acme-health/commitments/"+body["commitment_id"].(string)+"/assessments", in.tokens["commercial"], `{"outcome":"conformant","evidence_ref":"AUD-1","assessor":"K"}`)
	if code != http.StatusCreated {
		t.Fatalf("write after restart: %d", code)
	}
	if n, err := again.sys.Ledger.Verify(context.Background()); err != nil || n < 5 {
		t.Fatalf("verify after restart: %d %v", n, err)
	}
}

// TestRetryOfACommittedWriteIsNotRefusedAsARepeat: the same registration
// sent twice with one Idempotency-Key is answered 200 replayed, not 409.
func TestRetryOfACommittedWriteIsNotRefusedAsARepeat(t *testing.T) {
	in := mustStart(t, t.TempDir())
	send := func() (int, map[string]any) {
		req, _ := http.NewRequest("POST", in.srv.URL+"/v1/suppliers", strings.NewReader(`{"supplier_id":"acme-health","name":"Acme"}`))
		req.Header.Set("Authorization", "Bearer "+in.tokens["supplier:acme-health"])
		req.Header.Set("Idempotency-Key", "register-once")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if c, b := send(); c != 201 {
		t.Fatalf("first: %d %v", c, b)
	}
	c, b := send()
	if ev, _ := b["event"].(map[string]any); c != 200 || ev["replayed"] != true {
		t.Fatalf("retry: %d %v", c, b)
	}
}
