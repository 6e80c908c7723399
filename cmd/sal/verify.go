package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
)

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("verify", stderr)
	dataDir := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory holding ledger.db and keys/registry-root.key")
	if err := parse(fs, args); err != nil {
		return err
	}
	root, err := keys.Load(filepath.Join(*dataDir, "keys", "registry-root.key"))
	if err != nil {
		return err
	}
	l, err := ledger.Open(filepath.Join(*dataDir, "ledger.db"), root.Public().(ed25519.PublicKey), ledger.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := l.Verify(ctx)
	var ce *ledger.ChainError
	if errors.As(err, &ce) {
		fmt.Fprintf(stdout, "FAIL after %d good entries: first bad seq %d: %v\n", n, ce.Seq, ce.Err)
		return fmt.Errorf("verification failed at seq %d", ce.Seq)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "OK: %d entries; hash chain intact; every signature verifies against the key registry in force at its entry\n", n)
	return nil
}
