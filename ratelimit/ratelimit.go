// Package ratelimit bounds how fast each caller may write: one token
// bucket per authenticated principal, refilled at a steady rate, so that a
// client sending writes as fast as it can slows down itself and nobody
// else. Reads are never limited.
//
// A Limiter is a value owned by whoever builds the HTTP handler
// (system.Start); nothing here is global. It keeps a bucket only for a
// principal that has written recently: a bucket that has refilled is the
// same as none, and is dropped when the map grows.
package ratelimit

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/services/api"
)

// The defaults are generous: a person using the pages writes a few times
// a minute, and the demo seeder, which writes as fast as the ledger
// commits (one fsync'd commit per request), stays well under them. They
// are there to stop one token flooding the event stream and the ledger,
// not to meter normal use.
const (
	// DefaultRate is the sustained writes per second a principal may make.
	DefaultRate = 50.0
	// DefaultBurst is how many writes a principal may make at once after
	// a quiet spell.
	DefaultBurst = 200
)

// Limiter holds a token bucket per principal: role, supplier id and name,
// so two tokens issued to the same principal share one. A nil *Limiter
// limits nothing.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[auth.Principal]*bucket
	nextSweep int // sweep full buckets when the map reaches this size
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// minSweep is the map size below which full buckets are left alone.
const minSweep = 1024

// New returns a limiter letting each principal make rate writes a second,
// and up to burst at once. A zero rate or burst takes its default; a
// negative one turns limiting off (New returns nil). A rate that is not a
// number takes the default too.
func New(rate float64, burst int) *Limiter {
	if rate < 0 || burst < 0 {
		return nil
	}
	if rate == 0 || math.IsNaN(rate) {
		rate = DefaultRate
	}
	if burst == 0 {
		burst = DefaultBurst
	}
	return &Limiter{
		rate:      rate,
		burst:     float64(burst),
		now:       time.Now,
		buckets:   map[auth.Principal]*bucket{},
		nextSweep: minSweep,
	}
}

// Rate is the sustained writes per second allowed to each principal (0
// when l is nil: no limit).
func (l *Limiter) Rate() float64 {
	if l == nil {
		return 0
	}
	return l.rate
}

// Burst is how many writes a principal may make at once (0 when l is nil).
func (l *Limiter) Burst() int {
	if l == nil {
		return 0
	}
	return int(l.burst)
}

// Allow spends one token of p's bucket. When none is left it spends
// nothing and says how long until one is.
func (l *Limiter) Allow(p auth.Principal) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, found := l.buckets[p]
	if !found {
		if len(l.buckets) >= l.nextSweep {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[p] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
}

// sweep drops the buckets that have refilled (the same as having none),
// and sets the size at which to sweep again, so that sweeping stays cheap
// however many principals are writing.
func (l *Limiter) sweep(now time.Time) {
	for p, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, p)
		}
	}
	l.nextSweep = max(minSweep, 2*len(l.buckets))
}

// Limited says whether a request with this method spends a token: every
// method but GET, HEAD and OPTIONS, which change nothing.
func Limited(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// Writes wraps next so that a request that may change something (see
// Limited) spends a token of its principal's bucket. With none left the
// answer is 429 Too Many Requests with a Retry-After header (whole
// seconds) and the API's one-line JSON error, and next does not run.
//
// The principal is the one auth.Store.Require (or the pages' session)
// put in the request's context, so wrap inside authentication. A request
// without one passes: it has nobody to be counted against.
func (l *Limiter) Writes(next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok || !Limited(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.Allow(p); !ok {
			secs := int64(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
			api.WriteError(w, api.Errorf(http.StatusTooManyRequests,
				"too many writes: %s may make %g a second, %d at once; retry in %d s", p, l.rate, int(l.burst), max(secs, 1)))
			return
		}
		next.ServeHTTP(w, r)
	})
}
