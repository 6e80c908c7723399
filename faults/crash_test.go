package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/bench"
	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/system"
)

// build is a binary built once for the package's tests.
type build struct {
	sync.Once
	bin string
	err error
}

var salBuild, natsBuild build

// binary builds the Go package pkg (a path or a module path) once, as
// name, and returns the binary's path.
func (b *build) binary(t *testing.T, pkg, name string) string {
	t.Helper()
	b.Do(func() {
		dir, err := os.MkdirTemp("", "sal-faults-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.bin = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", b.bin, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// salBinary builds cmd/sal once for the package's tests.
func salBinary(t *testing.T) string { return salBuild.binary(t, "../cmd/sal", "sal") }

// natsServerBinary builds nats-server at the module version go.mod pins.
func natsServerBinary(t *testing.T) string {
	return natsBuild.binary(t, "github.com/nats-io/nats-server/v2", "nats-server")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output from two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one run of `sal up` as a separate process.
type proc struct {
	cmd      *exec.Cmd
	out      *lockedBuffer
	natsPort int
}

func startSal(t *testing.T, bin, data string, natsPort int) *proc {
	t.Helper()
	cmd := exec.Command(bin, "up", "-data", data, "-http", "127.0.0.1:0", "-nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "-log", "json")
	out := &lockedBuffer{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if !signalled && strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				close(ready)
				signalled = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sal up did not start:\n%s", out.String())
	}
	return &proc{cmd: cmd, out: out, natsPort: natsPort}
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.kill9()
		t.Fatal("sal up did not stop on SIGINT within 30s")
	}
}

var apiLine = regexp.MustCompile(`API:\s+http://(\S+)`)

// TestAcknowledgedEventsSurviveSIGKILL streams pre-signed events into the
// one-process system over NATS, kills the process with SIGKILL at random
// moments, restarts it, and republishes whatever was not acknowledged (as
// a publisher retrying after a timeout would). At the end every event is
// in the ledger exactly once, the log verifies (hash chain, signatures,
// Merkle roots against every checkpoint, replayed scorecard digests), and
// rebuilding the projections changes no byte.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the real binary for a while")
	}
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("SAL_CRASH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	bin := salBinary(t)
	data := t.TempDir()
	k := bench.DeterministicKeys("crash")
	// The events are signed by keys this ledger's registry root authorizes:
	// seed the root before the first start.
	if err := os.MkdirAll(filepath.Join(data, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "keys", "registry-root.key"), []byte(hex.EncodeToString(k.Root.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	events, err := bench.Events(k, n)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	subjects := make([]string, n)
	for i, raw := range events {
		o, err := envelope.Open(raw)
		if err != nil {
			t.Fatal(err)
		}
		ids[i], subjects[i] = o.Event.EventId, broker.Subject(o.Event.Type, o.Event.SupplierId)
	}

	port := freePort(t)
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	acked := make([]bool, n)
	kills := 0
	for round := 0; ; round++ {
		p := startSal(t, bin, data, port)
		nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.MaxReconnects(0))
		if err != nil {
			p.kill9()
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		// Publish what is not yet acknowledged; in the first rounds, kill
		// the process at a random moment while doing so.
		var pending []int
		for i := range n {
			if !acked[i] {
				pending = append(pending, i)
			}
		}
		killAt := -1
		if round < 3 && len(pending) > 100 {
			killAt = len(pending)/4 + rng.IntN(len(pending)/2)
		}
		futures := map[int]jetstream.PubAckFuture{}
		for j, i := range pending {
			if j == killAt {
				p.kill9()
				kills++
				break
			}
			f, err := js.PublishAsync(subjects[i], events[i], jetstream.WithMsgID(ids[i]), jetstream.WithStallWait(time.Minute))
			if err != nil {
				break
			}
			futures[i] = f
		}
		// Collect acknowledgements: a PubAck means JetStream has the event
		// on disk (sync_always); anything else is retried next round.
		deadline := time.After(30 * time.Second)
	collect:
		for i, f := range futures {
			select {
			case <-f.Ok():
				acked[i] = true
			case <-f.Err():
			case <-deadline:
				break collect
			}
		}
		nc.Close()
		if killAt >= 0 {
			continue
		}
		// No kill this round: wait for the ledger to take everything in.
		all := true
		for _, a := range acked {
			all = all && a
		}
		if !all {
			p.stop(t)
			continue
		}
		waitForHead(t, p, data)
		p.stop(t)
		break
	}
	if kills < 3 {
		t.Fatalf("only %d kills happened", kills)
	}

	root := k.Root.Public().(ed25519.PublicKey)
	l, err := ledger.Open(filepath.Join(data, "ledger.db"), root, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i, id := range ids {
		r, ok, err := l.Lookup(id)
		if err != nil || !ok || r.Quarantined {
			t.Fatalf("acknowledged event %d (%s) missing after crashes: %+v %v", i, id, r, err)
		}
	}
	// Exactly once: scan the whole log. Besides the streamed events it
	// holds only what the system itself signed (its key authorizations and
	// the consequences its enforcement service raised meanwhile).
	head, _, _ := l.Head()
	seen := make(map[string]int, n)
	want := make(map[string]bool, n)
	for _, id := range ids {
		want[id] = true
	}
	reg := l.Registry()
	own := 0
	err = l.Scan(context.Background(), func(e ledger.Entry) error {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			return err
		}
		if want[o.Event.EventId] {
			seen[o.Event.EventId]++
			return nil
		}
		holder := "registry root"
		if a, ok := reg.Lookup(o.Event.KeyId); ok {
			holder = a.Holder
		}
		if holder != "service:enforcement" && holder != "registry root" {
			return fmt.Errorf("seq %d: unexpected event %s signed by %s", e.Seq, o.Event.Type, holder)
		}
		own++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s stored %d times", id, c)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d of %d events in the log", len(seen), n)
	}
	cpKey, err := keys.Load(filepath.Join(data, "keys", "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, _ := keys.NoteSigner(system.DefaultOrigin(root), cpKey)
	rep, err := audit.Verify(context.Background(), l, audit.Trust{RootKey: root, CheckpointKey: vkey})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after %d kills: %+v %v", kills, rep.Failure, err)
	}
	before := map[string][]byte{}
	sups, _ := l.Suppliers()
	for _, s := range sups {
		before[s], _ = l.Scorecard(s)
	}
	if err := l.RebuildProjections(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range sups {
		after, _ := l.Scorecard(s)
		if !bytes.Equal(before[s], after) {
			t.Fatalf("projection of %s differs from a rebuild after the crashes", s)
		}
	}
	t.Logf("%d events each stored once after %d SIGKILLs; %d entries in all (%d signed by the system itself); %d checkpoints verified", n, kills, head, own, rep.Checkpoints)
}

// waitForHead waits until the running system's ledger has every event, by
// asking its HTTP API.
func waitForHead(t *testing.T, p *proc, data string) {
	t.Helper()
	m := apiLine.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no API address in output:\n%s", p.out.String())
	}
	_ = data
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := httpGet("http://" + m[1] + "/readyz")
		if err == nil && resp == 200 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The ledger has read everything once its stream position (what
	// /readyz reports as lag) reaches the stream's last message.
	for time.Now().Before(deadline) {
		var ready struct {
			Lag *uint64 `json:"lag"`
		}
		resp, err := http.Get("http://" + m[1] + "/readyz")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if ready.Lag != nil && *ready.Lag == 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the ledger did not catch up within 2 minutes")
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
