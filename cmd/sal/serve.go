package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/ratelimit"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/system"
)

// servicePorts are the default HTTP addresses of the split services, so
// that on one machine they can all start with no flags but -nats-url.
var servicePorts = map[string]string{
	system.RoleGateway:     "127.0.0.1:8080",
	system.RoleLedger:      "127.0.0.1:8081",
	system.RoleCommitments: "127.0.0.1:8082",
	system.RoleAssessments: "127.0.0.1:8083",
	system.RoleEnforcement: "127.0.0.1:8084",
	system.RoleScorecards:  "127.0.0.1:8085",
}

const serveUsage = `usage: sal serve <service> [flags]

Runs one service of the system as its own process, against an external NATS
JetStream (-nats-url). Services:
  ledger       the ledger of record: stores and verifies every event, signs
               checkpoints, answers /v1/audit/...
  commitments  suppliers' writes: registration, commitments, withdrawals, disputes
  assessments  commercial writes: assessments, plans, dispute resolutions, reviews
  enforcement  applies the rules and emits their consequences; /v1/rules
  scorecards   scorecard, supplier list and standards reads
  gateway      the web pages and the one address users see; hands each /v1
               route to the service that answers it

Each keeps its own replica of the ledger under -data. Keys come from
-keys, made once with: sal keys init. Tokens are read from -tokens (the
gateway issues demo tokens into it at first start; sal token -tokens adds more).
`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, serveUsage)
		return errUsage
	}
	role := args[0]
	if role == system.RoleAll || !slices.Contains(system.Roles, role) {
		fmt.Fprintf(stderr, "sal serve: no service %q\n\n%s", role, serveUsage)
		return errUsage
	}
	fs := flagSet("serve "+role, stderr)
	dataDir := stringFlag(fs, "data", "SAL_DATA", "./data/"+role, "this service's data directory (its ledger replica)")
	httpAddr := stringFlag(fs, "http", "SAL_HTTP", servicePorts[role], "address this service's HTTP API listens on")
	keyDir := stringFlag(fs, "keys", "SAL_KEYS", "./keys", "key directory made by sal keys init (registry-root.pub, this service's key and authorization)")
	tokens := stringFlag(fs, "tokens", "SAL_TOKENS", "./tokens.json", "the hashed-token file shared by the services")
	natsURL := stringFlag(fs, "nats-url", "SAL_NATS_URL", "", "NATS server or cluster URLs, comma-separated (required)")
	natsUser := stringFlag(fs, "nats-user", "SAL_NATS_USER", "", "user name for NATS")
	natsPassword := stringFlag(fs, "nats-password", "SAL_NATS_PASSWORD", "", "password for NATS (prefer the environment variable)")
	natsNKey := stringFlag(fs, "nats-nkey", "SAL_NATS_NKEY", "", "file holding a NATS user NKey seed, to authenticate without a password")
	logFormat := stringFlag(fs, "log", "SAL_LOG", "json", "log format: text or json")
	replicas := intFlag(fs, "replicas", "SAL_REPLICAS", 1, "`count` of replicas of the event stream (3 on a three-node cluster)")
	limits := writeLimitFlags(fs)
	urls := map[string]*string{}
	if role == system.RoleGateway {
		for _, svc := range []string{system.RoleLedger, system.RoleCommitments, system.RoleAssessments, system.RoleEnforcement, system.RoleScorecards} {
			envName := "SAL_" + strings.ToUpper(svc) + "_URL"
			urls[svc] = stringFlag(fs, svc+"-url", envName, "http://"+servicePorts[svc], "base URL of the "+svc+" service")
		}
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	writeRate, writeBurst, err := limits()
	if err != nil {
		return err
	}
	if *natsURL == "" {
		fmt.Fprintf(stderr, "sal serve %s: -nats-url (or SAL_NATS_URL) is required: split services share an external NATS JetStream\n", role)
		return errUsage
	}
	logger, err := newLogger(*logFormat, stderr)
	if err != nil {
		return err
	}
	logger = logger.With("service", role)
	services := map[string]string{}
	for k, v := range urls {
		services[k] = *v
	}

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *httpAddr, err)
	}
	sys, err := system.Start(ctx, system.Config{
		Role:         role,
		DataDir:      *dataDir,
		KeyDir:       *keyDir,
		TokensFile:   *tokens,
		NATSURL:      *natsURL,
		NATSUser:     *natsUser,
		NATSPassword: *natsPassword,
		NATSNKeyFile: *natsNKey,
		Replicas:     *replicas,
		Services:     services,
		Logger:       logger,
		WriteRate:    writeRate,
		WriteBurst:   writeBurst,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer sys.Close()

	err = runServer(ctx, api.NewServer(sys.Handler, api.Timeouts{}), ln, logger, func() {
		logger.Info("service up", "http", ln.Addr().String(), "data", *dataDir, "nats", *natsURL)
		fmt.Fprintf(stdout, "sal %s is up on http://%s (data %s, NATS %s)\n", role, ln.Addr(), *dataDir, *natsURL)
		printTokens(stdout, sys.DemoTokens)
	})
	if err != nil {
		return err
	}
	if err := sys.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}

// runServer serves srv on ln, calls ready once it is serving, and returns
// when ctx ends (after letting requests in flight finish, for up to 10 s)
// or the server fails.
func runServer(ctx context.Context, srv *http.Server, ln net.Listener, logger *slog.Logger, ready func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ready()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	return nil
}

// printTokens lists the credentials a first start created; it reports
// whether there were any.
func printTokens(w io.Writer, toks []system.DemoToken) bool {
	if len(toks) == 0 {
		return false
	}
	fmt.Fprintln(w, "\nDemo credentials, shown this once (only their hashes are kept):")
	for _, t := range toks {
		fmt.Fprintf(w, "  %-26s %s\n", t.Role, t.Token)
	}
	return true
}

// writeLimitFlags defines -write-rate and -write-burst; the function it
// returns reads them once the flags are parsed.
func writeLimitFlags(fs *flag.FlagSet) func() (rate float64, burst int, err error) {
	rate := stringFlag(fs, "write-rate", "SAL_WRITE_RATE", fmt.Sprint(ratelimit.DefaultRate), "writes a second each token may make through the API and the pages (above it: 429 with Retry-After); a negative number: no limit")
	burst := intFlag(fs, "write-burst", "SAL_WRITE_BURST", ratelimit.DefaultBurst, "`count` of writes a token may make at once after a quiet spell")
	return func() (float64, int, error) {
		r, err := strconv.ParseFloat(*rate, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("-write-rate must be a number of writes a second (negative: no limit), got %q", *rate)
		}
		return r, *burst, nil
	}
}

// newLogger returns a structured logger writing text or JSON to w, at the
// level SAL_LOG_LEVEL names (debug, info, warn, error; default info:
// debug adds a line for every event the ledger appends).
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(env("SAL_LOG_LEVEL", "info"))); err != nil {
		return nil, fmt.Errorf("SAL_LOG_LEVEL must be debug, info, warn or error: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log must be text or json, got %q", format)
}
