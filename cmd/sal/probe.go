package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runProbe is the health check of the container images, which are built
// FROM scratch and have no curl: it GETs a URL and succeeds on a 2xx.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("probe", stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	body := fs.Bool("print", false, "print the answer's body instead of its status line")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sal probe [-timeout 3s] [-print] URL")
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", fs.Arg(0), resp.Status)
	}
	if *body {
		_, err := io.Copy(stdout, io.LimitReader(resp.Body, 1<<20))
		return err
	}
	fmt.Fprintln(stdout, resp.Status)
	return nil
}
