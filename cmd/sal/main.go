// Command sal runs and inspects the supplier accountability ledger.
//
//	sal up       start everything in one process (embedded NATS, services, ledger, HTTP API)
//	sal token    issue a bearer token for a role
//	sal verify   check a ledger file's hash chain and signatures
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
  sal token [flags]    issue a bearer token (commercial, auditor or supplier:<id>)
  sal verify [flags]   verify a ledger file: hash chain, signatures, key authority
  sal help             show this help

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
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sal: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
