package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/system"
	"github.com/supplier-accountability/sal/system/systemtest"
)

type split struct {
	*systemtest.Split
	clock  *testClock
	tokens map[string]string
}

func startSplit(t *testing.T) *split {
	t.Helper()
	clock := &testClock{at: time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)}
	st := systemtest.Start(t, system.Config{DataDir: t.TempDir(), Now: clock.now})
	sp := &split{Split: st, clock: clock, tokens: map[string]string{}}
	for _, d := range st.DemoTokens {
		sp.tokens[d.Role] = d.Token
	}
	return sp
}

func (sp *split) do(t *testing.T, role, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, sp.URLs[role]+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestSplitServicesBehaveAsOneProcess runs the README's walk through the
// gateway of a system split into one process per service: each write goes
// to the service that owns it, each read shows the writes before it, the
// pages' forms reach a service in another process, enforcement in its own
// process raises a breach, and every replica of the ledger reaches the same
// Merkle root as the ledger of record, whose audit verifies.
func TestSplitServicesBehaveAsOneProcess(t *testing.T) {
	sp := startSplit(t)
	acme, commercial, auditor := sp.tokens["supplier:acme-health"], sp.tokens["commercial"], sp.tokens["auditor"]
	gw := system.RoleGateway

	if c, b := sp.do(t, gw, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme Health Systems Ltd"}`); c != 201 {
		t.Fatalf("register through the gateway: %d %v", c, b)
	}
	c, b := sp.do(t, gw, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"PACS viewer","target_date":"2027-03-31"}`)
	if c != 201 {
		t.Fatalf("commit: %d %v", c, b)
	}
	cm := b["commitment_id"].(string)
	sp.clock.set(time.Date(2027, 5, 10, 9, 0, 0, 0, time.UTC))
	c, b = sp.do(t, gw, "POST", "/v1/suppliers/acme-health/commitments/"+cm+"/assessments", commercial, `{"outcome":"non_conformant","evidence_ref":"ASSURE-1","assessor":"R. Okafor"}`)
	if c != 201 {
		t.Fatalf("assess: %d %v", c, b)
	}
	// Read straight after the write, through the scorecards service.
	c, b = sp.do(t, gw, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	if c != 200 {
		t.Fatalf("scorecard: %d %v", c, b)
	}
	if got := fmt.Sprint(b["commitments"]); !strings.Contains(got, "non_conformant") {
		t.Fatalf("the scorecard read after the assessment does not show it: %v", got)
	}
	// A supplier still cannot read another's scorecard, answered by the
	// scorecards service behind the gateway.
	if c, _ := sp.do(t, gw, "GET", "/v1/suppliers/bright-records/scorecard", acme, ""); c != 403 {
		t.Fatalf("another supplier's scorecard: %d, want 403", c)
	}
	// Each service answers only its own routes.
	if c, _ := sp.do(t, system.RoleScorecards, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"x"}`); c != 404 && c != 405 {
		t.Fatalf("the scorecards service took a write: %d", c)
	}

	// Enforcement, in its own process, raises the breach the rules require.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, b = sp.do(t, gw, "POST", "/v1/enforcement/evaluate", commercial, "")
		if c != 200 {
			t.Fatalf("evaluate: %d %v", c, b)
		}
		_, b = sp.do(t, gw, "GET", "/v1/suppliers/acme-health/scorecard", commercial, "")
		if strings.Contains(fmt.Sprint(b["breaches"]), "br") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no breach raised for a non-conformant assessment: %v", b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The pages: sign in at the gateway and record an assessment through
	// the form; the assessments service authenticates the user itself.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(sp.URLs[gw]+"/signin", url.Values{"token": {commercial}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "sal_session" {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie after sign-in")
	}
	form := getPage(t, sp.URLs[gw]+"/suppliers/acme-health/actions/assess?commitment="+cm, session)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(form)
	if csrf == nil {
		t.Fatalf("no CSRF token on the assessment form: %s", form)
	}
	vals := url.Values{"csrf": {csrf[1]}, "commitment": {cm}, "outcome": {"conformant"}, "evidence_ref": {"ASSURE-2"}, "assessor": {"R. Okafor"}}
	req, _ := http.NewRequest("POST", sp.URLs[gw]+"/suppliers/acme-health/actions/assess", strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(session)
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("assessment form: %d", resp.StatusCode)
	}
	if page := getPage(t, sp.URLs[gw]+"/suppliers/acme-health", session); !strings.Contains(page, "ASSURE-2") || !strings.Contains(page, "Signed and stored in the ledger") {
		t.Fatalf("the scorecard page after the form does not show the assessment it recorded")
	}

	// Enforcement closes the breach the conformant assessment remedied.
	// Wait for it: until then the log is still growing.
	for {
		_, b = sp.do(t, gw, "GET", "/v1/suppliers/acme-health/scorecard", commercial, "")
		if strings.Contains(fmt.Sprint(b["breaches"]), "status:remediated") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the breach was not closed after a conformant assessment: %v", b["breaches"])
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Every replica reaches the ledger of record's size and Merkle root
	// (compare each replica with the ledger of record as it stands at the
	// same moment).
	for role := range sp.Systems {
		for {
			_, lb := sp.do(t, system.RoleLedger, "GET", "/readyz", "", "")
			_, b := sp.do(t, role, "GET", "/readyz", "", "")
			if b["size"] == lb["size"] && b["root"] == lb["root"] && b["root"] != nil {
				break
			}
			if time.Now().After(deadline.Add(10 * time.Second)) {
				t.Fatalf("%s replica at %v (root %v), the ledger of record at %v (root %v)", role, b["size"], b["root"], lb["size"], lb["root"])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c, b = sp.do(t, gw, "POST", "/v1/audit/verify", auditor, "")
	if c != 200 || b["ok"] != true {
		t.Fatalf("audit verify through the gateway: %d %v", c, b)
	}
	// The full verification: every entry, the signed checkpoints, the
	// replayed scorecards; its root is the ledger of record's.
	_, lb := sp.do(t, system.RoleLedger, "GET", "/readyz", "", "")
	if b["verified"].(float64) < lb["size"].(float64) || b["checkpoints"].(float64) < 1 || b["suppliers"].(float64) != 1 {
		t.Fatalf("verify answered %v; the ledger of record is at %v", b, lb)
	}
}

// testClock is the one clock every process of the split system reads.
type testClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = t
}

func getPage(t *testing.T, u string, session *http.Cookie) string {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.AddCookie(session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return string(b)
}

// TestSplitKeyRotation: `sal keys init -rotate commitments` and a restart
// of the commitments service replace its key: the new one is authorized
// and the old one retired by root-signed events the service publishes;
// writes go on; an event signed with the old key is quarantined as
// retired_key; the log verifies.
func TestSplitKeyRotation(t *testing.T) {
	sp := startSplit(t)
	acme, auditor := sp.tokens["supplier:acme-health"], sp.tokens["auditor"]
	gw := system.RoleGateway
	if c, b := sp.do(t, gw, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`); c != 201 {
		t.Fatalf("register: %d %v", c, b)
	}
	oldKey, err := keys.Load(filepath.Join(sp.KeyDir(), "commitments.key"))
	if err != nil {
		t.Fatal(err)
	}
	old := envelope.NewSigner(oldKey)
	if _, err := system.InitKeys(sp.KeyDir(), sp.RootKeyFile(), []string{"commitments"}, sp.clock.now()); err != nil {
		t.Fatal(err)
	}
	if err := sp.RestartService(system.RoleCommitments); err != nil {
		t.Fatal(err)
	}
	if c, b := sp.do(t, gw, "POST", "/v1/suppliers/acme-health/commitments", acme, `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`); c != 201 {
		t.Fatalf("commit after the rotation: %d %v", c, b)
	}
	ledgerOfRecord := sp.Ledger().Ledger
	if err := sp.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, ok := ledgerOfRecord.Registry().Lookup(old.KeyID())
	if !ok || a.RetiredAt == 0 {
		t.Fatalf("old key %s not retired in the ledger of record: %+v", old.KeyID(), a)
	}
	newKey, err := keys.Load(filepath.Join(sp.KeyDir(), "commitments.key"))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := ledgerOfRecord.Registry().Lookup(envelope.NewSigner(newKey).KeyID()); !ok || n.RetiredAt != 0 {
		t.Fatalf("new key not in force: %+v", n)
	}
	raw, ev, err := old.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: sp.clock.now(), Payload: &pb.CommitmentMade{CommitmentId: "cm_old_key", StandardId: "DICOM", StandardVersion: "2024d", Product: "x", TargetDate: "2027-12-31"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.NewPublisher(sp.Ledger().JetStream()).Publish(context.Background(), broker.Subject(ev.Type, "acme-health"), ev.EventId, raw); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := ledgerOfRecord.Wait(ctx, ev.EventId)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Quarantined || !strings.Contains(r.Reason, "retired") {
		t.Fatalf("event signed with the retired key: %+v, want quarantined as retired", r)
	}
	if c, b := sp.do(t, gw, "POST", "/v1/audit/verify", auditor, ""); c != 200 || b["ok"] != true {
		t.Fatalf("verify after the rotation: %d %v", c, b)
	}
}
