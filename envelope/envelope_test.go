package envelope_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/supplier-accountability/sal/envelope"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

func signer(t testing.TB) *envelope.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return envelope.NewSigner(k)
}

func TestSealOpenVerifyRoundTrip(t *testing.T) {
	s := signer(t)
	at := time.Date(2027, 3, 31, 12, 0, 0, 0, time.UTC)
	raw, ev, err := s.Seal(envelope.Draft{SupplierID: "acme", OccurredAt: at, Payload: &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "DICOM"}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := envelope.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Verify(s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if o.Event.EventId != ev.EventId || o.Event.KeyId != s.KeyID() || !o.OccurredAt().Equal(at) {
		t.Fatalf("opened %+v, sealed %+v", o.Event, ev)
	}
	if p, ok := o.Payload.(*pb.CommitmentMade); !ok || p.StandardId != "DICOM" {
		t.Fatalf("payload %#v", o.Payload)
	}
	if err := o.Verify(signer(t).PublicKey()); !errors.Is(err, envelope.ErrBadSignature) {
		t.Fatalf("verify with another key: %v", err)
	}
}

// TestSignatureCoversTheExactBytes re-encodes the event with an extra
// unknown field: semantically the same event, different bytes, so the
// signature must fail.
func TestSignatureCoversTheExactBytes(t *testing.T) {
	s := signer(t)
	raw, _, err := s.Seal(envelope.Draft{SupplierID: "acme", OccurredAt: time.Now(), Payload: &pb.SupplierRegistered{Name: "Acme"}})
	if err != nil {
		t.Fatal(err)
	}
	var env pb.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	env.Event = append(env.Event, 0xf8, 0x01, 0x01) // field 31, varint 1
	tampered, _ := proto.Marshal(&env)
	o, err := envelope.Open(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Verify(s.PublicKey()); !errors.Is(err, envelope.ErrBadSignature) {
		t.Fatalf("verify after re-encoding: %v, want ErrBadSignature", err)
	}
}

func TestOpenRefusesBadShapes(t *testing.T) {
	s := signer(t)
	body, _ := proto.Marshal(&pb.Event{EventId: "ev1", Type: pb.EventType_EVENT_TYPE_SUPPLIER_REGISTERED, KeyId: s.KeyID(), Payload: []byte{0xff}})
	badPayload, _ := proto.Marshal(&pb.Envelope{Event: body, Signature: s.SignBody(body)})
	noID, _ := proto.Marshal(&pb.Envelope{Event: []byte{}, Signature: make([]byte, 64)})
	shortSig, _ := proto.Marshal(&pb.Envelope{Event: body, Signature: []byte{1, 2}})
	cases := map[string]struct {
		raw  []byte
		want error
	}{
		"garbage":         {[]byte{0xff, 0xff, 0xff}, envelope.ErrMalformed},
		"bad payload":     {badPayload, envelope.ErrMalformed},
		"no event id":     {noID, envelope.ErrMalformed},
		"short signature": {shortSig, envelope.ErrMalformed},
		"too large":       {make([]byte, envelope.MaxSize+1), envelope.ErrTooLarge},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := envelope.Open(c.raw); !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
		})
	}
}

// FuzzOpen feeds arbitrary bytes to the decoder the ledger runs on every
// message from the broker: it must never panic, and whatever it accepts must
// carry an id, a key id and a typed payload.
func FuzzOpen(f *testing.F) {
	s := signer(f)
	raw, _, _ := s.Seal(envelope.Draft{SupplierID: "acme", OccurredAt: time.Unix(1800000000, 0), Payload: &pb.AssessmentRecorded{AssessmentId: "as1", Outcome: pb.Outcome_OUTCOME_CONFORMANT}})
	f.Add(raw)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x12, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := envelope.Open(b)
		if err != nil {
			return
		}
		if o.Event.EventId == "" || o.Event.KeyId == "" || o.Payload == nil {
			t.Fatalf("accepted an envelope without id, key or payload: %+v", o.Event)
		}
		_ = o.Verify(s.PublicKey())
	})
}
