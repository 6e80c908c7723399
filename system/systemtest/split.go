// Package systemtest starts the system split into one System per service,
// as `sal serve` runs them, for tests: a NATS JetStream server of its own,
// keys made by system.InitKeys, one data directory and one HTTP server per
// service, and the gateway in front. Tests that pass against one process
// (system.Start) are run against this too, to show the split system
// behaves the same.
package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/system"
)

// Services are the split services, the gateway last (it needs the others'
// addresses, which are known before any starts).
var Services = []string{system.RoleLedger, system.RoleCommitments, system.RoleAssessments, system.RoleEnforcement, system.RoleScorecards, system.RoleGateway}

// Split is a running split system.
type Split struct {
	// Systems holds each service's System, by role.
	Systems map[string]*system.System
	// URLs holds each service's base URL, by role; users call the gateway.
	URLs map[string]string
	// DemoTokens are the credentials the gateway issued at first start.
	DemoTokens []system.DemoToken

	tb      testing.TB
	base    system.Config
	nats    *server.Server
	servers map[string]*httptest.Server
	routes  map[string]*handler
}

// handler lets a restarted service take over its address.
type handler struct{ h atomic.Pointer[http.Handler] }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*h.h.Load()).ServeHTTP(w, r) }

// Start starts the split system under cfg.DataDir (Role, KeyDir,
// TokensFile, NATSURL and Services are set here; Now, Logger and the rest
// are passed to every service). It is stopped when the test ends.
func Start(tb testing.TB, cfg system.Config) *Split {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(cfg.DataDir, "nats"), SyncAlways: true, NoSigs: true, NoLog: true})
	if err != nil {
		tb.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("systemtest: nats server not ready")
	}
	keyDir := filepath.Join(cfg.DataDir, "keys")
	if _, err := system.InitKeys(keyDir, filepath.Join(cfg.DataDir, "offline", "registry-root.key"), nil, time.Now()); err != nil {
		tb.Fatal(err)
	}
	cfg.KeyDir, cfg.TokensFile, cfg.NATSURL = keyDir, filepath.Join(cfg.DataDir, "tokens.json"), ns.ClientURL()
	s := &Split{Systems: map[string]*system.System{}, URLs: map[string]string{}, tb: tb, base: cfg, nats: ns, servers: map[string]*httptest.Server{}, routes: map[string]*handler{}}
	for _, role := range Services {
		s.routes[role] = &handler{}
		s.servers[role] = httptest.NewUnstartedServer(s.routes[role])
		s.URLs[role] = "http://" + s.servers[role].Listener.Addr().String()
	}
	tb.Cleanup(s.Stop)
	s.start()
	s.DemoTokens = s.Systems[system.RoleGateway].DemoTokens
	for _, srv := range s.servers {
		srv.Start()
	}
	return s
}

func (s *Split) start() {
	s.tb.Helper()
	for _, role := range Services {
		if err := s.startOne(role); err != nil {
			s.tb.Fatal(err)
		}
	}
}

func (s *Split) startOne(role string) error {
	cfg := s.base
	cfg.Role, cfg.DataDir, cfg.Services = role, filepath.Join(s.base.DataDir, role), s.URLs
	sys, err := system.Start(context.Background(), cfg)
	if err != nil {
		return fmt.Errorf("systemtest: start %s: %w", role, err)
	}
	s.Systems[role] = sys
	s.routes[role].h.Store(&sys.Handler)
	return nil
}

// RestartService stops one service and starts it again on its data, as an
// operator does after changing its keys.
func (s *Split) RestartService(role string) error {
	if sys, ok := s.Systems[role]; ok {
		if err := sys.Close(); err != nil {
			return fmt.Errorf("systemtest: close %s: %w", role, err)
		}
		delete(s.Systems, role)
	}
	return s.startOne(role)
}

// KeyDir is the key directory the services read; RootKeyFile the registry
// root's private key, which none of them holds (for sal keys init).
func (s *Split) KeyDir() string { return s.base.KeyDir }
func (s *Split) RootKeyFile() string {
	return filepath.Join(s.base.DataDir, "offline", "registry-root.key")
}

// Gateway is the URL users call.
func (s *Split) Gateway() string { return s.URLs[system.RoleGateway] }

// Ledger is the ledger of record's System.
func (s *Split) Ledger() *system.System { return s.Systems[system.RoleLedger] }

// Restart stops every service and starts them again on the same data, as
// after a restart of the machine's processes (NATS stays up).
func (s *Split) Restart() error {
	if err := s.Close(); err != nil {
		return err
	}
	s.start()
	return nil
}

// Settle waits until every service's ledger replica has taken in every
// event on the stream: after an event sent around the gateway (a rule
// evaluation, a raw publish), every service then reads it.
func (s *Split) Settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	last, err := broker.LastSeq(ctx, s.Systems[system.RoleGateway].JetStream())
	if err != nil {
		return err
	}
	for role, sys := range s.Systems {
		for {
			pos, err := sys.Ledger.StreamPosition()
			if err != nil {
				return err
			}
			if pos >= last {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("systemtest: %s replica at stream position %d of %d: %w", role, pos, last, ctx.Err())
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	return nil
}

// Stop stops every service, its HTTP server and NATS. The test's end
// stops them too; a suite starting many calls it when done with one.
func (s *Split) Stop() {
	s.Close()
	for _, srv := range s.servers {
		srv.Close()
	}
	s.nats.Shutdown()
	s.nats.WaitForShutdown()
}

// Close stops every service but not NATS nor the HTTP servers (Restart).
func (s *Split) Close() error {
	var first error
	for role, sys := range s.Systems {
		if err := sys.Close(); err != nil && first == nil {
			first = fmt.Errorf("systemtest: close %s: %w", role, err)
		}
		delete(s.Systems, role)
	}
	return first
}
