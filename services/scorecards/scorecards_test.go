package scorecards_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/services/scorecards"
)

// now is the moment the generated ledgers are read at.
var now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// generated is a ledger of n generated events (bench.Events) in a temporary
// directory, and the rules engine.
func generated(tb testing.TB, n int) (*ledger.Ledger, *rules.Engine) {
	tb.Helper()
	k := bench.DeterministicKeys("scorecards")
	evs, err := bench.Events(k, n)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := ledger.Open(filepath.Join(tb.TempDir(), "ledger.db"), k.Root.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return now }, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	for i := 0; i < n; i += 1000 {
		if _, err := l.Append(context.Background(), evs[i:min(i+1000, n)]); err != nil {
			tb.Fatal(err)
		}
	}
	cal, err := calendar.England()
	if err != nil {
		tb.Fatal(err)
	}
	return l, rules.New(cal)
}

// BenchmarkScorecardCold serves scorecards of the generated workload (200
// events a supplier, as `sal bench` makes) with nothing cached: the cost
// of a read of a supplier nobody asked about lately.
func BenchmarkScorecardCold(b *testing.B) {
	const n = 20_000
	l, engine := generated(b, n)
	ids := bench.SupplierIDs(n)
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Commercial, Name: "bench"})
	b.ResetTimer()
	for i := range b.N {
		mux := http.NewServeMux()
		scorecards.New(l, engine, func() time.Time { return now }).Register(mux)
		req := httptest.NewRequest("GET", "/v1/suppliers/"+ids[i%len(ids)]+"/scorecard", nil).WithContext(ctx)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
}

// TestServedScorecardIsTheViewAsJSON: the served scorecard (the stored
// card's bytes with the rating and clocks added) says exactly what the
// View encoded as JSON says, for every supplier of the generated workload.
func TestServedScorecardIsTheViewAsJSON(t *testing.T) {
	const n = 4_000
	l, engine := generated(t, n)
	mux := http.NewServeMux()
	scorecards.New(l, engine, func() time.Time { return now }).Register(mux)
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Role: auth.Commercial, Name: "test"})
	for _, id := range bench.SupplierIDs(n) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/suppliers/"+id+"/scorecard", nil).WithContext(ctx))
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", id, rec.Code, rec.Body)
		}
		card, err := l.Card(id)
		if err != nil {
			t.Fatal(err)
		}
		v, err := scorecards.Explain(engine, card, calendar.Today(now))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		var got, wantV any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: served scorecard is not JSON: %v", id, err)
		}
		_ = json.Unmarshal(want, &wantV)
		if !reflect.DeepEqual(got, wantV) {
			t.Fatalf("%s: served scorecard differs from the view", id)
		}
	}
}
