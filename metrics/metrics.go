// Package metrics holds the Prometheus collectors of a running instance and
// the small adapters that feed them: an HTTP middleware, a ledger batch
// observer, a publish counter and a consumer-lag gauge. Collectors are
// registered on a registry the caller owns; nothing here is global.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/supplier-accountability/sal/ledger"
)

// Metrics are the instance's collectors.
type Metrics struct {
	reg         *prometheus.Registry
	published   *prometheus.CounterVec
	appended    prometheus.Counter
	duplicates  prometheus.Counter
	quarantined *prometheus.CounterVec
	batchSize   prometheus.Histogram
	batchTime   prometheus.Histogram
	failures    *prometheus.CounterVec
	failing     prometheus.Gauge
	requests    *prometheus.CounterVec
	lag         prometheus.Gauge
}

// New registers the collectors on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sal_events_published_total", Help: "Signed events published to JetStream by the services, by event type.",
		}, []string{"type"}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sal_events_appended_total", Help: "Events appended to the ledger.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sal_events_duplicate_total", Help: "Redelivered or republished events the ledger already held.",
		}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sal_events_quarantined_total", Help: "Messages the ledger refused, by reason code.",
		}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sal_append_batch_size", Help: "Messages per ledger append transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sal_append_batch_seconds", Help: "Time to verify, append, checkpoint and project one batch, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sal_append_failures_total", Help: "Ledger append transactions that failed and stored nothing (they are retried), by reason: no_space (the disk is full) or other.",
		}, []string{"reason"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sal_append_failing", Help: "1 while the ledger's last append failed (nothing new is being recorded; see the logs), 0 once one commits.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sal_http_requests_total", Help: "HTTP requests, by route pattern and status code.",
		}, []string{"route", "code"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sal_consumer_lag_messages", Help: "Messages on the event stream the ledger's consumer has not yet acknowledged.",
		}),
	}
	m.reg.MustRegister(m.published, m.appended, m.duplicates, m.quarantined, m.batchSize, m.batchTime, m.failures, m.failing, m.requests, m.lag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Batch implements ledger.Observer.
func (m *Metrics) Batch(results []ledger.Result, took time.Duration) {
	m.failing.Set(0)
	m.batchSize.Observe(float64(len(results)))
	m.batchTime.Observe(took.Seconds())
	for _, r := range results {
		switch {
		case r.Quarantined:
			m.quarantined.WithLabelValues(r.Code).Inc()
		case r.Duplicate:
			m.duplicates.Inc()
		default:
			m.appended.Inc()
		}
	}
}

var _ ledger.Observer = (*Metrics)(nil)

// BatchFailed implements ledger.FailureObserver.
func (m *Metrics) BatchFailed(_ int, err error) {
	reason := "other"
	if errors.Is(err, ledger.ErrNoSpace) {
		reason = "no_space"
	}
	m.failures.WithLabelValues(reason).Inc()
	m.failing.Set(1)
}

var _ ledger.FailureObserver = (*Metrics)(nil)

// Published counts one event published by a service.
func (m *Metrics) Published(eventType string) { m.published.WithLabelValues(eventType).Inc() }

// SetLag records the consumer's pending messages.
func (m *Metrics) SetLag(n uint64) { m.lag.Set(float64(n)) }

// WatchLag polls lag every interval until ctx ends.
func (m *Metrics) WatchLag(ctx context.Context, interval time.Duration, lag func(context.Context) (uint64, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := lag(ctx); err == nil {
			m.SetLag(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type routeKey struct{}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer (a
// handler lifting its write deadline, see api.LiftWriteDeadline).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// HTTP counts every request by the route pattern that served it and its
// status. Wrap the outermost handler with it, and the inner API mux with
// Route, so API requests are labelled by their own pattern.
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := new(string)
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, route))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		label := *route
		if label == "" {
			label = r.Pattern
		}
		if label == "" {
			label = "unmatched"
		}
		m.requests.WithLabelValues(label, strconv.Itoa(sw.code)).Inc()
	})
}

// Route records the pattern of an inner mux for HTTP's label.
func Route(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if p, ok := r.Context().Value(routeKey{}).(*string); ok && r.Pattern != "" {
			*p = r.Pattern
		}
	})
}
