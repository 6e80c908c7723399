package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// flagSet returns a FlagSet whose errors and help go to stderr.
func flagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sal "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// env returns the environment variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// stringFlag defines a string flag whose default comes from an environment
// variable, named in the help text.
func stringFlag(fs *flag.FlagSet, name, envName, def, help string) *string {
	return fs.String(name, env(envName, def), fmt.Sprintf("%s (env %s)", help, envName))
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errUsage
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// envInt returns the environment variable as an int, or def when it is
// unset or not a number.
func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err == nil {
			return n
		}
	}
	return def
}

// cardCacheFlag is the -card-cache flag of the commands that run a ledger.
func cardCacheFlag(fs *flag.FlagSet) *int {
	return fs.Int("card-cache", envInt("SAL_CARD_CACHE", 4096), "decoded scorecards the ledger keeps in memory between batches, each some 200 KiB for a supplier with 200 events; fewer use less memory and decode more cards again when many suppliers are active (env SAL_CARD_CACHE)")
}

// checkCardCache refuses a -card-cache that cannot bound anything.
func checkCardCache(n int) error {
	if n < 1 {
		return fmt.Errorf("-card-cache must be at least 1, got %d", n)
	}
	return nil
}
