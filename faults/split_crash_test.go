package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/system"
)

// splitStack is the system as separate processes: a nats-server process
// (fsync on every message) and one `sal serve` process per service.
type splitStack struct {
	t               *testing.T
	sal, natsBin    string
	dir             string
	natsPort        int
	ports           map[string]int
	procs           map[string]*exec.Cmd
	outs            map[string]*lockedBuffer
	mu              sync.Mutex
	natsCmd         *exec.Cmd
	natsOut         *lockedBuffer
	tokens          map[string]string
	processesKilled int
}

func (s *splitStack) url(svc string) string { return fmt.Sprintf("http://127.0.0.1:%d", s.ports[svc]) }

func (s *splitStack) startNATS() {
	s.t.Helper()
	conf := filepath.Join(s.dir, "nats.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q, sync_interval: always }\n", s.natsPort, filepath.Join(s.dir, "nats"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.natsOut = &lockedBuffer{}
	cmd := exec.Command(s.natsBin, "-c", conf)
	cmd.Stdout, cmd.Stderr = s.natsOut, s.natsOut
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.natsCmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.natsOut.String(), "Server is ready") {
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server did not start:\n%s", s.natsOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *splitStack) start(svc string) {
	s.t.Helper()
	args := []string{"serve", svc, "-data", filepath.Join(s.dir, svc), "-keys", filepath.Join(s.dir, "keys"),
		"-tokens", filepath.Join(s.dir, "tokens.json"), "-http", fmt.Sprintf("127.0.0.1:%d", s.ports[svc]),
		"-nats-url", fmt.Sprintf("nats://127.0.0.1:%d", s.natsPort)}
	if svc == system.RoleGateway {
		for _, other := range []string{system.RoleLedger, system.RoleCommitments, system.RoleAssessments, system.RoleEnforcement, system.RoleScorecards} {
			args = append(args, "-"+other+"-url", s.url(other))
		}
	}
	cmd := exec.Command(s.sal, args...)
	out := &lockedBuffer{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
		}
	}()
	s.mu.Lock()
	s.procs[svc], s.outs[svc] = cmd, out
	s.mu.Unlock()
}

// kill9 sends SIGKILL to a service ("nats" for the broker) and reaps it.
func (s *splitStack) kill9(svc string) {
	s.mu.Lock()
	cmd := s.procs[svc]
	if svc == "nats" {
		cmd = s.natsCmd
	}
	s.processesKilled++
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_, _ = cmd.Process.Wait()
}

func (s *splitStack) waitReady(svc string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url(svc) + "/readyz")
		if err == nil {
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return body
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not ready: %v\n%s", svc, err, s.outs[svc].String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *splitStack) call(token, method, path, key, body string) (int, map[string]any) {
	req, _ := http.NewRequest(method, s.url(system.RoleGateway)+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestSplitServicesSurviveSIGKILLOfBrokerServiceAndLedger runs every
// service as its own process against a nats-server process, streams writes
// through the gateway from several clients, and sends SIGKILL in turn to
// the publishing service, the broker and the ledger of record while they
// do; each is restarted. Clients retry what was not confirmed with the same
// Idempotency-Key, as the 503 tells them to. At the end every write that
// was ever acknowledged is in the ledger exactly once, the log verifies
// (gap-free, signatures, Merkle roots, checkpoints), every replica has the
// ledger of record's root, and the projections equal a rebuild.
func TestSplitServicesSurviveSIGKILLOfBrokerServiceAndLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	s := &splitStack{t: t, sal: salBinary(t), natsBin: natsServerBinary(t), dir: t.TempDir(), natsPort: freePort(t),
		ports: map[string]int{}, procs: map[string]*exec.Cmd{}, outs: map[string]*lockedBuffer{}, tokens: map[string]string{}}
	for _, svc := range system.Roles[1:] {
		s.ports[svc] = freePort(t)
	}
	if out, err := exec.Command(s.sal, "keys", "init", "-dir", filepath.Join(s.dir, "keys"), "-root", filepath.Join(s.dir, "offline", "root.key")).CombinedOutput(); err != nil {
		t.Fatalf("sal keys init: %v\n%s", err, out)
	}
	s.startNATS()
	t.Cleanup(func() {
		for svc := range s.procs {
			s.kill9(svc)
		}
		s.kill9("nats")
	})
	services := []string{system.RoleLedger, system.RoleCommitments, system.RoleAssessments, system.RoleEnforcement, system.RoleScorecards, system.RoleGateway}
	for _, svc := range services {
		s.start(svc)
	}
	for _, svc := range services {
		s.waitReady(svc)
	}
	for _, line := range strings.Split(s.outs[system.RoleGateway].String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[1], "sal_") {
			s.tokens[f[0]] = f[1]
		}
	}
	acme := s.tokens["supplier:acme-health"]
	if acme == "" {
		t.Fatalf("no demo credentials from the gateway:\n%s", s.outs[system.RoleGateway].String())
	}
	if c, b := s.call(acme, "POST", "/v1/suppliers", "register", `{"supplier_id":"acme-health","name":"Acme Health Systems Ltd"}`); c != 201 {
		t.Fatalf("register: %d %v", c, b)
	}

	// Writers: each commitment has its own Idempotency-Key; a write not
	// confirmed is retried with the same key until it is.
	const writers, perWriter = 4, 150
	var mu sync.Mutex
	acked := map[string]string{} // idempotency key -> commitment id
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				key := fmt.Sprintf("w%d-%d", w, i)
				body := fmt.Sprintf(`{"standard":"DICOM","version":"2024d","product":"Product %d-%d","target_date":"2027-06-30"}`, w, i)
				for {
					c, b := s.call(acme, "POST", "/v1/suppliers/acme-health/commitments", key, body)
					if c == 201 || c == 200 {
						mu.Lock()
						acked[key] = b["commitment_id"].(string)
						mu.Unlock()
						break
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	progress := func(n int) {
		deadline := time.Now().Add(90 * time.Second)
		for {
			mu.Lock()
			got := len(acked)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				close(stop)
				t.Fatalf("stuck at %d acknowledged writes (want %d)\nnats:\n%s\ngateway:\n%s\ncommitments:\n%s", got, n, tail(s.natsOut.String()), tail(s.outs[system.RoleGateway].String()), tail(s.outs[system.RoleCommitments].String()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	kill := func(svc string, after int) {
		progress(after)
		s.kill9(svc)
		time.Sleep(300 * time.Millisecond)
		if svc == "nats" {
			s.startNATS()
			return
		}
		s.start(svc)
	}
	kill(system.RoleCommitments, 100) // the publishing service
	kill("nats", 250)                 // the broker
	kill(system.RoleLedger, 400)      // the ledger of record
	progress(writers * perWriter)
	wg.Wait()
	for _, svc := range services {
		s.waitReady(svc)
	}

	// Every replica converges on the ledger of record.
	var want map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for _, svc := range services {
		for {
			want = s.waitReady(system.RoleLedger)
			got := s.waitReady(svc)
			if got["size"] == want["size"] && got["root"] == want["root"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s replica %v, ledger of record %v", svc, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Every acknowledged write is on the scorecard exactly once.
	c, card := s.call(s.tokens["commercial"], "GET", "/v1/suppliers/acme-health/scorecard", "", "")
	if c != 200 {
		t.Fatalf("scorecard: %d %v", c, card)
	}
	onCard := map[string]int{}
	for _, cm := range card["commitments"].([]any) {
		onCard[cm.(map[string]any)["id"].(string)]++
	}
	for key, id := range acked {
		if onCard[id] != 1 {
			t.Errorf("acknowledged write %s (%s) is on the scorecard %d times", key, id, onCard[id])
		}
	}
	if len(onCard) != len(acked) {
		t.Errorf("%d commitments on the scorecard, %d acknowledged", len(onCard), len(acked))
	}
	if c, b := s.call(s.tokens["auditor"], "POST", "/v1/audit/verify", "", ""); c != 200 || b["ok"] != true {
		t.Fatalf("audit verify: %d %v", c, b)
	}

	// The ledger of record's projections equal a rebuild from its log.
	s.kill9(system.RoleLedger)
	root, err := keys.LoadPublic(filepath.Join(s.dir, "keys", system.RootPublicFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(filepath.Join(s.dir, system.RoleLedger, "ledger.db"), root, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before, _ := l.Scorecard("acme-health")
	if err := l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after, _ := l.Scorecard("acme-health"); !bytes.Equal(before, after) {
		t.Fatal("the ledger of record's projection differs from a rebuild")
	}
	t.Logf("%d acknowledged writes each stored once after SIGKILL of the commitments service, the broker and the ledger; %v entries, replicas agree on root %v", len(acked), want["size"], want["root"])
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
