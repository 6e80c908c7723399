package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/supplier-accountability/sal/auth"
)

func runToken(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("token", stderr)
	dataDir := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory")
	tokens := stringFlag(fs, "tokens", "SAL_TOKENS", "", "the token file (default: tokens.json in -data)")
	role := fs.String("role", "", "commercial, auditor or supplier:<id>")
	name := fs.String("name", "", "who the token is for, recorded on every event they cause")
	if err := parse(fs, args); err != nil {
		return err
	}
	r, supplierID, err := auth.ParseRole(*role)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = *role
	}
	if *tokens == "" {
		*tokens = filepath.Join(*dataDir, "tokens.json")
	}
	store, err := auth.OpenStore(*tokens)
	if err != nil {
		return err
	}
	tok, err := store.Issue(auth.Principal{Role: r, SupplierID: supplierID, Name: *name})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", tok)
	fmt.Fprintf(stderr, "token for %s issued; it is shown only now. A running system accepts it at once.\n", *role)
	return nil
}
