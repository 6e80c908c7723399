package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/supplier-accountability/sal/bench"
)

func TestHelpAndUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "sal up") {
		t.Fatalf("help: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"launch"}, &out, &errb); !errors.Is(err, errUsage) || !strings.Contains(errb.String(), `unknown command "launch"`) {
		t.Fatalf("unknown command: %v %q", err, errb.String())
	}
	if err := run(context.Background(), nil, &out, &errb); !errors.Is(err, errUsage) {
		t.Fatalf("no command: %v", err)
	}
}

func TestTokenIssuesAHashedToken(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"token", "-data", dir, "-role", "supplier:acme-health", "-name", "j.smith"}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, "sal_") {
		t.Fatalf("token %q", tok)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(tok)) {
		t.Fatal("the token file holds the token itself, not its hash")
	}
	if err := run(context.Background(), []string{"token", "-data", dir, "-role", "supplier:Not Valid"}, &out, &errb); err == nil {
		t.Fatal("invalid supplier id accepted")
	}
}

func TestVerifyAMissingLedgerExplains(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"verify", "-data", t.TempDir()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "registry-root.key") {
		t.Fatalf("verify of an empty directory: %v", err)
	}
}

func TestBenchScaleRefusesABadCount(t *testing.T) {
	var out, errb bytes.Buffer
	for _, arg := range []string{"100000,lots", "0", "100000,,1000000"} {
		err := run(context.Background(), []string{"bench", "-scale", arg}, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "is not a positive event count") {
			t.Errorf("-scale %s: %v", arg, err)
		}
	}
	if out.Len() != 0 {
		t.Fatalf("a refused -scale ran something: %q", out.String())
	}
}

func TestBenchScaleComparesMemoryWithTheFirstRun(t *testing.T) {
	rep := func(rss, anon, heap float64) bench.Report {
		return bench.Report{Figures: []bench.Figure{{Name: "peak RSS", Value: rss}, {Name: "peak RSS without mapped files", Value: anon}, {Name: "peak Go heap in use", Value: heap}}}
	}
	rows := memoryAgainstFirst([]int{100_000, 1_000_000}, []bench.Report{rep(400, 300, 200), rep(600, 330, 500)})
	want := []float64{1, 1, 1, 1.5, 1.1, 2.5}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.Ratio < want[i]-1e-9 || r.Ratio > want[i]+1e-9 {
			t.Errorf("row %d (%d events, %s): ratio %.3f, want %.3f", i, r.Events, r.Name, r.Ratio, want[i])
		}
		if r.Met != (want[i] <= 1.5) {
			t.Errorf("row %d (%d events, %s): met %v at ratio %.2f against a target of 1.5", i, r.Events, r.Name, r.Met, r.Ratio)
		}
	}
}

// TestANumberFromTheEnvironmentMustBeANumber: an integer flag's
// environment variable that is not a whole number is refused, naming it,
// before anything starts; the flag given on the command line wins over it.
func TestANumberFromTheEnvironmentMustBeANumber(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		env, value string
		args       []string
		want       string
	}{
		{"SAL_REPLICAS", "12abc", []string{"up", "-data", dir}, `SAL_REPLICAS="12abc" is not a whole number`},
		{"SAL_REPLICAS", "three", []string{"up", "-data", dir}, `SAL_REPLICAS="three" is not a whole number (flag -replicas)`},
		{"SAL_WRITE_BURST", "1e3", []string{"serve", "ledger", "-data", dir}, `SAL_WRITE_BURST="1e3" is not a whole number`},
		// The flag wins; the bad value is then never used. Without
		// -nats-url a split service stops at its usage, before it
		// starts anything.
		{"SAL_WRITE_BURST", "lots", []string{"serve", "ledger", "-write-burst", "8", "-data", dir}, "usage"},
	} {
		t.Setenv(c.env, c.value)
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%s sal %v: %v, want an error saying %q", c.env, c.value, c.args, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s=%s sal %v started something: %q", c.env, c.value, c.args, out.String())
		}
		os.Unsetenv(c.env)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused start wrote to the data directory: %v", entries)
	}
}
