package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
