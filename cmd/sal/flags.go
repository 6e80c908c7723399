package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := f.Value.(*intValue); ok && v.envErr != nil && bad == nil {
			bad = v.envErr
		}
	})
	return bad
}

// intValue is an int flag whose default may come from an environment
// variable. A value there that is not a whole number is kept as envErr
// for parse to refuse, unless the flag is given, which wins.
type intValue struct {
	n      *int
	envErr error
}

func (v *intValue) String() string {
	if v == nil || v.n == nil {
		return "0"
	}
	return strconv.Itoa(*v.n)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v.n, v.envErr = n, nil
	return nil
}

// intFlag defines an int flag whose default comes from an environment
// variable, named in the help text.
func intFlag(fs *flag.FlagSet, name, envName string, def int, help string) *int {
	v := &intValue{n: &def}
	if s, ok := os.LookupEnv(envName); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			*v.n = n
		} else {
			v.envErr = fmt.Errorf("%s=%q is not a whole number (flag -%s)", envName, s, name)
		}
	}
	fs.Var(v, name, fmt.Sprintf("%s (env %s)", help, envName))
	return v.n
}
