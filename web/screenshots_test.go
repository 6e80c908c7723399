package web_test

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/demo"
	"github.com/supplier-accountability/sal/system"
)

// TestScreenshotsOfDemoData draws the three main pages over the demo data
// set at 1280 px into $SAL_SCREENSHOTS (see README). Without that variable
// it does nothing.
func TestScreenshotsOfDemoData(t *testing.T) {
	if os.Getenv("SAL_SCREENSHOTS") == "" {
		t.Skip("set SAL_SCREENSHOTS to a directory to take screenshots")
	}
	end := time.Now().UTC()
	clock := demo.NewClock(end.AddDate(-2, 0, 0))
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if _, err := demo.Seed(context.Background(), sys, clock, 1, end); err != nil {
		t.Fatal(err)
	}
	clock.Release()
	srv := httptest.NewServer(sys.Handler)
	defer srv.Close()
	s := &site{url: srv.URL, sys: sys, tokens: map[string]string{}}
	for _, d := range sys.DemoTokens {
		s.tokens[d.Role] = d.Token
	}
	supplier := demo.SupplierIDs()[0]
	tok, err := sys.Tokens.Issue(auth.Principal{Role: auth.Supplier, SupplierID: supplier, Name: "screenshots"})
	if err != nil {
		t.Fatal(err)
	}

	ctx := browser(t)
	signIn(t, ctx, s, s.tokens["commercial"])
	do(t, ctx, chromedp.Navigate(s.url+"/suppliers?sort=rating&dir=desc"), chromedp.WaitVisible(chromedp.ID("suppliers")))
	screenshot(t, ctx, "1-suppliers-commercial")

	ctx = browser(t)
	signIn(t, ctx, s, tok)
	screenshot(t, ctx, "2-scorecard-supplier")

	ctx = browser(t)
	signIn(t, ctx, s, s.tokens["auditor"])
	past := end.AddDate(0, -8, 0).Format("2006-01-02")
	do(t, ctx, chromedp.Navigate(s.url+"/suppliers/"+supplier+"?at="+past), chromedp.WaitVisible(chromedp.CSS(".history")))
	screenshot(t, ctx, "3-scorecard-auditor-history")
	do(t, ctx, chromedp.Navigate(s.url+"/audit"), chromedp.WaitVisible(chromedp.ID("quarantine")))
	screenshot(t, ctx, "4-audit")
}
