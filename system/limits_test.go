package system_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/system"
)

// mustStartWith starts a system with cfg on a fresh data directory, behind
// an httptest server.
func mustStartWith(tb testing.TB, cfg system.Config) *instance {
	tb.Helper()
	cfg.DataDir = tb.TempDir()
	sys, err := system.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	in := &instance{sys: sys, srv: httptest.NewServer(sys.Handler), tokens: map[string]string{}}
	for _, t := range sys.DemoTokens {
		in.tokens[t.Role] = t.Token
	}
	tb.Cleanup(in.stop)
	return in
}

// TestWriteRateIsPerToken: a token that spends its burst gets 429 with
// Retry-After, and its refused write records nothing; another token
// writes on, and everyone, the throttled token included, still reads.
func TestWriteRateIsPerToken(t *testing.T) {
	// A token back every 100 s: nothing refills while the test runs.
	in := mustStartWith(t, system.Config{WriteRate: 0.01, WriteBurst: 2})
	acme, bright, commercial := in.tokens["supplier:acme-health"], in.tokens["supplier:bright-records"], in.tokens["commercial"]

	if code, out := in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`); code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, out)
	}
	commit := `{"standard":"DICOM","version":"2024d","product":"PACS","target_date":"2027-06-30"}`
	if code, out := in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, commit); code != http.StatusCreated {
		t.Fatalf("commit: %d %v", code, out)
	}
	head := func() uint64 { n, _, _ := in.sys.Ledger.Head(); return n }
	before := head()

	req, _ := http.NewRequest("POST", in.srv.URL+"/v1/suppliers/acme-health/commitments", strings.NewReader(commit))
	req.Header.Set("Authorization", "Bearer "+acme)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third write of a burst of two: %d %s, want 429", resp.StatusCode, body)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 || n > 100 {
		t.Errorf("Retry-After %q, want whole seconds in 1..100", resp.Header.Get("Retry-After"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !strings.HasPrefix(string(body), `{`) || !strings.Contains(string(body), `"error": "too many writes`) {
		t.Errorf("429 answer %s %s is not the API's one-line JSON error", ct, body)
	}

	// Reads are never limited: the throttled token reads on.
	for range 5 {
		if code, out := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, ""); code != http.StatusOK {
			t.Fatalf("read by the throttled token: %d %v", code, out)
		}
	}
	// Other tokens have their own buckets.
	if code, out := in.do(t, "POST", "/v1/suppliers", bright, `{"supplier_id":"bright-records","name":"Bright"}`); code != http.StatusCreated {
		t.Fatalf("another token's write: %d %v", code, out)
	}
	if code, out := in.do(t, "GET", "/v1/suppliers", commercial, ""); code != http.StatusOK {
		t.Fatalf("another token's read: %d %v", code, out)
	}

	// The refused write changed nothing: one commitment, and the only
	// entry since is bright's registration.
	if got := head(); got != before+1 {
		t.Errorf("ledger head %d, want %d (bright's registration only)", got, before+1)
	}
	_, card := in.do(t, "GET", "/v1/suppliers/acme-health/scorecard", acme, "")
	if cms, _ := card["commitments"].([]any); len(cms) != 1 {
		t.Errorf("acme has %d commitments, want 1: the throttled write was recorded", len(cms))
	}
	// Still throttled: refused attempts spend nothing, and earn nothing.
	if code, _ := in.do(t, "POST", "/v1/suppliers/acme-health/commitments", acme, commit); code != http.StatusTooManyRequests {
		t.Errorf("a further write: %d, want 429", code)
	}

	// The refusals show in the request metrics.
	resp, err = http.Get(in.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `sal_http_requests_total{code="429",route="/v1/"} 2`) {
		t.Errorf("metrics do not count the two 429s:\n%s", grepLines(string(metrics), "sal_http_requests_total"))
	}
}

// TestNegativeWriteRateTurnsTheLimitOff writes well past any burst.
func TestNegativeWriteRateTurnsTheLimitOff(t *testing.T) {
	in := mustStartWith(t, system.Config{WriteRate: -1, WriteBurst: 1})
	acme := in.tokens["supplier:acme-health"]
	for i := range 5 {
		// Registering again is refused as a repeat (409) after the first,
		// but never throttled.
		if code, out := in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`); code == http.StatusTooManyRequests {
			t.Fatalf("write %d with the limit off: 429 %v", i, out)
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSlowClientsAreCutOffOthersAreAnswered runs the system behind
// api.NewServer on a real listener with short timeouts. Three clients
// misbehave — one dribbles its headers a byte at a time, one sends half a
// body and stalls, one connects and sends nothing — and while they do,
// other requests (reads and a write) are answered promptly. Each slow
// client is cut off by the server, and the half-sent write records
// nothing.
func TestSlowClientsAreCutOffOthersAreAnswered(t *testing.T) {
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	tokens := map[string]string{}
	for _, d := range sys.DemoTokens {
		tokens[d.Role] = d.Token
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(sys.Handler, api.Timeouts{
		ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: 5 * time.Second, Idle: time.Second,
	})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	base := "http://" + addr
	head := func() uint64 { n, _, _ := sys.Ledger.Head(); return n }
	before := head()

	// Generous: the timeouts are at most 0.6 s; a slow machine still cuts
	// these clients off well within it.
	const cutOffWithin = 5 * time.Second
	type verdict struct {
		who  string
		took time.Duration
		err  error
	}
	verdicts := make(chan verdict, 3)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	start := time.Now()

	// 1. Dribbles its headers a byte every 50 ms, never finishing them.
	dribbler := dial()
	go func() {
		header := "POST /v1/suppliers HTTP/1.1\r\nHost: sal\r\nAuthorization: Bearer " + tokens["supplier:acme-health"] + "\r\nX-Slow: " + strings.Repeat("a", 1000)
		for i := 0; ; i++ {
			if time.Since(start) > cutOffWithin {
				verdicts <- verdict{"header dribbler", time.Since(start), fmt.Errorf("still connected after %d bytes", i)}
				return
			}
			dribbler.SetWriteDeadline(time.Now().Add(cutOffWithin))
			if _, err := dribbler.Write([]byte{header[i%len(header)]}); err != nil {
				verdicts <- verdict{"header dribbler", time.Since(start), nil}
				return
			}
			// A closed connection shows on the read side first.
			dribbler.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := dribbler.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
				verdicts <- verdict{"header dribbler", time.Since(start), nil}
				return
			}
		}
	}()

	// 2. Sends its headers and half its body, then stalls.
	staller := dial()
	body := `{"supplier_id":"acme-health","name":"Acme"}`
	fmt.Fprintf(staller, "POST /v1/suppliers HTTP/1.1\r\nHost: sal\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		tokens["supplier:acme-health"], len(body), body[:len(body)/2])
	go func() {
		staller.SetReadDeadline(time.Now().Add(cutOffWithin))
		resp, err := http.ReadResponse(bufio.NewReader(staller), nil)
		switch {
		case err == nil && resp.StatusCode/100 == 2:
			err = fmt.Errorf("a half-sent write was accepted: %d", resp.StatusCode)
		case err != nil && isTimeout(err):
			err = fmt.Errorf("not cut off: %w", err)
		default:
			err = nil // an error answer (the body could not be read) or a closed connection
		}
		verdicts <- verdict{"body staller", time.Since(start), err}
	}()

	// 3. Connects and sends nothing at all.
	silent := dial()
	go func() {
		silent.SetReadDeadline(time.Now().Add(cutOffWithin))
		_, err := silent.Read(make([]byte, 1))
		if isTimeout(err) {
			err = fmt.Errorf("not cut off: %w", err)
		} else {
			err = nil
		}
		verdicts <- verdict{"silent client", time.Since(start), err}
	}()

	// Meanwhile the others are answered at once.
	time.Sleep(100 * time.Millisecond) // the slow clients are in the middle of it
	client := &http.Client{Timeout: cutOffWithin}
	call := func(method, path, token, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s while slow clients hang on: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if took := time.Since(t0); took > 2*time.Second {
			t.Errorf("%s %s took %s while slow clients hang on", method, path, took)
		}
		return resp.StatusCode
	}
	if code := call("GET", "/healthz", "", ""); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	if code := call("GET", "/v1/standards", tokens["commercial"], ""); code != http.StatusOK {
		t.Errorf("standards: %d", code)
	}
	if code := call("POST", "/v1/suppliers", tokens["supplier:bright-records"], `{"supplier_id":"bright-records","name":"Bright"}`); code != http.StatusCreated {
		t.Errorf("a write: %d", code)
	}
	if code := call("GET", "/signin", "", ""); code != http.StatusOK {
		t.Errorf("sign-in page: %d", code)
	}

	for range 3 {
		v := <-verdicts
		if v.err != nil {
			t.Errorf("%s: %v (after %s)", v.who, v.err, v.took.Round(time.Millisecond))
		} else {
			t.Logf("%s cut off after %s", v.who, v.took.Round(time.Millisecond))
		}
	}
	if got := head(); got != before+1 {
		t.Errorf("ledger head %d, want %d: only bright's registration", got, before+1)
	}
	if _, err := sys.Ledger.Card("acme-health"); err == nil {
		t.Error("the half-sent registration of acme-health was recorded")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
