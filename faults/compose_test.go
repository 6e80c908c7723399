package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// compose runs docker-compose for the test's own project.
type compose struct {
	t       *testing.T
	project string
	port    int
}

func (c *compose) env() []string {
	return append(os.Environ(), "COMPOSE_PROJECT_NAME="+c.project, fmt.Sprintf("SAL_HTTP_PORT=%d", c.port))
}

func (c *compose) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = ".."
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *compose) must(timeout time.Duration, name string, args ...string) string {
	c.t.Helper()
	out, err := c.run(timeout, name, args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (c *compose) healthy(service string) bool {
	id, err := c.run(30*time.Second, "docker-compose", "ps", "-q", service)
	if err != nil || strings.TrimSpace(id) == "" {
		return false
	}
	st, err := c.run(30*time.Second, "docker", "inspect", "-f", "{{.State.Health.Status}}", strings.TrimSpace(id))
	return err == nil && strings.TrimSpace(st) == "healthy"
}

func dockerAvailable() string {
	for _, bin := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed"
		}
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		return "the Docker engine is not reachable: " + strings.TrimSpace(string(out))
	}
	return ""
}

var tokenLine = regexp.MustCompile(`(?m)^\S+\s+\|\s+(commercial|auditor|supplier:[a-z-]+)\s+(sal_[A-Za-z0-9_-]+)`)

// TestComposeStack builds the images (FROM scratch, from the project's own
// binaries), brings docker-compose.yml up — three NATS JetStream nodes with
// the stream replicated three times, and each service in its own container
// behind the gateway — records assessments through the gateway, stops one
// NATS node, records again, restarts it, and checks nothing was lost, every
// container is healthy, and every service's ledger replica has the same
// Merkle root as the ledger of record; then tears the stack down.
func TestComposeStack(t *testing.T) {
	if testing.Short() {
		t.Skip("the compose test builds images and runs containers")
	}
	if why := dockerAvailable(); why != "" {
		t.Skipf("skipping the compose test: %s", why)
	}
	c := &compose{t: t, project: fmt.Sprintf("saltest%d", os.Getpid()), port: freePort(t)}
	t.Cleanup(func() { c.run(3*time.Minute, "docker-compose", "down", "-v", "--remove-orphans") })
	c.must(8*time.Minute, "deploy/up.sh")

	logs := c.must(time.Minute, "docker-compose", "logs", "--no-color", "gateway")
	tok := map[string]string{}
	for _, m := range tokenLine.FindAllStringSubmatch(logs, -1) {
		tok[m[1]] = m[2]
	}
	if tok["commercial"] == "" || tok["supplier:acme-health"] == "" {
		t.Fatalf("no demo credentials in the logs:\n%s", logs)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", c.port)
	call := func(token, method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if method == "POST" {
			req.Header.Set("Idempotency-Key", path+body)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, map[string]any{"error": err.Error()}
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	eventually := func(what string, fn func() (int, map[string]any)) map[string]any {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			code, out := fn()
			if code == 200 || code == 201 {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %v", what, code, out)
			}
			time.Sleep(time.Second)
		}
	}
	acme, commercial := tok["supplier:acme-health"], tok["commercial"]
	eventually("register", func() (int, map[string]any) {
		return call(acme, "POST", "/v1/suppliers", `{"supplier_id":"acme-health","name":"Acme Health Systems Ltd"}`)
	})
	cm := eventually("commit", func() (int, map[string]any) {
		return call(acme, "POST", "/v1/suppliers/acme-health/commitments", `{"standard":"FHIR-R4-UKCORE","version":"2.0.1","product":"ePrescribing","target_date":"2027-03-31"}`)
	})["commitment_id"].(string)
	assess := func(evidence string) {
		eventually("assess "+evidence, func() (int, map[string]any) {
			return call(commercial, "POST", "/v1/suppliers/acme-health/commitments/"+cm+"/assessments", `{"outcome":"partially_conformant","evidence_ref":"`+evidence+`","assessor":"J. Patel"}`)
		})
	}
	assess("BEFORE-NODE-LOSS")

	c.must(2*time.Minute, "docker-compose", "stop", "n2")
	assess("DURING-NODE-LOSS")
	c.must(2*time.Minute, "docker-compose", "start", "n2")
	deadline := time.Now().Add(2 * time.Minute)
	for !c.healthy("n2") {
		if time.Now().After(deadline) {
			t.Fatal("n2 did not become healthy again")
		}
		time.Sleep(2 * time.Second)
	}
	assess("AFTER-NODE-RETURN")

	code, card := call(acme, "GET", "/v1/suppliers/acme-health/scorecard", "")
	if code != 200 {
		t.Fatalf("scorecard: %d %v", code, card)
	}
	seen := map[string]int{}
	for _, a := range card["commitments"].([]any)[0].(map[string]any)["assessments"].([]any) {
		seen[a.(map[string]any)["evidence_ref"].(string)]++
	}
	for _, e := range []string{"BEFORE-NODE-LOSS", "DURING-NODE-LOSS", "AFTER-NODE-RETURN"} {
		if seen[e] != 1 {
			t.Errorf("assessment %s is on the scorecard %d times, want once", e, seen[e])
		}
	}
	services := []string{"ledger", "commitments", "assessments", "enforcement", "scorecards", "gateway"}
	for _, s := range append([]string{"n1", "n2", "n3"}, services...) {
		if !c.healthy(s) {
			t.Errorf("%s is not healthy at the end", s)
		}
	}
	// Every replica converges on the ledger of record's size and root
	// (asked from inside each container: only the gateway is published).
	ready := func(s string) map[string]any {
		out, err := c.run(30*time.Second, "docker-compose", "exec", "-T", s, "/sal", "probe", "-print", "http://127.0.0.1:8080/readyz")
		var r map[string]any
		if err != nil || json.Unmarshal([]byte(out), &r) != nil {
			return map[string]any{"error": fmt.Sprint(err, out)}
		}
		return r
	}
	deadline = time.Now().Add(time.Minute)
	for _, s := range services {
		for {
			want, got := ready("ledger"), ready(s)
			if got["size"] != nil && got["size"] == want["size"] && got["root"] == want["root"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s replica %v, ledger of record %v", s, got, want)
			}
			time.Sleep(time.Second)
		}
	}
}
