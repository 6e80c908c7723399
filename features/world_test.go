// Package features runs the Gherkin specifications under features/ with
// godog against the real pipeline: an embedded NATS JetStream server, a bbolt
// ledger in a temporary directory, and the HTTP API, all started per
// scenario through system.Start exactly as `sal up` starts them.
package features_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cucumber/godog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/system"
	"github.com/supplier-accountability/sal/system/systemtest"
)

// TestFeatures runs every scenario twice: against the whole system in one
// process, as `sal up` runs it, and against the system split into one
// process per service behind the gateway, as `sal serve` runs it.
func TestFeatures(t *testing.T) {
	for _, mode := range []struct {
		name  string
		split bool
	}{{"one process", false}, {"split services", true}} {
		t.Run(mode.name, func(t *testing.T) {
			suite := godog.TestSuite{
				Name:                "sal",
				ScenarioInitializer: func(sc *godog.ScenarioContext) { initScenario(t, sc, mode.split) },
				Options: &godog.Options{
					Format:   "progress",
					NoColors: true,
					Paths:    []string{"."},
					TestingT: t,
					Strict:   true,
				},
			}
			if suite.Run() != 0 {
				t.Fatal("feature scenarios failed")
			}
		})
	}
}

// clock is the injected clock a scenario controls ("Given today is ...").
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// world is one scenario's state: its own system, clock and credentials.
type world struct {
	t      *testing.T
	dir    string
	clock  *clock
	split  bool
	sys    *system.System    // the one-process system, or
	parts  *systemtest.Split // the split services
	srv    *httptest.Server  // one process: its HTTP server
	url    string            // where the steps send requests
	tokens map[string]string // "commercial", "auditor", "supplier:<id>"

	lastCode int
	lastBody []byte

	commitments map[string]string // supplier id -> latest commitment id
	assessments map[string]string // supplier id -> latest assessment id
	lastEvent   string            // id of the last raw event published by a step
	lastEmitted int               // consequences the last rule evaluation emitted
}

func initScenario(t *testing.T, sc *godog.ScenarioContext, split bool) {
	w := &world{
		t:           t,
		split:       split,
		clock:       &clock{now: time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)},
		tokens:      map[string]string{},
		commitments: map[string]string{},
		assessments: map[string]string{},
	}
	sc.Before(func(ctx context.Context, _ *godog.Scenario) (context.Context, error) {
		dir, err := os.MkdirTemp("", "sal-feature-")
		if err != nil {
			return ctx, err
		}
		w.dir = dir
		// A scenario's "today" is what the enforcement service sees; it
		// evaluates on every commit and as the scenario moves the clock.
		var demo []system.DemoToken
		if w.split {
			w.parts = systemtest.Start(w.t, system.Config{DataDir: dir, Now: w.clock.Now})
			w.url, demo = w.parts.Gateway(), w.parts.DemoTokens
		} else {
			if err := w.startOne(); err != nil {
				return ctx, err
			}
			demo = w.sys.DemoTokens
		}
		for _, t := range demo {
			w.tokens[t.Role] = t.Token
		}
		return ctx, nil
	})
	sc.After(func(ctx context.Context, _ *godog.Scenario, err error) (context.Context, error) {
		if w.srv != nil {
			w.srv.Close()
		}
		if w.sys != nil {
			w.sys.Close()
		}
		if w.parts != nil {
			w.parts.Stop()
		}
		os.RemoveAll(w.dir)
		return ctx, err
	})
	registerSkeletonSteps(sc, w)
	registerRuleSteps(sc, w)
}

// startOne starts the one-process system on the scenario's directory.
func (w *world) startOne() error {
	sys, err := system.Start(context.Background(), system.Config{DataDir: w.dir, Now: w.clock.Now})
	if err != nil {
		return err
	}
	w.sys, w.srv = sys, httptest.NewServer(sys.Handler)
	w.url = w.srv.URL
	return nil
}

// restart stops the system and starts it again on the same data.
func (w *world) restart() error {
	if w.split {
		return w.parts.Restart()
	}
	w.srv.Close()
	if err := w.sys.Close(); err != nil {
		return err
	}
	return w.startOne()
}

// tokenStore issues tokens: the one process's, or the split gateway's
// (shared with every service).
func (w *world) tokenStore() *auth.Store {
	if w.split {
		return w.parts.Systems[system.RoleGateway].Tokens
	}
	return w.sys.Tokens
}

// ledger is the ledger of record.
func (w *world) ledger() *ledger.Ledger {
	if w.split {
		return w.parts.Ledger().Ledger
	}
	return w.sys.Ledger
}

func (w *world) jetStream() jetstream.JetStream {
	if w.split {
		return w.parts.Ledger().JetStream()
	}
	return w.sys.JetStream()
}

// evaluate has the enforcement service apply the rules now; with split
// services, once it has taken in every earlier write, and then until every
// service has taken in what it emitted.
func (w *world) evaluate(ctx context.Context) (int, error) {
	if !w.split {
		return w.sys.Enforcer.Evaluate(ctx)
	}
	// The enforcement service reads its own replica: let it take in the
	// write that came before, as its own loop would a moment later.
	if err := w.parts.Settle(ctx); err != nil {
		return 0, err
	}
	n, err := w.parts.Systems[system.RoleEnforcement].Enforcer.Evaluate(ctx)
	if err != nil {
		return n, err
	}
	return n, w.parts.Settle(ctx)
}

// waitFor waits until the ledger has decided on an event sent around the
// services (a raw publish), and every service has taken it in.
func (w *world) waitFor(ctx context.Context, eventID string) error {
	if _, err := w.ledger().Wait(ctx, eventID); err != nil {
		return err
	}
	if w.split {
		return w.parts.Settle(ctx)
	}
	return nil
}

// token returns the bearer token of a principal ("commercial", "auditor",
// "supplier:<id>"), issuing one on first use.
func (w *world) token(who string) (string, error) {
	if t, ok := w.tokens[who]; ok {
		return t, nil
	}
	role, supplierID, err := auth.ParseRole(who)
	if err != nil {
		return "", err
	}
	t, err := w.tokenStore().Issue(auth.Principal{Role: role, SupplierID: supplierID, Name: "feature-" + strings.ReplaceAll(who, ":", "-")})
	if err != nil {
		return "", err
	}
	w.tokens[who] = t
	return t, nil
}

// call sends a request as who and keeps the answer for later steps.
func (w *world) call(who, method, path string, body any) error {
	tok, err := w.token(who)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, w.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w.lastCode = resp.StatusCode
	if w.lastBody, err = io.ReadAll(resp.Body); err != nil {
		return err
	}
	if method != "GET" {
		// A write may make the rules fire: let the enforcement service
		// settle before the next step looks.
		return w.settle()
	}
	return nil
}

// mustCall is call for steps that set up a scenario: anything but a 2xx
// answer fails the step, with the reason the API gave.
func (w *world) mustCall(who, method, path string, body any) (map[string]any, error) {
	if err := w.call(who, method, path, body); err != nil {
		return nil, err
	}
	if w.lastCode/100 != 2 {
		return nil, fmt.Errorf("%s %s as %s: %d %s", method, path, who, w.lastCode, w.lastBody)
	}
	var out map[string]any
	if err := json.Unmarshal(w.lastBody, &out); err != nil {
		return nil, fmt.Errorf("%s %s: answer is not JSON: %s", method, path, w.lastBody)
	}
	return out, nil
}

// card reads a supplier's scorecard as the commercial team sees it.
func (w *world) card(supplierID string) (*cardView, error) {
	if _, err := w.mustCall("commercial", "GET", "/v1/suppliers/"+supplierID+"/scorecard", nil); err != nil {
		return nil, err
	}
	var c cardView
	if err := json.Unmarshal(w.lastBody, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// cardView is the part of the scorecard JSON the steps read.
type cardView struct {
	Name        string `json:"name"`
	Commitments []struct {
		ID               string `json:"id"`
		StandardID       string `json:"standard_id"`
		StandardVersion  string `json:"standard_version"`
		Status           string `json:"status"`
		LatestAssessment *struct {
			ID          string `json:"id"`
			Outcome     string `json:"outcome"`
			EvidenceRef string `json:"evidence_ref"`
		} `json:"latest_assessment"`
	} `json:"commitments"`
}
