package system

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/services/assessments"
	"github.com/supplier-accountability/sal/services/audit"
	"github.com/supplier-accountability/sal/services/commitments"
	"github.com/supplier-accountability/sal/services/emit"
	"github.com/supplier-accountability/sal/services/enforcement"
	"github.com/supplier-accountability/sal/services/scorecards"
)

// The parts of the system a process can run. RoleAll runs every one of
// them in one process with an embedded NATS server (`sal up`). Each other
// role runs one service alone (`sal serve <role>`) against an external NATS:
//
//   - ledger: the ledger of record. Consumes the stream into its bbolt file,
//     signs checkpoints, answers the audit routes (/v1/audit/...).
//   - commitments, assessments: the write services of suppliers and of
//     commercial teams; each signs what it emits with its own key.
//   - enforcement: applies the rules and emits their consequences.
//   - scorecards: answers scorecard, supplier list and standards reads.
//   - gateway: the web pages and the one HTTP address users see; it hands
//     every /v1 route to the service that answers it.
//
// Every split process keeps its own replica of the ledger (its own bbolt
// file, its own durable consumer), verified from the same signed events
// against the same registry root, so replicas reach the same Merkle root;
// /readyz reports each one's size and root. Only the ledger of record
// signs checkpoints.
const (
	RoleAll         = "all"
	RoleLedger      = "ledger"
	RoleCommitments = "commitments"
	RoleAssessments = "assessments"
	RoleEnforcement = "enforcement"
	RoleScorecards  = "scorecards"
	RoleGateway     = "gateway"
)

// Roles lists every role, RoleAll first.
var Roles = []string{RoleAll, RoleLedger, RoleCommitments, RoleAssessments, RoleEnforcement, RoleScorecards, RoleGateway}

// RootPublicFile is the registry root's public key, in the key directory:
// all a split service needs to verify events.
const RootPublicFile = "registry-root.pub"

// AuthorizationSuffix ends the name of a service's authorization file: the
// root-signed KeyAuthorized envelope of its key, made by InitKeys, which the
// service publishes at start (it is stored once however often it is sent).
const AuthorizationSuffix = ".authorization"

// routedService is a service that answers /v1 routes, and how to list them
// (the gateway learns its routing from the services themselves).
type routedService struct {
	name   string
	routes func(api.Router)
}

var routed = []routedService{
	{RoleCommitments, func(r api.Router) { commitments.New(nil, nil, nil, nil).Register(r) }},
	{RoleAssessments, func(r api.Router) { assessments.New(nil, nil, nil).Register(r) }},
	{RoleScorecards, func(r api.Router) { scorecards.New(nil, nil, nil).Register(r) }},
	{RoleEnforcement, func(r api.Router) { enforcement.New(nil, nil, nil, nil, nil).Register(r) }},
	{RoleLedger, func(r api.Router) { audit.New(nil, nil, "").Register(r) }},
}

// serviceKeys loads the signing key of each emitting service this process
// runs and makes sure the ledger lets it sign. In one process the registry
// root key is at hand and authorizes the keys itself; a split service
// publishes the root-signed authorization that InitKeys made for it.
func (s *System) serviceKeys(ctx context.Context, cfg Config, role, keyDir string, rootKey ed25519.PrivateKey) (map[string]*envelope.Signer, error) {
	signers := map[string]*envelope.Signer{}
	if err := checkRotate(cfg.RotateKeys); err != nil {
		return nil, err
	}
	for _, name := range cfg.RotateKeys {
		if rootKey == nil {
			return nil, fmt.Errorf("system: rotating the %s key needs the registry root key, which split services do not hold: use sal keys init -rotate %s", name, name)
		}
	}
	var root *emit.Emitter
	if rootKey != nil {
		root = emit.New(envelope.NewSigner(rootKey), s.pub, s.Ledger)
	}
	for _, svc := range emitting {
		if role != RoleAll && role != svc.name {
			continue
		}
		if root == nil {
			k, err := keys.Load(filepath.Join(keyDir, svc.name+".key"))
			if err != nil {
				return nil, fmt.Errorf("system: the %s service's key: %w (create the keys with: sal keys init -dir %s)", svc.name, err, keyDir)
			}
			signers[svc.name] = envelope.NewSigner(k)
			if err := s.publishAuthorization(ctx, signers[svc.name], svc, filepath.Join(keyDir, svc.name+AuthorizationSuffix)); err != nil {
				return nil, err
			}
			continue
		}
		var old *envelope.Signer
		var err error
		if slices.Contains(cfg.RotateKeys, svc.name) {
			if old, err = retireKeyFile(keyDir, svc.name); err != nil {
				return nil, err
			}
		}
		k, _, err := keys.LoadOrCreate(filepath.Join(keyDir, svc.name+".key"))
		if err != nil {
			return nil, err
		}
		signers[svc.name] = envelope.NewSigner(k)
		if err := s.authorize(ctx, root, signers[svc.name], svc, cfg.Now()); err != nil {
			return nil, err
		}
		if old != nil {
			if _, ok := s.Ledger.Registry().Lookup(old.KeyID()); ok {
				out, err := root.Emit(ctx, "", "", cfg.Now(), &pb.KeyRetired{KeyId: old.KeyID(), Reason: "rotated: replaced by " + signers[svc.name].KeyID()})
				if err != nil {
					return nil, fmt.Errorf("system: retire the old %s key: %w", svc.name, err)
				}
				s.log.Info("service key retired", "service", svc.name, "key_id", old.KeyID(), "event_id", out.EventID, "seq", out.Seq)
			}
		}
	}
	return signers, nil
}

// publishAuthorization sends a split service's root-signed authorization
// and waits until this process's ledger replica has taken it in (which,
// on a long stream, means catching up first).
func (s *System) publishAuthorization(ctx context.Context, signer *envelope.Signer, svc service, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("system: the %s service's authorization: %w (made by: sal keys init)", svc.name, err)
	}
	o, err := envelope.Open(raw)
	if err != nil {
		return fmt.Errorf("system: %s: %w", path, err)
	}
	ka, ok := o.Payload.(*pb.KeyAuthorized)
	if !ok || ka.KeyId != signer.KeyID() {
		return fmt.Errorf("system: %s does not authorize the key in %s.key (%s); run sal keys init again", path, svc.name, signer.KeyID())
	}
	out, err := emit.New(signer, s.pub, s.Ledger).EmitSealed(ctx, raw)
	if err != nil {
		return fmt.Errorf("system: publish the %s service's authorization: %w", svc.name, err)
	}
	if out.Pending {
		s.log.Info("waiting for this service's ledger replica to catch up", "service", svc.name, "event_id", out.EventID)
		r, err := s.Ledger.Wait(ctx, out.EventID)
		if err != nil {
			return fmt.Errorf("system: wait for the %s service's authorization %s: %w", svc.name, out.EventID, err)
		}
		out.Seq = r.Seq
	}
	a, ok := s.Ledger.Registry().Lookup(signer.KeyID())
	switch {
	case !ok:
		return fmt.Errorf("system: the ledger refused the %s service's authorization %s (see GET /v1/audit/quarantine)", svc.name, out.EventID)
	case a.RetiredAt != 0:
		return fmt.Errorf("system: the %s key %s was retired; make a new one with sal keys init -rotate %s", svc.name, a.KeyID, svc.name)
	}
	s.log.Info("service key authorized", "service", svc.name, "key_id", signer.KeyID(), "event_id", out.EventID, "seq", out.Seq)
	retired, _ := filepath.Glob(filepath.Join(filepath.Dir(path), svc.name+retireInfix+"*"))
	for _, p := range retired {
		raw, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("system: %w", err)
		}
		out, err := emit.New(signer, s.pub, s.Ledger).EmitSealed(ctx, raw)
		if err != nil {
			return fmt.Errorf("system: publish %s: %w", p, err)
		}
		s.log.Info("old service key retired", "service", svc.name, "event_id", out.EventID)
	}
	return nil
}

// checkRotate refuses a name that is not an emitting service's.
func checkRotate(names []string) error {
	for _, name := range names {
		if !slices.ContainsFunc(emitting, func(s service) bool { return s.name == name }) {
			return fmt.Errorf("system: no service %q to rotate the key of (services: commitments, assessments, enforcement)", name)
		}
	}
	return nil
}

// KeysReport says what InitKeys made.
type KeysReport struct {
	RootPublicKey string   // hex
	Created       []string // files created
}

// InitKeys prepares the keys of a split deployment in dir: the checkpoint
// key, each emitting service's key, and for each a root-signed
// authorization envelope; plus the registry root's public key. The root's
// private key lives at rootPath, which may be outside dir (and should then
// be kept offline: no running service needs it). Existing keys are kept;
// rotate names services whose key is replaced by a new one (the old one is
// moved to dir/retired/; retire it in the ledger with the KeyRetired event
// written next to the new authorization).
func InitKeys(dir, rootPath string, rotate []string, now time.Time) (KeysReport, error) {
	var rep KeysReport
	rootKey, created, err := keys.LoadOrCreate(rootPath)
	if err != nil {
		return rep, err
	}
	if created {
		rep.Created = append(rep.Created, rootPath)
	}
	rootPub := rootKey.Public().(ed25519.PublicKey)
	rep.RootPublicKey = fmt.Sprintf("%x", []byte(rootPub))
	pubPath := filepath.Join(dir, RootPublicFile)
	if existing, err := keys.LoadPublic(pubPath); err == nil && !existing.Equal(rootPub) {
		return rep, fmt.Errorf("system: %s holds another root key than %s; remove it to start a new registry", pubPath, rootPath)
	}
	if err := keys.WritePublic(pubPath, rootPub); err != nil {
		return rep, err
	}
	if _, created, err := keys.LoadOrCreate(filepath.Join(dir, "checkpoint.key")); err != nil {
		return rep, err
	} else if created {
		rep.Created = append(rep.Created, filepath.Join(dir, "checkpoint.key"))
	}
	root := envelope.NewSigner(rootKey)
	if err := checkRotate(rotate); err != nil {
		return rep, err
	}
	for _, svc := range emitting {
		authPath := filepath.Join(dir, svc.name+AuthorizationSuffix)
		if slices.Contains(rotate, svc.name) {
			old, err := retireKeyFile(dir, svc.name)
			if err != nil {
				return rep, err
			}
			if old != nil {
				raw, _, err := root.Seal(envelope.Draft{OccurredAt: now, Payload: &pb.KeyRetired{KeyId: old.KeyID(), Reason: "rotated with sal keys init"}})
				if err != nil {
					return rep, err
				}
				// The service publishes it after its new authorization.
				path := filepath.Join(dir, svc.name+retireInfix+old.KeyID())
				if err := os.WriteFile(path, raw, 0o644); err != nil {
					return rep, fmt.Errorf("system: write %s: %w", path, err)
				}
				rep.Created = append(rep.Created, path)
			}
		}
		k, created, err := keys.LoadOrCreate(filepath.Join(dir, svc.name+".key"))
		if err != nil {
			return rep, err
		}
		if created {
			rep.Created = append(rep.Created, filepath.Join(dir, svc.name+".key"))
		}
		signer := envelope.NewSigner(k)
		if raw, err := os.ReadFile(authPath); err == nil {
			if o, err := envelope.Open(raw); err == nil {
				if ka, ok := o.Payload.(*pb.KeyAuthorized); ok && ka.KeyId == signer.KeyID() && o.Verify(rootPub) == nil {
					continue
				}
			}
		}
		raw, _, err := root.Seal(envelope.Draft{OccurredAt: now, Payload: &pb.KeyAuthorized{
			KeyId:      signer.KeyID(),
			PublicKey:  signer.PublicKey(),
			Holder:     "service:" + svc.name,
			EventTypes: svc.types,
		}})
		if err != nil {
			return rep, err
		}
		if err := os.WriteFile(authPath, raw, 0o644); err != nil {
			return rep, fmt.Errorf("system: write %s: %w", authPath, err)
		}
		rep.Created = append(rep.Created, authPath)
	}
	return rep, nil
}

// retireInfix names the root-signed KeyRetired envelope of a rotated key:
// <service>.retired-<key id>, published by the service after its new
// authorization.
const retireInfix = ".retired-"

// ReadAfterHeader asks a service to answer only once its ledger replica
// holds the named event: a client that wrote through one service and then
// reads or writes through another sees its own earlier write (an assessment
// of the commitment just made is not refused as unknown). The gateway sets
// it by itself on every request that follows a write made through it, by
// anyone: a commercial user assessing a commitment a supplier made a moment
// ago finds it.
const ReadAfterHeader = "Sal-Read-After"

// readAfterWait bounds how long a read waits for its replica.
const readAfterWait = 5 * time.Second

// readAfter holds a request carrying ReadAfterHeader until this process's
// ledger replica has the event, answering 503 if it does not within
// readAfterWait.
func (s *System) readAfter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(ReadAfterHeader); id != "" {
			ctx, cancel := context.WithTimeout(r.Context(), readAfterWait)
			_, err := s.Ledger.Wait(ctx, id)
			cancel()
			if err != nil {
				w.Header().Set("Retry-After", "1")
				api.WriteError(w, api.Errorf(http.StatusServiceUnavailable, "the %s service's ledger replica has not yet taken in event %s; retry in a moment", s.Role, id))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// proxyTo hands every route of svc to the service at base.
func (s *System) proxyTo(mux *http.ServeMux, svc routedService, base string) error {
	if base == "" {
		return fmt.Errorf("system: the gateway needs the %s service's URL", svc.name)
	}
	target, err := url.Parse(base)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return fmt.Errorf("system: the %s service's URL %q is not an absolute http URL", svc.name, base)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.RequestURI = ""
			if pr.Out.Header.Get(ReadAfterHeader) == "" {
				if id := s.lastWrite.get(); id != "" {
					pr.Out.Header.Set(ReadAfterHeader, id)
				}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodGet || resp.StatusCode/100 != 2 {
				return nil
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			var out struct {
				Event struct {
					EventID string `json:"event_id"`
					Seq     uint64 `json:"seq"`
				} `json:"event"`
			}
			if json.Unmarshal(body, &out) != nil || out.Event.EventID == "" {
				return nil
			}
			s.lastWrite.put(out.Event.Seq, out.Event.EventID)
			// The pages read this process's own replica: let it catch up
			// with the write before answering, so the next page shows it.
			ctx, cancel := context.WithTimeout(resp.Request.Context(), readAfterWait)
			defer cancel()
			if _, err := s.Ledger.Wait(ctx, out.Event.EventID); err != nil {
				s.log.Warn("gateway replica behind a write", "event_id", out.Event.EventID, "err", err)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("service unreachable", "service", svc.name, "url", base, "err", err)
			api.WriteError(w, api.Errorf(http.StatusBadGateway, "the %s service did not answer; nothing was changed by this gateway (a write may still have been recorded: retry with the same Idempotency-Key)", svc.name))
		},
	}
	rec := &patterns{}
	svc.routes(rec)
	for _, pat := range rec.list {
		if pat == audit.VerifyRoute {
			mux.HandleFunc(pat, func(w http.ResponseWriter, r *http.Request) {
				_ = api.LiftWriteDeadline(w)
				p.ServeHTTP(w, r)
			})
			continue
		}
		mux.Handle(pat, p)
	}
	return nil
}

// patterns records route patterns.
type patterns struct{ list []string }

func (p *patterns) HandleFunc(pattern string, _ func(http.ResponseWriter, *http.Request)) {
	p.list = append(p.list, pattern)
}

// latestWrite remembers the write through the gateway that the ledger
// placed last: once a replica holds it, it holds every earlier one too (all
// replicas take the stream in the same order).
type latestWrite struct {
	mu  sync.Mutex
	seq uint64
	id  string
}

func (m *latestWrite) put(seq uint64, eventID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq > m.seq {
		m.seq, m.id = seq, eventID
	}
}

func (m *latestWrite) get() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}
