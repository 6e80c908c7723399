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

// BenchmarkScorecardCold serves scorecards of the generated workload (200
// events a supplier, as `sal bench` makes) with nothing cached: the cost
// of a read of a supplier nobody asked about lately.
func BenchmarkScorecardCold(b *testing.B) {
	k := bench.DeterministicKeys("cold")
	const n = 20_000
	evs, err := bench.Events(k, n)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(filepath.Join(b.TempDir(), "ledger.db"), k.Root.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return now }, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < n; i += 1000 {
		if _, err := l.Append(context.Background(), evs[i:min(i+1000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	cal, err := calendar.England()
	if err != nil {
		b.Fatal(err)
	}
	ids := bench.SupplierIDs(n)
	engine := rules.New(cal)
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
	k := bench.DeterministicKeys("served")
	const n = 4_000
	evs, err := bench.Events(k, n)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), k.Root.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return now }, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	cal, err := calendar.England()
	if err != nil {
		t.Fatal(err)
	}
	engine := rules.New(cal)
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
