package envelope_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"google.golang.org/protobuf/encoding/protowire"
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

// TestOpenerAgreesWithOpen: an Opener reusing its messages over envelopes
// of every type, good ones between bad ones (a bad payload of a type it
// already holds a message for among them), opens each as Open does, and
// refuses what Open refuses with the same error.
func TestOpenerAgreesWithOpen(t *testing.T) {
	s := signer(t)
	at := time.Date(2027, 3, 31, 12, 0, 0, 0, time.UTC)
	seal := func(supplier string, p proto.Message) []byte {
		raw, _, err := s.Seal(envelope.Draft{SupplierID: supplier, OccurredAt: at, Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	body, _ := proto.Marshal(&pb.Event{EventId: "ev1", Type: pb.EventType_EVENT_TYPE_COMMITMENT_MADE, KeyId: s.KeyID(), Payload: []byte{0xff}})
	badPayload, _ := proto.Marshal(&pb.Envelope{Event: body, Signature: s.SignBody(body)})
	raws := [][]byte{
		seal("acme", &pb.SupplierRegistered{Name: "Acme Health"}),
		seal("acme", &pb.CommitmentMade{CommitmentId: "cm1", StandardId: "HL7-FHIR", StandardVersion: "R4", Product: "Acme EPR", TargetDate: "2027-06-30"}),
		badPayload,
		seal("acme", &pb.CommitmentMade{CommitmentId: "cm2", StandardId: "DICOM"}), // fewer fields than cm1: nothing of cm1 may remain
		{0xff, 0xff, 0xff},
		seal("acme", &pb.AssessmentRecorded{AssessmentId: "as1", CommitmentId: "cm1", Outcome: pb.Outcome_OUTCOME_NON_CONFORMANT}),
		seal("bright", &pb.BreachRaised{BreachId: "br1", CommitmentId: "cm1"}),
		seal("acme", &pb.AssessmentRecorded{AssessmentId: "as2", CommitmentId: "cm2", Outcome: pb.Outcome_OUTCOME_CONFORMANT}),
		make([]byte, envelope.MaxSize+1),
		seal("bright", &pb.SupplierRegistered{Name: "Bright Records"}),
	}
	var op envelope.Opener
	for i, raw := range raws {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			o, err := envelope.Open(raw)
			sameOpening(t, &op, raw, o, err)
		})
	}
}

// sameOpening fails t unless op opens raw as Open did (o, err).
func sameOpening(t *testing.T, op *envelope.Opener, raw []byte, o *envelope.Opened, err error) {
	t.Helper()
	got, gerr := op.Open(raw)
	if (err == nil) != (gerr == nil) || err != nil && err.Error() != gerr.Error() {
		t.Fatalf("Opener: %v, Open: %v", gerr, err)
	}
	if err != nil {
		return
	}
	if !proto.Equal(got.Event, o.Event) || !proto.Equal(got.Payload, o.Payload) {
		t.Fatalf("Opener opened %v %v, Open %v %v", got.Event, got.Payload, o.Event, o.Payload)
	}
	if string(got.Raw) != string(o.Raw) || string(got.Body) != string(o.Body) || string(got.Signature) != string(o.Signature) {
		t.Fatal("Opener's raw, body or signature differ from Open's")
	}
}

// TestSealedEnvelopesAreReadDirectly: what a Signer seals, with every
// field of the event set (and a negative time, a type past the known
// ones), is read without proto.Unmarshal, to the same event; an envelope
// with its fields out of order, or one repeated, is not, and still opens
// as proto.Unmarshal reads it.
func TestSealedEnvelopesAreReadDirectly(t *testing.T) {
	s := signer(t)
	raw, _, err := s.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Unix(-5, 0), Payload: &pb.SupplierRegistered{Name: "Acme Health Ltd"}})
	if err != nil {
		t.Fatal(err)
	}
	if !envelope.ReadsDirectly(raw) {
		t.Fatal("a sealed envelope is not read directly")
	}
	o, err := envelope.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := envelope.OpenByProto(raw)
	if err != nil || !proto.Equal(o.Event, ref.Event) || o.Event.OccurredAtUnixNano != -5e9 || o.Event.SupplierId != "acme-health" {
		t.Fatalf("read directly %v, through proto.Unmarshal %v (%v)", o.Event, ref.Event, err)
	}
	ev := &pb.Event{EventId: "ev_1", Type: pb.EventType(999), SupplierId: "s", OccurredAtUnixNano: 7, KeyId: "k", Payload: []byte{1}}
	body, _ := proto.Marshal(ev)
	env, _ := proto.Marshal(&pb.Envelope{Event: body, Signature: make([]byte, 64)})
	if !envelope.ReadsDirectly(env) {
		t.Fatal("an envelope of an event with every field set is not read directly")
	}
	// Signature first, then the event; and the event field twice.
	swapped := append(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), make([]byte, 64)), protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), body)...)
	twice := append(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("x")), env...)
	for _, b := range [][]byte{swapped, twice} {
		if envelope.ReadsDirectly(b) {
			t.Fatal("an envelope not as a Signer encodes it is read directly")
		}
		got, gerr := envelope.Open(b)
		want, werr := envelope.OpenByProto(b)
		if (gerr == nil) != (werr == nil) || gerr == nil && !proto.Equal(got.Event, want.Event) {
			t.Fatalf("Open %v (%v), proto.Unmarshal %v (%v)", got, gerr, want, werr)
		}
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
	var op envelope.Opener // one for every input: what it reuses must not leak between them
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := envelope.Open(b)
		sameOpening(t, &op, b, o, err)
		// Read directly or through proto.Unmarshal: the same outcome.
		ref, rerr := envelope.OpenByProto(b)
		if (err == nil) != (rerr == nil) || err != nil && err.Error() != rerr.Error() {
			t.Fatalf("Open: %v; through proto.Unmarshal: %v", err, rerr)
		}
		if err == nil && (!proto.Equal(o.Event, ref.Event) || !proto.Equal(o.Payload, ref.Payload) || string(o.Body) != string(ref.Body) || string(o.Signature) != string(ref.Signature)) {
			t.Fatalf("Open read %v %v; proto.Unmarshal %v %v", o.Event, o.Payload, ref.Event, ref.Payload)
		}
		if err != nil {
			return
		}
		if o.Event.EventId == "" || o.Event.KeyId == "" || o.Payload == nil {
			t.Fatalf("accepted an envelope without id, key or payload: %+v", o.Event)
		}
		_ = o.Verify(s.PublicKey())
	})
}

// TestVerifyAllAgreesWithVerify: in a batch mixing good signatures, a
// flipped signature bit, a flipped body bit, the wrong key and no key,
// VerifyAll marks exactly those Verify accepts, whatever their position.
func TestVerifyAllAgreesWithVerify(t *testing.T) {
	s, other := signer(t), signer(t)
	// 32 bytes that are no point of the curve: VerifyAll cannot expand
	// them, and must fail their signatures as Verify does.
	var notAPoint ed25519.PublicKey
	for b := range 256 {
		k := make(ed25519.PublicKey, ed25519.PublicKeySize)
		k[0] = byte(b)
		if _, err := voi.NewExpandedPublicKey(voi.PublicKey(k)); err != nil {
			notAPoint = k
			break
		}
	}
	if notAPoint == nil {
		t.Fatal("found no 32 bytes off the curve")
	}
	var os []*envelope.Opened
	var pubs []ed25519.PublicKey
	for i := range 40 {
		raw, _, err := s.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Unix(int64(i), 0), Payload: &pb.SupplierRegistered{Name: fmt.Sprint("Acme ", i)}})
		if err != nil {
			t.Fatal(err)
		}
		o, err := envelope.Open(raw)
		if err != nil {
			t.Fatal(err)
		}
		pub := s.PublicKey()
		switch i % 8 {
		case 3:
			o.Signature = append([]byte{}, o.Signature...)
			o.Signature[5] ^= 1
		case 5:
			o.Body = append([]byte{}, o.Body...)
			o.Body[len(o.Body)-1] ^= 1
		case 4:
			pub = notAPoint
		case 6:
			pub = other.PublicKey()
		case 7:
			pub = nil
		}
		os, pubs = append(os, o), append(pubs, pub)
	}
	os = append(os, nil)
	pubs = append(pubs, s.PublicKey())
	got := envelope.VerifyAll(os, pubs)
	good := 0
	for i := range os {
		want := os[i] != nil && os[i].Verify(pubs[i]) == nil
		if got[i] != want {
			t.Fatalf("entry %d: VerifyAll %v, Verify %v", i, got[i], want)
		}
		if want {
			good++
		}
	}
	if good != 15 {
		t.Fatalf("%d good signatures, want 15", good)
	}
	if all := envelope.VerifyAll(os[:1], pubs[:1]); !all[0] {
		t.Fatal("a batch of one good signature does not verify")
	}
}

// BenchmarkVerifyAll checks batches of signatures at once, at several
// batch sizes (the ledger checks each core's share of a batch, up to 2,048
// signatures, in one); compare with BenchmarkVerifyOneByOne.
func BenchmarkVerifyAll(b *testing.B) {
	for _, n := range []int{64, 128, 256, 512, 2048} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			os, pubs := sealedBatch(b, n)
			b.ResetTimer()
			for range b.N {
				for _, ok := range envelope.VerifyAll(os, pubs) {
					if !ok {
						b.Fatal("bad signature")
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}

func BenchmarkVerifyOneByOne(b *testing.B) {
	os, pubs := sealedBatch(b, 256)
	b.ResetTimer()
	for range b.N {
		for i, o := range os {
			if o.Verify(pubs[i]) != nil {
				b.Fatal("bad signature")
			}
		}
	}
	b.ReportMetric(float64(256*b.N)/b.Elapsed().Seconds(), "sigs/s")
}

func sealedBatch(b *testing.B, n int) ([]*envelope.Opened, []ed25519.PublicKey) {
	s := signer(b)
	var os []*envelope.Opened
	var pubs []ed25519.PublicKey
	for i := range n {
		raw, _, err := s.Seal(envelope.Draft{SupplierID: "acme-health", OccurredAt: time.Unix(int64(i), 0), Payload: &pb.SupplierRegistered{Name: fmt.Sprint("Acme ", i)}})
		if err != nil {
			b.Fatal(err)
		}
		o, err := envelope.Open(raw)
		if err != nil {
			b.Fatal(err)
		}
		os, pubs = append(os, o), append(pubs, s.PublicKey())
	}
	return os, pubs
}
