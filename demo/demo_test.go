package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/demo"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/system"
)

const testSeed = 20261120

var testEnd = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// seeded starts a fresh system on a demo clock and seeds it.
func seeded(t *testing.T, seed int64) (*system.System, *demo.Clock, demo.Summary) {
	t.Helper()
	ctx := context.Background()
	clock := demo.NewClock(testEnd.AddDate(-2, 0, 0))
	sys, err := system.Start(ctx, system.Config{DataDir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	began := time.Now()
	sum, err := demo.Seed(ctx, sys, clock, seed, testEnd)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	b, _ := json.Marshal(sum)
	t.Logf("Seed(%d) took %s: %s", seed, time.Since(began).Round(time.Millisecond), b)
	return sys, clock, sum
}

// get reads path as principal p, decoding the JSON answer into out.
func get(t *testing.T, sys *system.System, p auth.Principal, path string, out any) {
	t.Helper()
	tok, err := sys.Tokens.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	sys.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatal(err)
	}
}

var commercial = auth.Principal{Role: auth.Commercial, Name: "demo-test"}

// ledgerTrail is what an auditor compares between two runs: each entry's
// event type and supplier, and for supplier events the event id (derived
// from the seed's idempotency keys or from the rules, never random).
func ledgerTrail(t *testing.T, sys *system.System) []string {
	t.Helper()
	entries, err := sys.Ledger.Entries(1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
		line := o.Event.Type.String() + " " + o.Event.SupplierId
		if o.Event.SupplierId != "" {
			line += " " + o.Event.EventId + " " + o.OccurredAt().Format(time.RFC3339)
		}
		out = append(out, line)
	}
	return out
}

func TestSeed(t *testing.T) {
	sys, clock, sum := seeded(t, testSeed)

	if sum.Suppliers != 12 || sum.Skipped != 0 {
		t.Errorf("summary: %d suppliers, %d skipped steps; want 12 and 0", sum.Suppliers, sum.Skipped)
	}
	if sum.Events < 300 || sum.Events > 4000 {
		t.Errorf("%d events appended; want a few hundred to a few thousand", sum.Events)
	}
	if got := calendarDay(clock.Now()); got != "2026-11-20" {
		t.Errorf("clock after seeding reads %s, want the end date", got)
	}

	var list struct {
		Suppliers []struct {
			SupplierID string `json:"supplier_id"`
			Name       string `json:"name"`
			Rating     string `json:"rating"`
		} `json:"suppliers"`
	}
	get(t, sys, commercial, "/v1/suppliers", &list)
	if len(list.Suppliers) != 12 {
		t.Fatalf("GET /v1/suppliers lists %d suppliers, want 12", len(list.Suppliers))
	}
	ratings := map[string]int{}
	for _, s := range list.Suppliers {
		ratings[s.Rating]++
		if !fictional(s.Name) {
			t.Errorf("supplier %s is named %q, not obviously fictional", s.SupplierID, s.Name)
		}
	}
	for _, label := range []string{rules.Good, rules.ApproachingTarget, rules.RequiresImprovement, rules.Inadequate} {
		if ratings[label] == 0 {
			t.Errorf("no supplier rated %q (ratings %v)", label, ratings)
		}
	}

	found := map[string]int{}
	for _, s := range list.Suppliers {
		card, err := sys.Ledger.Card(s.SupplierID)
		if err != nil {
			t.Fatal(err)
		}
		if len(card.Ignored) > 0 {
			t.Errorf("%s: ignored events %+v", s.SupplierID, card.Ignored)
		}
		for _, b := range card.Breaches {
			found["breach"]++
			found["breach "+b.Rule.RuleID]++
			if b.Status == scorecard.BreachWithdrawn {
				found["breach withdrawn"]++
			}
			if b.Status == scorecard.BreachRemediated {
				found["breach remediated"]++
			}
			for _, e := range b.Escalations {
				found["level "+string(rune('0'+e.Level))]++
			}
		}
		for _, d := range card.Disputes {
			found["dispute "+d.Status]++
		}
		for _, r := range card.Reviews {
			found["review "+r.Status]++
			if r.Status == "closed" && r.Reason == "" {
				t.Errorf("review %s closed without a reason", r.ID)
			}
		}
		for _, cm := range card.Commitments {
			if cm.Withdrawal != nil {
				if cm.Withdrawal.On <= cm.TargetDate {
					found["withdrawn before target"]++
				} else {
					found["withdrawn after target"]++
				}
			}
		}
		found["plan"] += len(card.Plans)
	}
	t.Logf("found: %v", found)
	for _, want := range []string{
		"breach", "breach " + rules.MissedTarget.ID, "breach " + rules.NonConformance.ID, "breach " + rules.Withdrawal.ID,
		"breach remediated", "breach withdrawn", "level 1", "level 2",
		"dispute upheld", "dispute rejected", "review closed", "plan",
		"withdrawn before target", "withdrawn after target",
	} {
		if found[want] == 0 {
			t.Errorf("the seeded ledger has no %q", want)
		}
	}
	if sum.Breaches != found["breach"] || sum.Plans != found["plan"] || sum.ReviewsClosed != found["review closed"] {
		t.Errorf("summary %+v disagrees with the scorecards %v", sum, found)
	}

	// The ledger verifies, and every consequence in it is one the rules
	// required when it was recorded, with nothing missing: the checks
	// `sal verify` and `sal audit-rules` make.
	if _, err := sys.Ledger.Verify(context.Background()); err != nil {
		t.Errorf("ledger does not verify: %v", err)
	}
	cal, err := calendar.England()
	if err != nil {
		t.Fatal(err)
	}
	findings, err := audit.Rules(context.Background(), sys.Ledger, rules.New(cal), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("audit-rules: %+v", f)
	}

	// A second seed is refused.
	if _, err := demo.Seed(context.Background(), sys, clock, testSeed, testEnd); !errors.Is(err, demo.ErrNotEmpty) {
		t.Errorf("second Seed: %v, want ErrNotEmpty", err)
	}

	// Same seed, fresh system: the same history.
	sys2, _, sum2 := seeded(t, testSeed)
	a, b := ledgerTrail(t, sys), ledgerTrail(t, sys2)
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("runs differ at entry %d: %q vs %q (lengths %d, %d)", i+1, a[i], b[i], len(a), len(b))
			}
		}
		t.Fatalf("runs differ in length: %d vs %d", len(a), len(b))
	}
	if !reflect.DeepEqual(sum, sum2) {
		t.Errorf("summaries differ:\n%+v\n%+v", sum, sum2)
	}

	// Released, the clock follows the wall clock.
	clock.Release()
	if d := time.Since(clock.Now()); d < -time.Second || d > time.Second {
		t.Errorf("released clock is %s off the wall clock", d)
	}
}

func TestSeedOtherSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a full system per seed")
	}
	for _, seed := range []int64{1, 42} {
		sys, _, sum := seeded(t, seed)
		if sum.Skipped != 0 {
			t.Errorf("seed %d: %d planned steps skipped", seed, sum.Skipped)
		}
		var list struct {
			Suppliers []struct {
				Rating string `json:"rating"`
			} `json:"suppliers"`
		}
		get(t, sys, commercial, "/v1/suppliers", &list)
		ratings := map[string]int{}
		for _, s := range list.Suppliers {
			ratings[s.Rating]++
		}
		if want := map[string]int{rules.Good: 3, rules.ApproachingTarget: 3, rules.RequiresImprovement: 3, rules.Inadequate: 3}; !mapsEqual(ratings, want) {
			t.Errorf("seed %d: ratings %v, want %v", seed, ratings, want)
		}
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC)
	c := demo.NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %s, want %s", c.Now(), start)
	}
	c.Set(start.Add(time.Hour))
	if !c.Now().Equal(start.Add(time.Hour)) {
		t.Fatalf("Now after Set = %s", c.Now())
	}
	c.Release()
	if d := time.Since(c.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("released clock is %s off the wall clock", d)
	}
	c.Set(start)
	if d := time.Since(c.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("Set after Release moved the clock: %s off", d)
	}
}

func TestSeedRefusesALaterLedger(t *testing.T) {
	ctx := context.Background()
	clock := demo.NewClock(testEnd) // the services' keys are registered at the end date
	sys, err := system.Start(ctx, system.Config{DataDir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if _, err := demo.Seed(ctx, sys, clock, 1, testEnd); err == nil || errors.Is(err, demo.ErrNotEmpty) {
		t.Fatalf("Seed on a ledger appended after the start: %v, want a clock error", err)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func fictional(name string) bool {
	for _, w := range []string{"Fictional", "Example", "Demo", "Placeholder", "Sample", "Make-Believe", "NotReal", "Imaginary", "Pretend", "Mock", "Dummy"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

func calendarDay(t time.Time) string { return t.UTC().Format("2006-01-02") }
