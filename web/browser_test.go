package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/supplier-accountability/sal/system"
)

// chromium finds Debian's chromium, which .ci/run installs. Without it the
// browser tests skip, saying so, except in CI where they must run.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs Debian's chromium package")
	}
	t.Skip("skipping browser tests: no chromium on PATH (apt-get install chromium)")
	return ""
}

// browser starts headless Chromium with the flags this machine needs.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

type site struct {
	url    string
	sys    *system.System
	tokens map[string]string
}

func mustStartSite(t *testing.T) *site {
	t.Helper()
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sys.Handler)
	t.Cleanup(func() { srv.Close(); sys.Close() })
	s := &site{url: srv.URL, sys: sys, tokens: map[string]string{}}
	for _, d := range sys.DemoTokens {
		s.tokens[d.Role] = d.Token
	}
	return s
}

func (s *site) api(t *testing.T, token, path, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

func signIn(t *testing.T, ctx context.Context, s *site, token string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/signin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("form.signout")), // only on pages for a signed-in user
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("SAL_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPagesInABrowser(t *testing.T) {
	s := mustStartSite(t)
	acme, bright := s.tokens["supplier:acme-health"], s.tokens["supplier:bright-records"]
	s.api(t, acme, "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme Health Systems Ltd"}`)
	s.api(t, bright, "/v1/suppliers", `{"supplier_id":"bright-records","name":"Bright Records plc"}`)
	cm := s.api(t, acme, "/v1/suppliers/acme-health/commitments", `{"standard":"FHIR-R4-UKCORE","version":"2.0.1","product":"ePrescribing","target_date":"2027-03-31"}`)["commitment_id"].(string)
	s.api(t, bright, "/v1/suppliers/bright-records/commitments", `{"standard":"DICOM","version":"2024d","product":"PACS viewer","target_date":"2027-06-30"}`)

	t.Run("commercial records an assessment through the form", func(t *testing.T) {
		ctx := browser(t)
		signIn(t, ctx, s, s.tokens["commercial"])
		h1, list := text(t, ctx, "h1"), text(t, ctx, "#suppliers")
		screenshot(t, ctx, "suppliers")
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`a[href="/suppliers/acme-health"]`)),
			chromedp.WaitVisible(chromedp.ID("commitments-table")),
		)
		before := text(t, ctx, "#cm-"+cm)
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#cm-"+cm+" a")),
			chromedp.WaitVisible(chromedp.ID("outcome")),
			chromedp.SetValue(chromedp.ID("outcome"), "non_conformant"),
			chromedp.SendKeys(chromedp.ID("evidence"), "ASSURE-2026-0142"),
			chromedp.SendKeys(chromedp.ID("assessor"), "J. Patel"),
		)
		screenshot(t, ctx, "assessment-form")
		do(t, ctx,
			chromedp.Submit(chromedp.ID("evidence")),
			chromedp.WaitVisible(chromedp.CSS(".flash")),
		)
		flash, after := text(t, ctx, ".flash"), text(t, ctx, "#cm-"+cm)
		if h1 != "Suppliers" || !strings.Contains(list, "Acme Health Systems Ltd") || !strings.Contains(list, "Bright Records plc") {
			t.Fatalf("suppliers page: %q / %q", h1, list)
		}
		if !strings.Contains(before, "not assessed") || !strings.Contains(after, "non conformant") || !strings.Contains(after, "ASSURE-2026-0142") || !strings.Contains(after, "at risk") {
			t.Fatalf("scorecard did not change: before %q after %q", before, after)
		}
		if !strings.Contains(flash, "Assessment recorded") || !strings.Contains(flash, "entry") {
			t.Fatalf("flash %q", flash)
		}
		screenshot(t, ctx, "scorecard-commercial")
	})

	t.Run("a supplier sees its own scorecard and not another's", func(t *testing.T) {
		ctx := browser(t)
		signIn(t, ctx, s, acme)
		h1 := text(t, ctx, "h1")
		// Chromium reports a page answered 403 as an aborted load; the page
		// it shows is what matters.
		_ = chromedp.Do(ctx, chromedp.Navigate(s.url+"/suppliers/bright-records"))
		other := text(t, ctx, "main")
		if h1 != "Acme Health Systems Ltd" {
			t.Fatalf("supplier landed on %q", h1)
		}
		if !strings.Contains(other, "403") || strings.Contains(other, "Bright") || strings.Contains(other, "DICOM") {
			t.Fatalf("another supplier's page: %q", other)
		}
	})

	t.Run("an auditor opens a past moment and sees the earlier state", func(t *testing.T) {
		ctx := browser(t)
		signIn(t, ctx, s, s.tokens["auditor"])
		do(t, ctx, chromedp.Navigate(s.url+"/suppliers/acme-health"))
		live := text(t, ctx, "#commitments-table")
		moment := time.Now().UTC()
		time.Sleep(20 * time.Millisecond)
		s.api(t, s.tokens["commercial"], "/v1/suppliers/acme-health/commitments/"+cm+"/assessments", `{"outcome":"conformant","evidence_ref":"ASSURE-2026-0199","assessor":"R. Okafor"}`)
		do(t, ctx, chromedp.Navigate(s.url+"/suppliers/acme-health"))
		now := text(t, ctx, "#commitments-table")
		do(t, ctx, chromedp.Navigate(s.url+"/suppliers/acme-health?at="+url.QueryEscape(moment.Format(time.RFC3339Nano))))
		past, banner := text(t, ctx, "#commitments-table"), text(t, ctx, ".history")
		if !strings.Contains(now, "ASSURE-2026-0199") || !strings.Contains(now, "met") {
			t.Fatalf("live page after the new assessment: %q", now)
		}
		if past != live {
			t.Fatalf("the page at %s differs from what the live page showed then:\nthen: %q\npast: %q", moment, live, past)
		}
		if !strings.Contains(banner, "as it stood at") {
			t.Fatalf("history banner %q", banner)
		}
		screenshot(t, ctx, "scorecard-auditor-history")
		do(t, ctx, chromedp.Navigate(s.url+"/audit"), chromedp.WaitVisible(chromedp.ID("quarantine")))
		screenshot(t, ctx, "audit")
	})
}
