package system_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/audit"
	"github.com/supplier-accountability/sal/broker"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/keys"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
	"github.com/supplier-accountability/sal/system"
)

// TestKeyRotation: a rotated key's past events still verify against the key
// valid when they were appended; its new events are refused as retired.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	in := mustStart(t, dir)
	acme := in.tokens["supplier:acme-health"]
	in.do(t, "POST", "/v1/suppliers", acme, `{"supplier_id":"acme-health","name":"Acme"}`)
	old := serviceSigner(t, dir, "commitments")
	in.stop()

	sys, err := system.Start(context.Background(), system.Config{DataDir: dir, RotateKeys: []string{"commitments"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	reg := sys.Ledger.Registry()
	a, ok := reg.Lookup(old.KeyID())
	if !ok || a.RetiredAt == 0 {
		t.Fatalf("old key %s not retired: %+v", old.KeyID(), a)
	}
	fresh := serviceSigner(t, dir, "commitments")
	if fresh.KeyID() == old.KeyID() {
		t.Fatal("key not replaced")
	}
	if b, ok := reg.Lookup(fresh.KeyID()); !ok || b.RetiredAt != 0 || b.AuthorizedAt == 0 {
		t.Fatalf("new key not in force: %+v", b)
	}
	if _, err := keys.Load(filepath.Join(dir, "keys", "retired", "commitments-"+old.KeyID()+".key")); err != nil {
		t.Fatalf("old key file not kept: %v", err)
	}

	raw, ev, _ := old.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Now(), Payload: &pb.CommitmentMade{CommitmentId: "cm_late", StandardId: "DICOM"}})
	if err := broker.NewPublisher(sys.JetStream()).Publish(context.Background(), broker.Subject(ev.Type, "acme-health"), ev.EventId, raw); err != nil {
		t.Fatal(err)
	}
	r, err := sys.Ledger.Wait(context.Background(), ev.EventId)
	if err != nil || !r.Quarantined {
		t.Fatalf("event from the retired key: %+v %v", r, err)
	}
	recs, _ := sys.Ledger.Quarantine(1, 10)
	if len(recs) != 1 || recs[0].Code != "retired_key" {
		t.Fatalf("quarantine %+v", recs)
	}

	root, _ := keys.Load(filepath.Join(dir, "keys", "registry-root.key"))
	rep, err := audit.Verify(context.Background(), sys.Ledger, audit.Trust{RootKey: root.Public().(ed25519.PublicKey), CheckpointKey: sys.CheckpointKey})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after rotation: %+v %v", rep.Failure, err)
	}
}
