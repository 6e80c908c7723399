package ratelimit

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/auth"
)

var (
	acme   = auth.Principal{Role: auth.Supplier, SupplierID: "acme-health", Name: "demo-acme-health"}
	bright = auth.Principal{Role: auth.Supplier, SupplierID: "bright-records", Name: "demo-bright-records"}
	alex   = auth.Principal{Role: auth.Commercial, Name: "alex"}
)

// clock is a hand-moved clock: the limiter's arithmetic is checked
// exactly, with no sleeping.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(tb testing.TB, rate float64, burst int) (*Limiter, *clock) {
	tb.Helper()
	l := New(rate, burst)
	if l == nil {
		tb.Fatalf("New(%g, %d) = nil", rate, burst)
	}
	c := &clock{t: time.Date(2027, 3, 31, 10, 0, 0, 0, time.UTC)}
	l.now = c.now
	return l, c
}

func TestBucketBurstThenRefill(t *testing.T) {
	l, c := newTestLimiter(t, 2, 3) // two a second, three at once
	type step struct {
		advance   time.Duration
		who       auth.Principal
		ok        bool
		retryWant time.Duration
	}
	steps := []step{
		{0, acme, true, 0},
		{0, acme, true, 0},
		{0, acme, true, 0},
		{0, acme, false, 500 * time.Millisecond}, // burst spent: one token in 1/rate
		{0, bright, true, 0},                     // another principal has its own bucket
		{0, alex, true, 0},
		{250 * time.Millisecond, acme, false, 250 * time.Millisecond}, // half a token back
		{250 * time.Millisecond, acme, true, 0},                       // a whole one
		{0, acme, false, 500 * time.Millisecond},
		{time.Hour, acme, true, 0}, // refilled, but only up to the burst
		{0, acme, true, 0},
		{0, acme, true, 0},
		{0, acme, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		c.advance(s.advance)
		ok, retry := l.Allow(s.who)
		if ok != s.ok || retry != s.retryWant {
			t.Fatalf("step %d (%s after +%s): Allow = %v, retry after %s; want %v, %s", i, s.who, s.advance, ok, retry, s.ok, s.retryWant)
		}
	}
}

func TestRefusedWritesSpendNothing(t *testing.T) {
	l, c := newTestLimiter(t, 1, 1)
	if ok, _ := l.Allow(acme); !ok {
		t.Fatal("first write refused")
	}
	// Hammering while empty must not push the next token further away.
	for range 99 {
		c.advance(10 * time.Millisecond)
		if ok, _ := l.Allow(acme); ok {
			t.Fatal("a write allowed before its token was back")
		}
	}
	c.advance(10 * time.Millisecond)
	if ok, retry := l.Allow(acme); !ok {
		t.Fatalf("refused a second after the last allowed write (retry after %s): refusals spent tokens", retry)
	}
}

func TestNewDefaultsAndOff(t *testing.T) {
	for _, tc := range []struct {
		rate      float64
		burst     int
		off       bool
		wantRate  float64
		wantBurst int
	}{
		{0, 0, false, DefaultRate, DefaultBurst},
		{math.NaN(), 0, false, DefaultRate, DefaultBurst},
		{5, 0, false, 5, DefaultBurst},
		{0, 7, false, DefaultRate, 7},
		{0.5, 2, false, 0.5, 2},
		{-1, 0, true, 0, 0},
		{0, -1, true, 0, 0},
	} {
		l := New(tc.rate, tc.burst)
		if (l == nil) != tc.off || l.Rate() != tc.wantRate || l.Burst() != tc.wantBurst {
			t.Errorf("New(%g, %d): off %v, rate %g, burst %d; want off %v, rate %g, burst %d",
				tc.rate, tc.burst, l == nil, l.Rate(), l.Burst(), tc.off, tc.wantRate, tc.wantBurst)
		}
	}
	var off *Limiter
	for range 1000 {
		if ok, _ := off.Allow(acme); !ok {
			t.Fatal("a nil limiter refused a write")
		}
	}
	h := off.Writes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }))
	req := httptest.NewRequest("POST", "/v1/suppliers", nil)
	req = req.WithContext(auth.WithPrincipal(req.Context(), acme))
	for range 1000 {
		rec := httptest.NewRecorder()
		if h.ServeHTTP(rec, req); rec.Code != http.StatusCreated {
			t.Fatalf("a nil limiter's handler answered %d", rec.Code)
		}
	}
}

// TestWritesMiddleware checks the HTTP side: which methods spend tokens,
// the 429's header and body, and that a refused request never reaches the
// handler.
func TestWritesMiddleware(t *testing.T) {
	l, c := newTestLimiter(t, 0.5, 2) // one token every 2 s
	reached := 0
	h := l.Writes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusCreated)
	}))
	call := func(method string, p *auth.Principal) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/v1/suppliers", strings.NewReader(`{}`))
		if p != nil {
			req = req.WithContext(auth.WithPrincipal(req.Context(), *p))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	for _, m := range []string{"POST", "PUT"} {
		if rec := call(m, &acme); rec.Code != http.StatusCreated {
			t.Fatalf("%s within the burst: %d", m, rec.Code)
		}
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		before := reached
		rec := call(m, &acme)
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("%s over the burst: %d, want 429", m, rec.Code)
		}
		if reached != before {
			t.Fatalf("%s: a refused write reached the handler", m)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "2" {
			t.Errorf("%s: Retry-After %q, want \"2\" (whole seconds until a token)", m, ra)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", m, ct)
		}
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body) != 1 || !strings.Contains(body["error"], "too many writes") {
			t.Errorf("%s: body %q is not the one-line JSON error", m, rec.Body.String())
		}
	}
	// Reads are never limited, whoever asks and however often.
	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		for range 50 {
			if rec := call(m, &acme); rec.Code != http.StatusCreated {
				t.Fatalf("%s with an empty bucket: %d", m, rec.Code)
			}
		}
	}
	// Other principals write on; a request with no principal passes (it
	// has nobody to count against: authentication comes first).
	if rec := call("POST", &bright); rec.Code != http.StatusCreated {
		t.Fatalf("another principal's write: %d", rec.Code)
	}
	if rec := call("POST", nil); rec.Code != http.StatusCreated {
		t.Fatalf("a write without a principal: %d", rec.Code)
	}
	// A fraction of a second still rounds Retry-After up to a whole one.
	c.advance(1500 * time.Millisecond)
	if rec := call("POST", &acme); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("0.5 s short of a token: %d, Retry-After %q; want 429, \"1\"", rec.Code, rec.Header().Get("Retry-After"))
	}
	c.advance(500 * time.Millisecond)
	if rec := call("POST", &acme); rec.Code != http.StatusCreated {
		t.Fatalf("after the refill: %d", rec.Code)
	}
	if n, err := strconv.Atoi(call("POST", &acme).Header().Get("Retry-After")); err != nil || n != 2 {
		t.Fatalf("Retry-After after spending the refilled token: %d, %v", n, err)
	}
}

func TestConcurrentWritersGetExactlyTheBurst(t *testing.T) {
	l, _ := newTestLimiter(t, 1, 25) // the clock stands still: no refill
	var mu sync.Mutex
	allowed := map[auth.Principal]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		p := []auth.Principal{acme, bright}[i%2]
		wg.Go(func() {
			if ok, _ := l.Allow(p); ok {
				mu.Lock()
				allowed[p]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed[acme] != 25 || allowed[bright] != 25 {
		t.Fatalf("allowed %v, want 25 each", allowed)
	}
}

func TestSweepForgetsRefilledBuckets(t *testing.T) {
	l, c := newTestLimiter(t, 1, 5)
	for i := range minSweep {
		l.Allow(auth.Principal{Role: auth.Commercial, Name: fmt.Sprint("user-", i)})
	}
	if len(l.buckets) != minSweep {
		t.Fatalf("%d buckets, want %d", len(l.buckets), minSweep)
	}
	c.advance(500 * time.Millisecond) // half a token back each: not yet full
	l.Allow(alex)
	if len(l.buckets) != minSweep+1 {
		t.Fatalf("%d buckets after a sweep with none full; want %d", len(l.buckets), minSweep+1)
	}
	// Nothing was dropped, so the next sweep waits for the map to double.
	if l.nextSweep != 2*minSweep {
		t.Fatalf("next sweep at %d, want %d", l.nextSweep, 2*minSweep)
	}
	c.advance(time.Minute) // everyone full again: the same as no bucket
	for i := range minSweep {
		l.Allow(auth.Principal{Role: auth.Auditor, Name: fmt.Sprint("auditor-", i)})
	}
	if len(l.buckets) > minSweep+1 {
		t.Fatalf("%d buckets: the refilled ones were kept", len(l.buckets))
	}
	// A forgotten bucket comes back full.
	for range 5 {
		if ok, _ := l.Allow(auth.Principal{Role: auth.Commercial, Name: "user-0"}); !ok {
			t.Fatal("a forgotten principal did not start with a full bucket")
		}
	}
}
