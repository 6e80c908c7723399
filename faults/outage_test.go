package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/supplier-accountability/sal/system"
)

// natsServer runs a NATS server with JetStream on a fixed loopback port
// and store, so it can be stopped and started again as the same server.
func natsServer(t *testing.T, port int, store string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, SyncAlways: true, NoSigs: true, NoLog: true, ServerName: "outage-test"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return s
}

// TestBrokerOutage runs the services against an external NATS server, stops
// it, and checks that writes during the outage get a clear 503 and record
// nothing, and that after the broker returns every acknowledged write is
// there and new writes succeed.
func TestBrokerOutage(t *testing.T) {
	port, store := freePort(t), t.TempDir()
	ns := natsServer(t, port, store)
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), NATSURL: fmt.Sprintf("nats://127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	srv := httptest.NewServer(sys.Handler)
	defer srv.Close()
	tok := map[string]string{}
	for _, d := range sys.DemoTokens {
		tok[d.Role] = d.Token
	}
	post := func(path, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok["supplier:acme-health"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if c, b := post("/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme"}`); c != 201 {
		t.Fatalf("register: %d %v", c, b)
	}
	commit := func(i int) (int, map[string]any) {
		return post("/v1/suppliers/acme-health/commitments", fmt.Sprintf(`{"standard":"DICOM","version":"2024d","product":"Product %d","target_date":"2027-06-30"}`, i))
	}
	var acknowledged []string
	for i := range 5 {
		c, b := commit(i)
		if c != 201 {
			t.Fatalf("commit before the outage: %d %v", c, b)
		}
		acknowledged = append(acknowledged, b["commitment_id"].(string))
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	headBefore, _, _ := sys.Ledger.Head()
	c, b := commit(100)
	if c != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(b["error"]), "Idempotency-Key") {
		t.Fatalf("write during the outage: %d %v, want a clear 503", c, b)
	}
	if r, _ := http.Get(srv.URL + "/readyz"); r == nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the outage: %v", r)
	}

	ns = natsServer(t, port, store)
	defer ns.Shutdown()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, b = commit(200)
		if c == 201 {
			acknowledged = append(acknowledged, b["commitment_id"].(string))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still failing 20s after the broker returned: %d %v", c, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	card, err := sys.Ledger.Card("acme-health")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range acknowledged {
		if card.Commitment(id) == nil {
			t.Fatalf("acknowledged commitment %s missing after the outage", id)
		}
	}
	for _, cm := range card.Commitments {
		if cm.Product == "Product 100" {
			t.Fatal("the write refused with 503 was recorded anyway")
		}
	}
	headAfter, _, _ := sys.Ledger.Head()
	if headAfter != headBefore+1 {
		t.Fatalf("ledger grew by %d across the outage, want 1 (the write after the broker returned)", headAfter-headBefore)
	}
}

// TestNATSCredentials: with user and password the system connects; with a
// wrong password it refuses to start, saying why.
func TestNATSCredentials(t *testing.T) {
	port := freePort(t)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), Username: "sal", Password: "s3cret", NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	defer s.Shutdown()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	if _, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), NATSURL: url, NATSUser: "sal", NATSPassword: "wrong"}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("start with a wrong password: %v", err)
	}
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), NATSURL: url, NATSUser: "sal", NATSPassword: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	sys.Close()
}

// TestNATSNKey: with a user NKey seed the system connects to a NATS server
// that knows only the NKey's public half; with another seed it refuses to
// start, saying why.
func TestNATSNKey(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "sal.nk"), filepath.Join(dir, "other.nk")
	if err := os.WriteFile(good, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), Nkeys: []*server.NkeyUser{{Nkey: pub}}, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	defer s.Shutdown()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	if _, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), NATSURL: url, NATSNKeyFile: bad}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("start with an unknown NKey: %v", err)
	}
	sys, err := system.Start(context.Background(), system.Config{DataDir: t.TempDir(), NATSURL: url, NATSNKeyFile: good})
	if err != nil {
		t.Fatal(err)
	}
	sys.Close()
}
