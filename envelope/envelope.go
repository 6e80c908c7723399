// Package envelope seals events into signed envelopes and opens them again.
//
// The signed bytes are the serialized accountability.v1.Event exactly as the
// emitting service produced them; they are carried as bytes inside the
// Envelope and never re-encoded, because protobuf encoding is not canonical.
// The signature is Ed25519 over Label followed by those bytes.
package envelope

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// Label is the domain-separation prefix of every event signature. A new
// signing format gets a new label.
const Label = "sal/event/v1\n"

// MaxSize is the largest envelope accepted, in bytes. Accountability events
// are small; anything larger is refused rather than stored.
const MaxSize = 64 << 10

// Sentinel errors that callers (the ledger's quarantine) branch on.
var (
	ErrMalformed    = errors.New("envelope: malformed")
	ErrTooLarge     = errors.New("envelope: too large")
	ErrUnknownType  = errors.New("envelope: unknown event type")
	ErrBadSignature = errors.New("envelope: bad signature")
)

// KeyID names an Ed25519 public key: the hex of the first 16 bytes of its
// SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// NewEventID returns a fresh random event id.
func NewEventID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("envelope: no randomness: %v", err)) // crypto/rand never fails on Linux
	}
	return "ev_" + hex.EncodeToString(b[:])
}

// Signer signs events with one Ed25519 key.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, keyID: KeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID is the id of the signer's public key.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKey is the signer's public key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Draft is an event before it is signed.
type Draft struct {
	EventID    string // empty: a fresh id is drawn
	SupplierID string
	OccurredAt time.Time
	Payload    proto.Message
}

// Seal builds the Event for d, signs its serialized bytes and returns the
// serialized Envelope together with the event.
func (s *Signer) Seal(d Draft) ([]byte, *pb.Event, error) {
	typ, err := TypeOf(d.Payload)
	if err != nil {
		return nil, nil, err
	}
	payload, err := proto.Marshal(d.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: marshal payload: %w", err)
	}
	id := d.EventID
	if id == "" {
		id = NewEventID()
	}
	ev := &pb.Event{
		EventId:            id,
		Type:               typ,
		SupplierId:         d.SupplierID,
		OccurredAtUnixNano: d.OccurredAt.UnixNano(),
		KeyId:              s.keyID,
		Payload:            payload,
	}
	body, err := proto.Marshal(ev)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: marshal event %s: %w", id, err)
	}
	env := &pb.Envelope{Event: body, Signature: ed25519.Sign(s.key, signedMessage(body))}
	raw, err := proto.Marshal(env)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: marshal envelope %s: %w", id, err)
	}
	return raw, ev, nil
}

func signedMessage(body []byte) []byte {
	msg := make([]byte, 0, len(Label)+len(body))
	msg = append(msg, Label...)
	return append(msg, body...)
}

// Opened is a decoded envelope whose signature has not yet been checked.
type Opened struct {
	Raw       []byte // the envelope bytes as received
	Body      []byte // the signed Event bytes
	Signature []byte
	Event     *pb.Event
	Payload   proto.Message
}

// Open decodes raw into its event and typed payload. It checks shape, not
// signature: call Verify with the key the registry names.
func Open(raw []byte) (*Opened, error) { return openNew(raw, true) }

// openNew is open into fresh messages.
func openNew(raw []byte, direct bool) (*Opened, error) {
	var env pb.Envelope
	ev := &pb.Event{}
	o := &Opened{}
	if err := open(raw, &env, ev, o, DecodePayload, direct); err != nil {
		return nil, err
	}
	return o, nil
}

// open is Open into messages the caller provides: env and ev are
// overwritten, o is filled, decode decodes the payload. With direct set,
// an envelope and event encoded as a Signer encodes them are read by
// readEnvelope and readEvent instead of proto.Unmarshal (the same fields,
// without copying what the caller's raw already holds); anything else goes
// through proto.Unmarshal, which gives the errors.
func open(raw []byte, env *pb.Envelope, ev *pb.Event, o *Opened, decode func(pb.EventType, []byte) (proto.Message, error), direct bool) error {
	if len(raw) > MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxSize)
	}
	body, sig, ok := readEnvelope(raw)
	if !direct || !ok {
		if err := proto.Unmarshal(raw, env); err != nil {
			return fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
		}
		body, sig = env.Event, env.Signature
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(sig), ed25519.SignatureSize)
	}
	if !direct || !readEvent(body, ev) {
		if err := proto.Unmarshal(body, ev); err != nil {
			return fmt.Errorf("%w: event: %v", ErrMalformed, err)
		}
	}
	if ev.EventId == "" || len(ev.EventId) > 128 {
		return fmt.Errorf("%w: event id missing or longer than 128 bytes", ErrMalformed)
	}
	if ev.KeyId == "" {
		return fmt.Errorf("%w: event %s names no signing key", ErrMalformed, ev.EventId)
	}
	payload, err := decode(ev.Type, ev.Payload)
	if err != nil {
		return fmt.Errorf("event %s: %w", ev.EventId, err)
	}
	*o = Opened{Raw: raw, Body: body, Signature: sig, Event: ev, Payload: payload}
	return nil
}

// readEnvelope reads an Envelope encoded in field order, each field at
// most once and no other: its event and signature, slices of raw. ok is
// false for any other encoding.
func readEnvelope(raw []byte) (event, sig []byte, ok bool) {
	last := protowire.Number(0)
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 || num <= last || num > 2 || typ != protowire.BytesType {
			return nil, nil, false
		}
		raw = raw[n:]
		v, n := protowire.ConsumeBytes(raw)
		if n < 0 {
			return nil, nil, false
		}
		raw = raw[n:]
		if num == 1 {
			event = v
		} else {
			sig = v
		}
		last = num
	}
	return event, sig, true
}

// readEvent reads into ev an Event encoded in field order, each field at
// most once and no other, its strings valid UTF-8 (what proto.Unmarshal
// requires of them): the same message proto.Unmarshal gives, its payload
// a slice of b. It reports false, ev then in no defined state, for any
// other encoding.
func readEvent(b []byte, ev *pb.Event) bool {
	ev.Reset()
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num <= last || num > 6 {
			return false
		}
		b, last = b[n:], num
		switch num {
		case 2, 4:
			if typ != protowire.VarintType {
				return false
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if num == 2 {
				ev.Type = pb.EventType(int32(v))
			} else {
				ev.OccurredAtUnixNano = int64(v)
			}
		default:
			if typ != protowire.BytesType {
				return false
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if num == 6 {
				ev.Payload = v
				continue
			}
			if !utf8.Valid(v) {
				return false
			}
			switch num {
			case 1:
				ev.EventId = string(v)
			case 3:
				ev.SupplierId = string(v)
			case 5:
				ev.KeyId = string(v)
			}
		}
	}
	return true
}

// Opener opens envelope after envelope into the same messages, for a
// replay that applies each event and lets it go: it allocates only what
// the decoded strings and bytes take. The next call overwrites what Open
// returned: keep values taken from it (a string is its own copy), never
// its messages. An Opener is not safe for concurrent use.
type Opener struct {
	env      pb.Envelope
	ev       pb.Event
	o        Opened
	payloads map[pb.EventType]proto.Message
}

// Open is the package's Open, reusing the Opener's messages.
func (op *Opener) Open(raw []byte) (*Opened, error) {
	if err := open(raw, &op.env, &op.ev, &op.o, op.decode, true); err != nil {
		return nil, err
	}
	return &op.o, nil
}

func (op *Opener) decode(t pb.EventType, b []byte) (proto.Message, error) {
	m, ok := op.payloads[t]
	if !ok {
		// The first of its type: DecodePayload knows the types (and
		// refuses the rest); later ones reuse its message.
		first, err := DecodePayload(t, b)
		if err != nil {
			return nil, err
		}
		if op.payloads == nil {
			op.payloads = map[pb.EventType]proto.Message{}
		}
		op.payloads[t] = first
		return first, nil
	}
	return m, unmarshalPayload(t, b, m) // Unmarshal resets m first
}

// verifyOptions is the one rule every signature is judged by, alone or in
// a batch: ZIP-215 (RFC 8032's cofactored equation, with its encoding
// rules relaxed as ZIP 215 fixes them). It accepts every signature Go's
// crypto/ed25519 makes or accepts; unlike the standard library's
// cofactorless check, it gives the same answer for a signature whether it
// is checked alone or in a batch, so ingest, replay and audit can never
// disagree about one.
var verifyOptions = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

// Verify checks the signature against pub.
func (o *Opened) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !voi.VerifyWithOptions(voi.PublicKey(pub), signedMessage(o.Body), o.Signature, verifyOptions) {
		return fmt.Errorf("%w: event %s, key %s", ErrBadSignature, o.Event.EventId, o.Event.KeyId)
	}
	return nil
}

// VerifyAll checks the signatures of os, each against the key at the same
// index of pubs (a nil key fails), by batch verification: for a batch of
// valid signatures about twice as fast as one by one (BenchmarkVerifyAll,
// BenchmarkVerifyOneByOne). It returns which verify, by the same rule as
// Verify.
func VerifyAll(os []*Opened, pubs []ed25519.PublicKey) []bool {
	ok := make([]bool, len(os))
	bv := voi.NewBatchVerifierWithCapacity(len(os))
	idx := make([]int, 0, len(os))
	// A batch holds many signatures of few keys (each service signs with
	// its own): each key is decompressed once, not once per signature
	// (a quarter of a batch's time: BenchmarkVerifyAll). A key that does not decompress goes in
	// as it is, and its signatures fail as they would alone.
	expanded := map[string]*voi.ExpandedPublicKey{}
	for i, o := range os {
		if o == nil || len(pubs[i]) != ed25519.PublicKeySize {
			continue
		}
		x, seen := expanded[string(pubs[i])]
		if !seen {
			x, _ = voi.NewExpandedPublicKey(voi.PublicKey(pubs[i]))
			expanded[string(pubs[i])] = x
		}
		if x != nil {
			bv.AddExpandedWithOptions(x, signedMessage(o.Body), o.Signature, verifyOptions)
		} else {
			bv.AddWithOptions(voi.PublicKey(pubs[i]), signedMessage(o.Body), o.Signature, verifyOptions)
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return ok
	}
	_, valid := bv.Verify(nil)
	for j, i := range idx {
		ok[i] = valid[j]
	}
	return ok
}

// OccurredAt is the event's own claim of when it happened.
func (o *Opened) OccurredAt() time.Time { return time.Unix(0, o.Event.OccurredAtUnixNano).UTC() }

// SignBody signs already-serialized Event bytes. Seal is the normal way to
// sign; this exists for tools and tests that must produce exact bytes.
func (s *Signer) SignBody(body []byte) []byte {
	return ed25519.Sign(s.key, signedMessage(body))
}
