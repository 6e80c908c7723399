package faults_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/system"
)

// mountTmpfs mounts a tmpfs of size (e.g. "64m") on a fresh directory and
// unmounts it when the test ends. It skips the test, saying why, where
// mounting is not allowed (not root, no CAP_SYS_ADMIN, a restricted
// container).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("filling a disk needs a Linux tmpfs; this is %s", runtime.GOOS)
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (mounting needs root or CAP_SYS_ADMIN, outside a restricted container): mount: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// Registered after TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		var out []byte
		var err error
		for range 50 {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if lazy, lerr := exec.Command("umount", "-l", dir).CombinedOutput(); lerr != nil {
			t.Errorf("umount %s: %v: %s; umount -l: %v: %s", dir, err, out, lerr, lazy)
		}
	})
	return dir
}

// fill writes a file in dir until the file system has no space left.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
	return path
}

// TestDiskFull fills the disk under a running system (ledger file and
// embedded JetStream store on one small tmpfs) and keeps writing through
// the HTTP API. Writes the broker still takes are answered 202 (queued,
// not yet in the ledger) at once, writes it cannot take get a 503 that says
// the storage is full and to retry with the same Idempotency-Key; nothing
// is answered 201 that is not committed. The ledger logs the failure and
// exports it as a metric. When the filler file is deleted the system
// recovers by itself: the ledger's consumer commits the batch it kept
// retrying, the embedded JetStream is restarted, retried writes are
// recorded exactly once and new writes succeed. At the end the ledger
// verifies (hash chain, signatures, Merkle roots against every checkpoint,
// scorecard digests) and holds every write exactly once.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a disk and waits for recovery")
	}
	mnt := mountTmpfs(t, "64m")
	data := filepath.Join(mnt, "data")
	logs := &lockedBuffer{}
	sys, err := system.Start(context.Background(), system.Config{DataDir: data, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			sys.Close()
		}
	})
	srv := httptest.NewServer(sys.Handler)
	t.Cleanup(srv.Close)
	var token string
	for _, d := range sys.DemoTokens {
		if d.Role == "supplier:acme-health" {
			token = d.Token
		}
	}
	call := func(method, path, key, body string) (int, map[string]any, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out, string(raw)
	}
	commit := func(i int) (int, map[string]any, string) {
		return call("POST", "/v1/suppliers/acme-health/commitments", fmt.Sprintf("disk-full-%d", i),
			fmt.Sprintf(`{"standard":"DICOM","version":"2024d","product":"Product %d","target_date":"2027-06-30"}`, i))
	}
	if c, _, b := call("POST", "/v1/suppliers", "register", `{"supplier_id":"acme-health","name":"Acme"}`); c != 201 {
		t.Fatalf("register: %d %s", c, b)
	}
	n := 0
	for ; n < 3; n++ {
		if c, _, b := commit(n); c != 201 {
			t.Fatalf("write before the disk is full: %d %s", c, b)
		}
	}

	filler := fill(t, mnt)
	start := time.Now()
	status := map[int]int{} // write -> status, for the writes made while full
	var unavailable []string
	// Which store finds the disk full first depends on which needs a new
	// page first: the ledger writes scorecards in bulk, so it is usually
	// JetStream. The ledger's own full disk is TestLedgerDiskFull's.
	ledgerFullSeen := false
	for ; time.Since(start) < 25*time.Second && n < 60; n++ {
		ledgerFull := errors.Is(sys.Ledger.AppendFailure(), ledger.ErrNoSpace)
		ledgerFullSeen = ledgerFullSeen || ledgerFull
		c, _, b := commit(n)
		status[n] = c
		t.Logf("write %d while the disk is full: %d %s", n, c, b)
		switch c {
		case http.StatusCreated, http.StatusAccepted:
		case http.StatusServiceUnavailable:
			ledgerFull = ledgerFull && errors.Is(sys.Ledger.AppendFailure(), ledger.ErrNoSpace)
			if !strings.Contains(b, "Idempotency-Key") || (ledgerFull && !strings.Contains(b, "storage full")) {
				t.Fatalf("write %d: 503 without a clear reason: %s", n, b)
			}
			unavailable = append(unavailable, b)
		default:
			t.Fatalf("write %d while the disk is full: %d %s", n, c, b)
		}
		if len(unavailable) > 0 {
			n++
			break
		}
	}
	if len(unavailable) == 0 {
		t.Fatalf("the broker never refused a write in %v of a full disk: %v", time.Since(start), status)
	}
	ledgerFullSeen = ledgerFullSeen || errors.Is(sys.Ledger.AppendFailure(), ledger.ErrNoSpace)
	if ledgerFullSeen {
		if out := logs.String(); !strings.Contains(out, "ledger append failed") || !strings.Contains(out, "no space left on device") {
			t.Fatalf("no log line tells the operator the ledger's disk is full:\n%s", out)
		}
		if _, _, m := call("GET", "/metrics", "", ""); !strings.Contains(m, `sal_append_failures_total{reason="no_space"}`) {
			t.Fatal("/metrics does not show the failing appends")
		}
	} else {
		t.Log("JetStream's store found the disk full before the ledger did")
	}

	// Space returns. Retry every write not answered 201 with its key until
	// it is recorded, then write something new.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for i := 3; i < n; i++ {
		if status[i] == http.StatusCreated {
			continue
		}
		for {
			c, _, b := commit(i)
			if c == http.StatusOK || c == http.StatusCreated {
				break
			}
			if time.Since(freed) > 30*time.Second {
				t.Fatalf("write %d still not recorded %v after space returned: %d %s\nlogs:\n%s", i, time.Since(freed), c, b, logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if c, _, b := commit(n); c != http.StatusCreated {
		t.Fatalf("a new write after recovery: %d %s", c, b)
	}
	n++
	t.Logf("recovered %v after space returned; %d writes while full: %v", time.Since(freed).Round(time.Millisecond), len(status), status)
	if out := logs.String(); ledgerFullSeen && !strings.Contains(out, "ledger append recovered") {
		t.Errorf("no log line says the ledger recovered:\n%s", out)
	}

	// Every write is in the ledger exactly once, and the ledger verifies.
	closed = true
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	rootKey, err := keys.Load(filepath.Join(data, "keys", "registry-root.key"))
	if err != nil {
		t.Fatal(err)
	}
	root := rootKey.Public().(ed25519.PublicKey)
	l, err := ledger.Open(filepath.Join(data, "ledger.db"), root, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seen := map[string]int{}
	err = l.Scan(context.Background(), func(e ledger.Entry) error {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			return fmt.Errorf("seq %d: %w", e.Seq, err)
		}
		if cm, ok := o.Payload.(*pb.CommitmentMade); ok {
			seen[cm.Product]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := seen[fmt.Sprintf("Product %d", i)]; c != 1 {
			t.Errorf("write %d (answered %d while the disk was full) is in the ledger %d times, want once", i, status[i], c)
		}
	}
	if len(seen) != n {
		t.Errorf("the ledger holds %d commitments, want %d: %v", len(seen), n, seen)
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatalf("hash chain after the disk was full: %v", err)
	}
	cpKey, err := keys.Load(filepath.Join(data, "keys", "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, _ := keys.NoteSigner(system.DefaultOrigin(root), cpKey)
	rep, err := audit.Verify(context.Background(), l, audit.Trust{RootKey: root, CheckpointKey: vkey})
	if err != nil || !rep.OK() {
		t.Fatalf("audit after the disk was full: %+v %v", rep.Failure, err)
	}
}
