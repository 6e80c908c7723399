package web_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/standards"
	"github.com/supplier-accountability/sal/web"
)

// bigSupplier builds a ledger holding one supplier with 200 commitments
// and 5,000 events in all, and a pages server over it.
func bigSupplier(b *testing.B) (http.Handler, *http.Cookie) {
	b.Helper()
	dir := b.TempDir()
	_, rootKey, _ := ed25519.GenerateKey(nil)
	_, svcKey, _ := ed25519.GenerateKey(nil)
	root, svc := envelope.NewSigner(rootKey), envelope.NewSigner(svcKey)
	now := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
	l, err := ledger.Open(filepath.Join(dir, "ledger.db"), rootKey.Public().(ed25519.PublicKey), ledger.Options{Now: func() time.Time { return now }, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	at := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	var raws [][]byte
	var types []pb.EventType
	for t := range pb.EventType_name {
		if t > 2 {
			types = append(types, pb.EventType(t))
		}
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	add := func(s *envelope.Signer, supplier string, d envelope.Draft) {
		at = at.Add(time.Hour)
		d.SupplierID, d.OccurredAt = supplier, at
		raw, _, err := s.Seal(d)
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, raw)
	}
	add(root, "", envelope.Draft{Payload: &pb.KeyAuthorized{KeyId: svc.KeyID(), PublicKey: svc.PublicKey(), Holder: "service:bench", EventTypes: types}})
	add(svc, "big-supplier", envelope.Draft{Payload: &pb.SupplierRegistered{Name: "Example Big Supplier Ltd"}})
	cat := standards.All()
	for i := range 200 {
		add(svc, "big-supplier", envelope.Draft{Payload: &pb.CommitmentMade{CommitmentId: fmt.Sprintf("cm_%03d", i), StandardId: cat[i%len(cat)].ID, StandardVersion: "1", Product: "Product", TargetDate: "2026-03-31"}})
	}
	for i := 0; len(raws) < 5000; i++ {
		cm := fmt.Sprintf("cm_%03d", i%200)
		add(svc, "big-supplier", envelope.Draft{Payload: &pb.AssessmentRecorded{AssessmentId: fmt.Sprintf("as_%05d", i), CommitmentId: cm, Outcome: pb.Outcome(1 + i%3), EvidenceRef: "E", Assessor: "A", AssessedOn: "2026-04-01"}})
		if i%10 == 0 && len(raws) < 5000 {
			add(svc, "big-supplier", envelope.Draft{Payload: &pb.BreachRaised{BreachId: fmt.Sprintf("br_%05d", i), CommitmentId: cm, Severity: pb.Severity_SEVERITY_MINOR, RaisedOn: "2026-04-01", Rule: &pb.RuleCitation{RuleId: "R2-non-conformance", RuleVersion: "1"}}})
		}
	}
	for i := 0; i < len(raws); i += 500 {
		if _, err := l.Append(context.Background(), raws[i:min(i+500, len(raws))]); err != nil {
			b.Fatal(err)
		}
	}
	tokens, err := auth.OpenStore(filepath.Join(dir, "tokens.json"))
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := tokens.Issue(auth.Principal{Role: auth.Commercial, Name: "bench"})
	cal, _ := calendar.England()
	pages, err := web.New(l, tokens, http.NotFoundHandler(), rules.New(cal), func() time.Time { return now })
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	pages.Register(mux)
	req := httptest.NewRequest("POST", "/signin", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		b.Fatalf("sign-in set no cookie: %d %s", rec.Code, rec.Body.String())
	}
	return mux, cookies[0]
}

// BenchmarkScorecardPage serves the scorecard page of a supplier with 200
// commitments and 5,000 events and reports the 99th percentile latency.
func BenchmarkScorecardPage(b *testing.B) {
	h, cookie := bigSupplier(b)
	get := func() time.Duration {
		req := httptest.NewRequest("GET", "/suppliers/big-supplier", nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(start)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Example Big Supplier Ltd") {
			b.Fatalf("page: %d", rec.Code)
		}
		return d
	}
	get() // warm the trend cache, as any first visitor does
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, get())
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
