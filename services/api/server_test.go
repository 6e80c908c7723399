package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/metrics"
	"github.com/supplier-accountability/sal/services/api"
)

func TestNewServerSetsEveryLimit(t *testing.T) {
	h := http.NotFoundHandler()
	srv := api.NewServer(h, api.Timeouts{})
	if srv.ReadHeaderTimeout != api.DefaultReadHeaderTimeout || srv.ReadTimeout != api.DefaultReadTimeout ||
		srv.WriteTimeout != api.DefaultWriteTimeout || srv.IdleTimeout != api.DefaultIdleTimeout || srv.MaxHeaderBytes != api.MaxHeaderBytes {
		t.Fatalf("defaults not applied: %+v", srv)
	}
	if srv.WriteTimeout <= 10*time.Second || srv.WriteTimeout < srv.ReadTimeout {
		t.Fatalf("the write timeout %s must exceed the 10 s a write waits for the ledger, and the read timeout %s", srv.WriteTimeout, srv.ReadTimeout)
	}
	srv = api.NewServer(h, api.Timeouts{ReadHeader: 1, Read: 2, Write: 3, Idle: 4})
	if srv.ReadHeaderTimeout != 1 || srv.ReadTimeout != 2 || srv.WriteTimeout != 3 || srv.IdleTimeout != 4 {
		t.Fatalf("timeouts not taken: %+v", srv)
	}
}

// serve runs handler behind NewServer with short timeouts on a real
// listener, wrapped as the system wraps its handler (metrics.HTTP), so
// the deadlines are lifted through that wrapper.
func serve(t *testing.T, handler http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(metrics.New().HTTP(handler), api.Timeouts{
		ReadHeader: 200 * time.Millisecond, Read: 200 * time.Millisecond, Write: 200 * time.Millisecond, Idle: time.Second,
	})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestLiftWriteDeadlineLetsALongHandlerFinish: the answer of a handler
// working longer than the write timeout is lost, unless it lifts the
// deadline, as the audit service's verification does.
func TestLiftWriteDeadlineLetsALongHandlerFinish(t *testing.T) {
	const work = 700 * time.Millisecond // over three times every timeout
	for _, lift := range []bool{false, true} {
		url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if lift {
				if err := api.LiftWriteDeadline(w); err != nil {
					t.Errorf("LiftWriteDeadline: %v", err)
				}
			}
			select {
			case <-time.After(work):
			case <-r.Context().Done():
				t.Errorf("lift %v: the request's context ended: %v", lift, r.Context().Err())
				return
			}
			api.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
		}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/audit/verify", nil)
		resp, err := http.DefaultClient.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
		switch {
		case lift && (err != nil || resp.StatusCode != http.StatusOK):
			t.Errorf("with the write deadline lifted: %v, answer %s", err, body)
		case !lift && err == nil:
			t.Errorf("past the write timeout the answer still came: %d %s", resp.StatusCode, body)
		}
	}
}

func TestLiftWriteDeadlineUnderARecorderSaysSo(t *testing.T) {
	// The pages call the API through a recorder: lifting is refused, harmlessly.
	if err := api.LiftWriteDeadline(httptest.NewRecorder()); !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("LiftWriteDeadline under a recorder: %v, want http.ErrNotSupported", err)
	}
}
