// Command sal runs and inspects the supplier accountability ledger.
//
//	sal up       start everything in one process (embedded NATS, services, ledger, HTTP API)
//	sal serve    run one service as its own process against an external NATS
//	sal keys     make the keys of a split deployment
//	sal token    issue a bearer token for a role
//	sal verify   verify a ledger or an exported audit bundle offline
//	sal replay   rebuild every scorecard as it stood at a past moment
//	sal export   write an audit bundle of plain files
//	sal proof    print an inclusion or consistency proof
//	sal audit-rules  re-run the enforcement rules over the history
//
// Run "sal help" for flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sal:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `sal: the supplier accountability ledger

Usage:
  sal up [flags]       start the whole system in one process
  sal serve <service> [flags]
                       run one service as its own process against an
                       external NATS (ledger, commitments, assessments,
                       enforcement, scorecards, gateway)
  sal keys init [flags]
                       make the keys of a split deployment
  sal token [flags]    issue a bearer token (commercial, auditor or supplier:<id>)
  sal verify [flags] [bundle | ledger.db]
                       verify offline: hash chain, signatures against the key
                       registry in force, Merkle roots against signed
                       checkpoints, replayed scorecard digests
  sal replay [flags]   rebuild every scorecard at -at <tree size | RFC 3339 time>
  sal export [flags]   write an audit bundle (plain files) to -out
  sal proof inclusion|consistency [flags]
                       print a Merkle proof
  sal audit-rules [flags]
                       re-run the enforcement rules over the history
  sal bench [flags]    measure ingest, rebuild, verify and queries against
                       ceilings measured in the same run
  sal probe URL        exit 0 if URL answers 2xx (container health checks)
  sal help             show this help

The audit commands read the ledger file directly: stop the system first
(or use the HTTP API under /v1/audit while it runs).

Run "sal <command> -h" for a command's flags. Every flag also reads an
environment variable, named in its help.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "up":
		return runUp(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "keys":
		return runKeys(args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdout, stderr)
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "proof":
		return runProof(ctx, args[1:], stdout, stderr)
	case "audit-rules":
		return runAuditRules(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "probe":
		return runProbe(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sal: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
