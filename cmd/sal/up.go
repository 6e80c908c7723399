package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/demo"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/system"
)

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("up", stderr)
	dataDir := stringFlag(fs, "data", "SAL_DATA", "./data", "data directory: ledger file, NATS store, keys, tokens")
	httpAddr := stringFlag(fs, "http", "SAL_HTTP", "127.0.0.1:8080", "address the HTTP API listens on")
	natsURL := stringFlag(fs, "nats-url", "SAL_NATS_URL", "", "external NATS server URL; empty starts an embedded server")
	natsUser := stringFlag(fs, "nats-user", "SAL_NATS_USER", "", "user name for the external NATS")
	natsPassword := stringFlag(fs, "nats-password", "SAL_NATS_PASSWORD", "", "password for the external NATS (prefer the environment variable)")
	natsNKey := stringFlag(fs, "nats-nkey", "SAL_NATS_NKEY", "", "file holding a NATS user NKey seed, to authenticate to the external NATS without a password")
	natsListen := stringFlag(fs, "nats-listen", "SAL_NATS_LISTEN", "", "with the embedded server, also accept NATS clients on host:port")
	logFormat := stringFlag(fs, "log", "SAL_LOG", "text", "log format: text or json")
	replicas := intFlag(fs, "replicas", "SAL_REPLICAS", 1, "`count` of replicas of the event stream on an external NATS cluster (3 for a three-node cluster)")
	demoSeed := fs.Int64("demo", 0, "seed a fictional demo data set (12 suppliers, two years of history) from this seed, through the signed-event path, into an empty ledger; 0: no demo data")
	rotate := stringFlag(fs, "rotate-keys", "SAL_ROTATE_KEYS", "", "comma-separated services whose signing key to replace at start (commitments, assessments, enforcement)")
	limits := writeLimitFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	writeRate, writeBurst, err := limits()
	if err != nil {
		return err
	}
	logger, err := newLogger(*logFormat, stderr)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *httpAddr, err)
	}
	now := time.Now
	var clock *demo.Clock
	end := time.Now().UTC()
	if *demoSeed != 0 {
		// The demo walks a clock through two years of history; the
		// services and the ledger read it, then it follows the wall clock.
		clock = demo.NewClock(end.AddDate(-2, 0, 0))
		now = clock.Now
	}
	sys, err := system.Start(ctx, system.Config{
		Now:          now,
		DataDir:      *dataDir,
		NATSURL:      *natsURL,
		NATSListen:   *natsListen,
		NATSUser:     *natsUser,
		NATSPassword: *natsPassword,
		NATSNKeyFile: *natsNKey,
		Logger:       logger,
		RotateKeys:   splitList(*rotate),
		Replicas:     *replicas,
		WriteRate:    writeRate,
		WriteBurst:   writeBurst,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer sys.Close()

	var demoTokens []system.DemoToken
	if clock != nil {
		fmt.Fprintf(stdout, "seeding demo data (seed %d): two years of fictional history, every event signed and sent through NATS...\n", *demoSeed)
		sum, err := demo.Seed(ctx, sys, clock, *demoSeed, end)
		clock.Release()
		switch {
		case errors.Is(err, demo.ErrNotEmpty):
			fmt.Fprintln(stdout, "  demo data not seeded: the ledger already holds suppliers")
		case err != nil:
			return fmt.Errorf("demo data: %w", err)
		default:
			var ratings []string
			for _, label := range []string{"Good", "Approaching target", "Requires improvement", "Inadequate", "Other"} {
				if n := sum.Ratings[label]; n > 0 {
					ratings = append(ratings, fmt.Sprintf("%d %s", n, label))
				}
			}
			fmt.Fprintf(stdout, "  %d suppliers, %d commitments, %d assessments, %d breaches, %d escalations, %d disputes, %d events\n  ratings today: %s\n",
				sum.Suppliers, sum.Commitments, sum.Assessments, sum.Breaches, sum.Escalations, sum.Disputes, sum.Events, strings.Join(ratings, ", "))
			for _, id := range demo.SupplierIDs()[:2] {
				tok, err := sys.Tokens.Issue(auth.Principal{Role: auth.Supplier, SupplierID: id, Name: "demo-" + id})
				if err != nil {
					return err
				}
				demoTokens = append(demoTokens, system.DemoToken{Role: "supplier:" + id, Token: tok})
			}
		}
	}

	err = runServer(ctx, api.NewServer(sys.Handler, api.Timeouts{}), ln, logger, func() {
		broker := "embedded NATS JetStream (store " + *dataDir + "/nats)"
		if *natsURL != "" {
			broker = "NATS at " + *natsURL
		} else if *natsListen != "" {
			broker += ", clients on nats://" + *natsListen
		}
		fmt.Fprintf(stdout, "sal is up\n  pages:   http://%s/\n  API:     http://%s\n  data:    %s (ledger %s/ledger.db)\n  broker:  %s\n", ln.Addr(), ln.Addr(), *dataDir, *dataDir, broker)
		if !printTokens(stdout, append(append([]system.DemoToken{}, sys.DemoTokens...), demoTokens...)) {
			fmt.Fprintln(stdout, "  tokens:  kept from an earlier start (issue more with: sal token -role ...)")
		}
		fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "stopping...")
	if err := sys.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	fmt.Fprintln(stdout, "stopped cleanly")
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
