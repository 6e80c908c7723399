package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/supplier-accountability/sal/system"
)

// node is one member of a three-node NATS JetStream cluster on loopback.
type node struct {
	name            string
	port, routePort int
	store           string
	srv             *server.Server
}

func (n *node) start(t *testing.T, peers []*node) {
	t.Helper()
	var routes []*url.URL
	for _, p := range peers {
		if p != n {
			u, _ := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", p.routePort))
			routes = append(routes, u)
		}
	}
	opts := &server.Options{
		ServerName: n.name, Host: "127.0.0.1", Port: n.port,
		JetStream: true, StoreDir: n.store, SyncAlways: true,
		Cluster: server.ClusterOpts{Name: "sal-test", Host: "127.0.0.1", Port: n.routePort},
		Routes:  routes, NoSigs: true, NoLog: true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		t.Fatalf("%s not ready", n.name)
	}
	n.srv = s
}

func (n *node) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// TestClusterNodeLoss runs the system against a three-node JetStream
// cluster with the event stream replicated three times. Losing one node,
// writes go on; losing a second, writes are refused with a clear 503 and
// nothing refused is recorded; with the nodes back, writes resume and every
// acknowledged write is in the ledger.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test takes a while")
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = &node{name: fmt.Sprintf("n%d", i+1), port: freePort(t), routePort: freePort(t), store: t.TempDir()}
	}
	for _, n := range nodes {
		n.start(t, nodes)
		defer n.stop()
	}
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.port)
	}
	// The cluster needs a JetStream meta leader before the stream can be made.
	var sys *system.System
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		sys, err = system.Start(context.Background(), system.Config{DataDir: t.TempDir(), NATSURL: strings.Join(urls, ","), Replicas: 3})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("system against the cluster: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
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
		// One key per logical write, as a careful client does: a retry of
		// the same write, whatever became of the first attempt, records it
		// once.
		req.Header.Set("Idempotency-Key", body)
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
	var acked []string
	commit := func(i int) (int, map[string]any) {
		c, b := post("/v1/suppliers/acme-health/commitments", fmt.Sprintf(`{"standard":"DICOM","version":"2024d","product":"Product %d","target_date":"2027-06-30"}`, i))
		if c == 201 || c == 200 {
			acked = append(acked, b["commitment_id"].(string))
		}
		return c, b
	}
	// writeEventually retries one write until it is acknowledged, as a
	// client that got 503 would (same product each time).
	writeEventually := func(i int, within time.Duration) {
		t.Helper()
		end := time.Now().Add(within)
		for {
			c, b := commit(i)
			if c == 201 || c == 200 {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("write %d not acknowledged within %s: %d %v", i, within, c, b)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	for i := range 10 {
		writeEventually(i, 10*time.Second)
	}

	nodes[0].stop() // one node lost: a quorum of two remains
	for i := 10; i < 20; i++ {
		writeEventually(i, 20*time.Second)
	}

	nodes[1].stop() // two lost: no quorum, writes must not be acknowledged
	refused := 0
	for i := 100; i < 105; i++ {
		c, b := commit(i)
		if c == 201 || c == 200 {
			t.Fatalf("write acknowledged without a quorum: %v", b)
		}
		if c != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(b["error"]), "Idempotency-Key") {
			t.Fatalf("write without a quorum: %d %v, want 503 telling to retry with the same key", c, b)
		}
		refused++
	}

	nodes[0].start(t, nodes)
	nodes[1].start(t, nodes)
	for i := 20; i < 30; i++ {
		writeEventually(i, 60*time.Second)
	}
	// The refused writes are retried with their keys: some may have been
	// committed when the quorum came back; each must end up recorded once.
	for i := 100; i < 105; i++ {
		writeEventually(i, 60*time.Second)
	}
	// Every acknowledged write is on the scorecard.
	end := time.Now().Add(30 * time.Second)
	for {
		card, err := sys.Ledger.Card("acme-health")
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, id := range acked {
			if card.Commitment(id) == nil {
				missing++
			}
		}
		if missing == 0 {
			count := map[string]int{}
			for _, cm := range card.Commitments {
				count[cm.Product]++
			}
			for p, n := range count {
				if n != 1 {
					t.Errorf("%s recorded %d times", p, n)
				}
			}
			if len(count) != 35 {
				t.Errorf("%d distinct writes recorded, want 35", len(count))
			}
			t.Logf("%d writes acknowledged across the loss of one and then two of three nodes; %d refused with 503 while without quorum", len(acked), refused)
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d acknowledged writes missing", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
