package api

import (
	"net/http"
	"time"
)

// The limits of the HTTP server in front of the API and the pages. Every
// one bounds what a single client can hold: a slow or huge request is cut
// off, and the others are answered meanwhile (each connection has its own
// goroutine; none waits on another).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers, from
	// when the connection is ready for it. It is a deadline, not an idle
	// timer: a client dribbling one byte at a time is cut off all the
	// same.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included
	// (bodies are at most MaxBody for the API, and as much for the pages'
	// forms): a client that sends its body slowly, or never finishes it,
	// is cut off.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds the time from the end of a request's
	// headers to the end of its answer, the handler's work included: a
	// client that reads its answer slowly is cut off too. It is well over
	// the 10 s a write waits for the ledger to commit, and the read
	// timeout. An answer not written by then is lost (the client sees the
	// connection close), so a handler whose work grows with the ledger
	// calls LiftWriteDeadline.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout is how long a kept-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds a request's header lines (net/http adds 4 KiB
	// of slack). A bearer token or a session cookie is under 100 bytes.
	MaxHeaderBytes = 64 << 10
)

// Timeouts bound how long a server waits on one client; see the defaults
// above for what each covers. A zero field takes its default. `sal up`
// uses the defaults; tests shorten them to see a slow client cut off.
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
}

// NewServer returns the HTTP server for handler with every timeout set
// and MaxHeaderBytes bounded. Serve it on a listener; Shutdown it to stop.
func NewServer(handler http.Handler, t Timeouts) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: or(t.ReadHeader, DefaultReadHeaderTimeout),
		ReadTimeout:       or(t.Read, DefaultReadTimeout),
		WriteTimeout:      or(t.Write, DefaultWriteTimeout),
		IdleTimeout:       or(t.Idle, DefaultIdleTimeout),
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// LiftWriteDeadline removes the server's write deadline for the rest of
// a request whose work grows with the ledger (verifying every entry), so
// that the write timeout does not lose its answer. The request still
// stops when its client goes away: its context is cancelled then. Every
// wrapper of w must have an Unwrap method (see http.ResponseController);
// under one that does not, or under a recorder, it returns an error
// wrapping http.ErrNotSupported and changes nothing.
func LiftWriteDeadline(w http.ResponseWriter) error {
	return http.NewResponseController(w).SetWriteDeadline(time.Time{})
}
