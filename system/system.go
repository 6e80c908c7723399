// Package system assembles one running instance of the ledger: the NATS
// JetStream connection (an embedded server by default), the bbolt ledger
// and its consumer, the signing keys and their registration, every service,
// and the HTTP handler that fronts them. `sal up` and the tests both start
// it through Start, so the tests run the same pipeline users do.
package system

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/metrics"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/ratelimit"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/services/assessments"
	"github.com/supplier-accountability/sal/services/audit"
	"github.com/supplier-accountability/sal/services/commitments"
	"github.com/supplier-accountability/sal/services/emit"
	"github.com/supplier-accountability/sal/services/enforcement"
	"github.com/supplier-accountability/sal/services/scorecards"
	"github.com/supplier-accountability/sal/web"
)

// Config says where the data lives and how to reach NATS.
type Config struct {
	DataDir string
	// NATSURL is an external NATS server or cluster; empty starts the
	// embedded server with its store under DataDir/nats.
	NATSURL string
	// NATSUser and NATSPassword authenticate to the external NATS; empty
	// connects without credentials.
	NATSUser, NATSPassword string
	// NATSNKeyFile is a file holding a NATS user NKey seed ("SU..."):
	// the client proves it holds the key by signing the server's nonce,
	// and no secret crosses the network. Used instead of user/password.
	NATSNKeyFile string
	// NATSListen, with the embedded server, also accepts outside NATS
	// clients on host:port. Empty: in-process only.
	NATSListen string
	// PeriodicNATSSync runs the embedded JetStream with its default periodic
	// fsync instead of an fsync per message. Users are still answered only
	// after the ledger's fsync'd commit, but an event the broker has
	// acknowledged and the ledger not yet committed can be lost to a power
	// cut (not to a process crash). Off by default; the benchmark uses it
	// to put a number on the cost of the stricter setting.
	PeriodicNATSSync bool
	// LedgerMappedResident is how many bytes of the ledger file may stay
	// mapped in the process before the ledger releases them to the page
	// cache (ledger.Options.MappedResident): zero the ledger's default,
	// negative never.
	LedgerMappedResident int64
	// Replicas of the event stream (1 for the embedded server; 3 on a cluster).
	Replicas int
	// Now is the clock every service and the ledger read. Default time.Now.
	Now func() time.Time
	// Logger receives the system's structured logs. Default: discard.
	Logger *slog.Logger
	// Origin names the log in its checkpoints. Default: derived from the
	// registry root key (see DefaultOrigin).
	Origin string
	// RotateKeys names services whose signing key is replaced at start: a
	// new key is authorized and the old one retired, both by root-signed
	// events in the ledger; the old key file is kept under keys/retired/.
	RotateKeys []string
	// EnforceEvery is how often the enforcement service re-evaluates the
	// rules when nothing new arrives (deadlines pass with time). Default 1m.
	EnforceEvery time.Duration
	// NoBackgroundEnforcement stops the enforcement service evaluating by
	// itself (Evaluate still works on demand). Only the benchmark sets it,
	// to time the ingest path alone.
	NoBackgroundEnforcement bool
	// Role is the part of the system this process runs: RoleAll (the
	// default) runs every service in one process; any other of Roles runs
	// that service alone against an external NATS, keeping its own replica
	// of the ledger under DataDir (see roles.go).
	Role string
	// KeyDir holds the key files. Default DataDir/keys.
	KeyDir string
	// TokensFile is the hashed-token store. Default DataDir/tokens.json;
	// split services share one file written by the gateway and `sal token`.
	TokensFile string
	// Services maps each service name to its base URL, for RoleGateway.
	Services map[string]string
	// WriteRate is how many writes a second each principal may make
	// through the API and the pages, WriteBurst how many at once; above
	// them a write gets 429 with Retry-After (see package ratelimit).
	// Zero takes the default (ratelimit.DefaultRate, DefaultBurst);
	// negative turns the limit off.
	WriteRate  float64
	WriteBurst int
}

// System is a running instance.
type System struct {
	Ledger  *ledger.Ledger
	Tokens  *auth.Store
	Handler http.Handler
	// DemoTokens holds the tokens created at first start (role -> token);
	// empty on later starts, since tokens are kept only hashed.
	DemoTokens []DemoToken
	// NATS is the embedded server, or nil with an external one.
	NATS *server.Server
	// Metrics are the instance's Prometheus collectors, served at /metrics.
	Metrics *metrics.Metrics
	// CheckpointKey is the signed-note verifier key of the checkpoints.
	CheckpointKey string
	// Enforcer applies the rules; it runs in the background, and tests may
	// call its Evaluate to settle the rules at the clock's current moment.
	Enforcer *enforcement.Service

	// Role is the part of the system this process runs (RoleAll: all of it).
	Role string

	lastWrite *latestWrite // the gateway's
	nc        *nats.Conn
	js        jetstream.JetStream
	pub       countingPublisher
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	log       *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// DemoToken is a credential printed once at first start.
type DemoToken struct {
	Role  string
	Token string
}

// service names one emitting service and its authority.
type service struct {
	name  string
	types []pb.EventType
}

var emitting = []service{
	{"commitments", commitments.EventTypes},
	{"assessments", assessments.EventTypes},
	{"enforcement", enforcement.EventTypes},
}

// ledgerBatch is about how many envelopes the ledger stores per
// transaction when the stream has them waiting: one fsync, one
// verification batch per core. Publication (scorecards, checkpoint) is
// paced separately (ledger.AppendFromStream).
const ledgerBatch = 4096

// Start brings the instance up. Close it when done.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EnforceEvery <= 0 {
		cfg.EnforceEvery = time.Minute
	}
	if cfg.DataDir == "" {
		return nil, errors.New("system: no data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("system: data directory: %w", err)
	}
	role := cfg.Role
	if role == "" {
		role = RoleAll
	}
	if !slices.Contains(Roles, role) {
		return nil, fmt.Errorf("system: no service %q (services: %s)", role, strings.Join(Roles[1:], ", "))
	}
	split := role != RoleAll
	if split && cfg.NATSURL == "" {
		return nil, fmt.Errorf("system: the %s service runs apart from the others, so it needs an external NATS (-nats-url)", role)
	}
	s := &System{log: cfg.Logger, Role: role}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	keyDir := cfg.KeyDir
	if keyDir == "" {
		keyDir = filepath.Join(cfg.DataDir, "keys")
	}
	var rootKey ed25519.PrivateKey
	var rootPub ed25519.PublicKey
	if split {
		if rootPub, err = keys.LoadPublic(filepath.Join(keyDir, RootPublicFile)); err != nil {
			return nil, fmt.Errorf("system: the registry root's public key: %w (create the keys with: sal keys init -dir %s)", err, keyDir)
		}
	} else {
		if rootKey, _, err = keys.LoadOrCreate(filepath.Join(keyDir, "registry-root.key")); err != nil {
			return nil, err
		}
		rootPub = rootKey.Public().(ed25519.PublicKey)
		if err := keys.WritePublic(filepath.Join(keyDir, RootPublicFile), rootPub); err != nil {
			return nil, err
		}
	}
	origin := cfg.Origin
	if origin == "" {
		origin = DefaultOrigin(rootPub)
	}
	var checkpoints *ledger.Checkpointer
	if role == RoleAll || role == RoleLedger {
		load := keys.Load
		if !split {
			load = func(path string) (ed25519.PrivateKey, error) {
				k, _, err := keys.LoadOrCreate(path)
				return k, err
			}
		}
		cpKey, err := load(filepath.Join(keyDir, "checkpoint.key"))
		if err != nil {
			return nil, err
		}
		cpSigner, vkey, err := keys.NoteSigner(origin, cpKey)
		if err != nil {
			return nil, err
		}
		s.CheckpointKey = vkey
		checkpoints = &ledger.Checkpointer{Origin: origin, Signer: cpSigner}
	}
	s.Metrics = metrics.New()
	s.Ledger, err = ledger.Open(filepath.Join(cfg.DataDir, "ledger.db"), rootPub, ledger.Options{
		Now:         cfg.Now,
		Checkpoints: checkpoints,
		Observer:    s.Metrics,
		Logger:      cfg.Logger,

		MappedResident: cfg.LedgerMappedResident,
	})
	if err != nil {
		return nil, err
	}

	if cfg.NATSURL == "" {
		s.NATS, err = broker.StartEmbedded(broker.EmbeddedConfig{
			StoreDir:   filepath.Join(cfg.DataDir, "nats"),
			Listen:     cfg.NATSListen,
			SyncAlways: !cfg.PeriodicNATSSync,
			Logger:     cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		s.nc, err = broker.ConnectEmbedded(s.NATS, "sal")
	} else {
		var opts []nats.Option
		if cfg.NATSUser != "" {
			opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
		}
		if cfg.NATSNKeyFile != "" {
			opt, err := nats.NkeyOptionFromSeed(cfg.NATSNKeyFile)
			if err != nil {
				return nil, fmt.Errorf("system: NATS NKey seed: %w", err)
			}
			opts = append(opts, opt)
		}
		s.nc, err = broker.Connect(cfg.NATSURL, "sal-"+role, opts...)
	}
	if err != nil {
		return nil, err
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("system: jetstream: %w", err)
	}
	if _, err := broker.EnsureStream(ctx, s.js, cfg.Replicas); err != nil {
		return nil, err
	}
	s.pub = countingPublisher{broker.NewPublisher(s.js), s.Metrics}

	pos, err := s.Ledger.StreamPosition()
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		app := ledgerAppender{l: s.Ledger, log: cfg.Logger}
		if err := broker.Consume(runCtx, s.js, pos+1, app, ledgerBatch, cfg.Logger); err != nil {
			cfg.Logger.Error("ledger consumer stopped", "err", err)
		}
	}()

	signers, err := s.serviceKeys(ctx, cfg, role, keyDir, rootKey)
	if err != nil {
		return nil, err
	}

	tokensFile := cfg.TokensFile
	if tokensFile == "" {
		tokensFile = filepath.Join(cfg.DataDir, "tokens.json")
	}
	s.Tokens, err = auth.OpenStore(tokensFile)
	if err != nil {
		return nil, err
	}
	if s.Tokens.Len() == 0 && (role == RoleAll || role == RoleGateway) {
		if err := s.issueDemoTokens(); err != nil {
			return nil, err
		}
	}

	cal, err := calendar.England()
	if err != nil {
		return nil, err
	}
	engine := rules.New(cal)
	if signers["enforcement"] != nil {
		s.Enforcer = enforcement.New(engine, emit.New(signers["enforcement"], s.pub, s.Ledger), s.Ledger, cfg.Now, cfg.Logger)
		if !cfg.NoBackgroundEnforcement {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.Enforcer.Run(runCtx, s.Ledger.Updated, cfg.EnforceEvery)
			}()
		}
	}

	mux := http.NewServeMux()
	if role == RoleGateway {
		s.lastWrite = &latestWrite{}
	}
	for _, svc := range routed {
		switch {
		case role == RoleGateway:
			if err := s.proxyTo(mux, svc, cfg.Services[svc.name]); err != nil {
				return nil, err
			}
			continue
		case role != RoleAll && role != svc.name:
			continue
		}
		switch svc.name {
		case "commitments":
			commitments.New(emit.New(signers["commitments"], s.pub, s.Ledger), s.Ledger, cal, cfg.Now).Register(mux)
		case "assessments":
			assessments.New(emit.New(signers["assessments"], s.pub, s.Ledger), s.Ledger, cfg.Now).Register(mux)
		case "scorecards":
			scorecards.New(s.Ledger, engine, cfg.Now).Register(mux)
		case "enforcement":
			s.Enforcer.Register(mux)
		case RoleLedger:
			audit.New(s.Ledger, rootPub, s.CheckpointKey).Register(mux)
		}
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, api.Errorf(http.StatusNotFound, "no such route: %s %s", r.Method, r.URL.Path))
	})

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.Metrics.WatchLag(runCtx, 5*time.Second, s.consumerLag)
	}()

	top := http.NewServeMux()
	writes := ratelimit.New(cfg.WriteRate, cfg.WriteBurst).Writes(mux)
	top.Handle("/v1/", s.Tokens.Require(metrics.Route(writes)))
	top.Handle("GET /metrics", s.Metrics.Handler())
	top.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": role})
	})
	top.HandleFunc("GET /readyz", s.ready)
	if role == RoleAll || role == RoleGateway {
		top.HandleFunc("GET /openapi.yaml", api.ServeOpenAPI)
		pages, err := web.New(s.Ledger, s.Tokens, writes, engine, cfg.Now)
		if err != nil {
			return nil, err
		}
		pages.Register(top)
	}
	s.Handler = s.Metrics.HTTP(s.readAfter(top))
	return s, nil
}

// retireKeyFile moves a service's key file to keys/retired/ and returns
// the key it held (nil when there was none).
func retireKeyFile(keyDir, name string) (*envelope.Signer, error) {
	path := filepath.Join(keyDir, name+".key")
	k, err := keys.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	signer := envelope.NewSigner(k)
	dir := filepath.Join(keyDir, "retired")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	if err := os.Rename(path, filepath.Join(dir, name+"-"+signer.KeyID()+".key")); err != nil {
		return nil, fmt.Errorf("system: move the old %s key aside: %w", name, err)
	}
	return signer, nil
}

// DefaultOrigin is the checkpoint origin of a ledger whose registry root is
// root: stable for the ledger's life, unique to it.
func DefaultOrigin(root ed25519.PublicKey) string {
	return "sal.ledger/" + envelope.KeyID(root)[:16]
}

// authorize makes sure the registry in the ledger lets signer emit the
// service's event types, emitting a root-signed KeyAuthorized if not.
func (s *System) authorize(ctx context.Context, root *emit.Emitter, signer *envelope.Signer, svc service, now time.Time) error {
	want := make([]string, len(svc.types))
	for i, t := range svc.types {
		want[i] = t.String()
	}
	slices.Sort(want)
	if a, ok := s.Ledger.Registry().Lookup(signer.KeyID()); ok {
		if a.RetiredAt != 0 {
			return fmt.Errorf("system: the %s key %s was retired; move it aside to create a new one", svc.name, a.KeyID)
		}
		if slices.Equal(a.EventTypes, want) {
			return nil
		}
	}
	out, err := root.Emit(ctx, "", "", now, &pb.KeyAuthorized{
		KeyId:      signer.KeyID(),
		PublicKey:  signer.PublicKey(),
		Holder:     "service:" + svc.name,
		EventTypes: svc.types,
	})
	if err != nil {
		return fmt.Errorf("system: authorize %s key: %w", svc.name, err)
	}
	if out.Pending {
		return fmt.Errorf("system: authorize %s key: the ledger did not commit event %s in time", svc.name, out.EventID)
	}
	s.log.Info("service key authorized", "service", svc.name, "key_id", signer.KeyID(), "event_id", out.EventID, "seq", out.Seq)
	return nil
}

// DemoSuppliers are the supplier ids that get a demo token at first start.
var DemoSuppliers = []string{"acme-health", "bright-records"}

func (s *System) issueDemoTokens() error {
	ps := []auth.Principal{
		{Role: auth.Commercial, Name: "demo-commercial"},
		{Role: auth.Auditor, Name: "demo-auditor"},
	}
	for _, id := range DemoSuppliers {
		ps = append(ps, auth.Principal{Role: auth.Supplier, SupplierID: id, Name: "demo-" + id})
	}
	for _, p := range ps {
		tok, err := s.Tokens.Issue(p)
		if err != nil {
			return err
		}
		role := string(p.Role)
		if p.Role == auth.Supplier {
			role += ":" + p.SupplierID
		}
		s.DemoTokens = append(s.DemoTokens, DemoToken{Role: role, Token: tok})
	}
	return nil
}

// ReadyLag is how many unconsumed events the ledger may be behind and
// still report ready.
const ReadyLag = 10_000

func (s *System) consumerLag(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	last, err := broker.LastSeq(ctx, s.js)
	if err != nil {
		return 0, err
	}
	pos, err := s.Ledger.StreamPosition()
	if err != nil {
		return 0, err
	}
	if pos >= last {
		return 0, nil
	}
	return last - pos, nil
}

// ready answers /readyz: connected to NATS, and the ledger caught up.
func (s *System) ready(w http.ResponseWriter, r *http.Request) {
	if s.nc == nil || !s.nc.IsConnected() {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not connected to NATS"})
		return
	}
	lag, err := s.consumerLag(r.Context())
	if err != nil {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "event stream unavailable: " + err.Error()})
		return
	}
	size, _, err := s.Ledger.Head()
	if err != nil {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "ledger unreadable: " + err.Error()})
		return
	}
	root, err := s.Ledger.TreeHead(size)
	if err != nil {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "ledger unreadable: " + err.Error()})
		return
	}
	body := map[string]any{"status": "ready", "service": s.Role, "lag": lag, "size": size, "root": hex.EncodeToString(root[:])}
	if lag > ReadyLag {
		body["status"] = "ledger catching up"
		api.WriteJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	api.WriteJSON(w, http.StatusOK, body)
}

// countingPublisher counts what the services publish.
type countingPublisher struct {
	p *broker.Publisher
	m *metrics.Metrics
}

func (c countingPublisher) Publish(ctx context.Context, subject, eventID string, raw []byte) error {
	if err := c.p.Publish(ctx, subject, eventID, raw); err != nil {
		return err
	}
	if parts := strings.SplitN(subject, ".", 4); len(parts) == 4 {
		c.m.Published(parts[2])
	}
	return nil
}

// Close stops the consumer, drains the NATS connection, stops the embedded
// server and closes the ledger.
func (s *System) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		if s.nc != nil {
			s.nc.Close()
		}
		if s.NATS != nil {
			s.NATS.Shutdown()
			s.NATS.WaitForShutdown()
		}
		if s.Ledger != nil {
			s.closeErr = s.Ledger.Close()
		}
	})
	return s.closeErr
}

// JetStream is the instance's JetStream handle (for tools and tests that
// publish raw envelopes the way an outside service would).
func (s *System) JetStream() jetstream.JetStream { return s.js }

// ledgerAppender feeds the stream to the ledger, preparing each batch
// (envelopes opened, signatures checked) while the one before is stored,
// and logs what became of every event.
type ledgerAppender struct {
	l   *ledger.Ledger
	log *slog.Logger
}

var _ broker.Preparer = ledgerAppender{}

func (a ledgerAppender) Append(ctx context.Context, raws [][]byte, last uint64, caughtUp bool) error {
	results, err := a.l.AppendFromStream(ctx, raws, last, caughtUp)
	a.logResults(results)
	return err
}

func (a ledgerAppender) Prepare(raws [][]byte) broker.Appender {
	p := a.l.Prepare(raws)
	return broker.AppendFunc(func(ctx context.Context, _ [][]byte, last uint64, caughtUp bool) error {
		results, err := a.l.AppendPrepared(ctx, p, last, caughtUp)
		a.logResults(results)
		return err
	})
}

func (a ledgerAppender) logResults(results []ledger.Result) {
	for _, r := range results {
		switch {
		case r.Quarantined:
			a.log.Warn("event quarantined", "event_id", r.EventID, "supplier_id", r.SupplierID, "type", r.Type, "code", r.Code, "reason", r.Reason)
		case r.Duplicate:
			a.log.Debug("event already stored", "event_id", r.EventID, "seq", r.Seq)
		default:
			a.log.Debug("event appended", "event_id", r.EventID, "supplier_id", r.SupplierID, "type", r.Type, "seq", r.Seq)
		}
	}
}
