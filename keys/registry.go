package keys

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/supplier-accountability/sal/envelope"
	pb "github.com/supplier-accountability/sal/proto/accountability/v1"
)

// Errors the ledger records as quarantine reasons.
var (
	ErrUnknownKey        = errors.New("keys: unknown signing key")
	ErrRetiredKey        = errors.New("keys: signing key retired")
	ErrOutsideAuthority  = errors.New("keys: key used outside its authority")
	ErrBadRegistryChange = errors.New("keys: invalid registry change")
)

// Authority is what one key may do.
type Authority struct {
	KeyID        string            `json:"key_id"`
	PublicKey    ed25519.PublicKey `json:"public_key"`
	Holder       string            `json:"holder"`
	EventTypes   []string          `json:"event_types"`
	SupplierIDs  []string          `json:"supplier_ids,omitempty"` // empty: any supplier
	AuthorizedAt uint64            `json:"authorized_at_seq"`
	RetiredAt    uint64            `json:"retired_at_seq,omitempty"`
	RetireReason string            `json:"retire_reason,omitempty"`
}

func (a *Authority) allows(ev *pb.Event) bool {
	if !slices.Contains(a.EventTypes, ev.Type.String()) {
		return false
	}
	return len(a.SupplierIDs) == 0 || slices.Contains(a.SupplierIDs, ev.SupplierId)
}

// Registry is the set of keys in force at one point of the log.
type Registry struct {
	root   ed25519.PublicKey
	rootID string
	keys   map[string]*Authority
}

// NewRegistry returns an empty registry anchored at root.
func NewRegistry(root ed25519.PublicKey) *Registry {
	return &Registry{root: root, rootID: envelope.KeyID(root), keys: map[string]*Authority{}}
}

// RootKeyID is the id of the trust anchor.
func (r *Registry) RootKeyID() string { return r.rootID }

// Clone returns an independent copy, so a batch can be checked against a
// registry that is thrown away if the batch does not commit.
func (r *Registry) Clone() *Registry {
	c := &Registry{root: r.root, rootID: r.rootID, keys: make(map[string]*Authority, len(r.keys))}
	for id, a := range r.keys {
		cp := *a
		c.keys[id] = &cp
	}
	return c
}

// Lookup returns the authority of a key.
func (r *Registry) Lookup(keyID string) (Authority, bool) {
	a, ok := r.keys[keyID]
	if !ok {
		return Authority{}, false
	}
	return *a, true
}

// Keys lists every key ever authorized, retired ones included, by key id.
func (r *Registry) Keys() []Authority {
	out := make([]Authority, 0, len(r.keys))
	for _, a := range r.keys {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Authority) int { return cmpString(a.KeyID, b.KeyID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isRegistryEvent(t pb.EventType) bool {
	return t == pb.EventType_EVENT_TYPE_KEY_AUTHORIZED || t == pb.EventType_EVENT_TYPE_KEY_RETIRED
}

// Check verifies o's signature and that its key may emit it. The error wraps
// one of ErrUnknownKey, ErrRetiredKey, ErrOutsideAuthority,
// ErrBadRegistryChange or envelope.ErrBadSignature.
func (r *Registry) Check(o *envelope.Opened) error {
	pub, err := r.KeyFor(o)
	if err != nil {
		return err
	}
	return o.Verify(pub)
}

// KeyFor returns the public key that must have signed o, after checking
// that the key exists, is not retired and may emit o. It does not check the
// signature of an event it accepts (callers verify many in parallel); Check
// does both. On its refusal paths it checks the signature first, so that a
// forged event is reported as forged (the key is returned, and the caller's
// verification fails) rather than as whatever the forgery claims.
func (r *Registry) KeyFor(o *envelope.Opened) (ed25519.PublicKey, error) {
	ev := o.Event
	if ev.KeyId == r.rootID {
		if o.Verify(r.root) != nil {
			return r.root, nil // the caller's signature check reports it
		}
		if !isRegistryEvent(ev.Type) || ev.SupplierId != "" {
			return nil, fmt.Errorf("%w: root key may only change the registry, not emit %s", ErrOutsideAuthority, ev.Type)
		}
		return r.root, r.checkChange(o)
	}
	a, ok := r.keys[ev.KeyId]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, ev.KeyId)
	}
	if a.RetiredAt != 0 {
		if o.Verify(a.PublicKey) != nil {
			return a.PublicKey, nil
		}
		return nil, fmt.Errorf("%w: %s retired at sequence %d", ErrRetiredKey, ev.KeyId, a.RetiredAt)
	}
	if !a.allows(ev) {
		if o.Verify(a.PublicKey) != nil {
			return a.PublicKey, nil
		}
		return nil, fmt.Errorf("%w: %s (%s) may not emit %s for supplier %q", ErrOutsideAuthority, ev.KeyId, a.Holder, ev.Type, ev.SupplierId)
	}
	return a.PublicKey, nil
}

func (r *Registry) checkChange(o *envelope.Opened) error {
	switch p := o.Payload.(type) {
	case *pb.KeyAuthorized:
		if len(p.PublicKey) != ed25519.PublicKeySize || envelope.KeyID(p.PublicKey) != p.KeyId {
			return fmt.Errorf("%w: key id %s does not name the public key given", ErrBadRegistryChange, p.KeyId)
		}
		if p.KeyId == r.rootID {
			return fmt.Errorf("%w: the root key cannot be delegated", ErrBadRegistryChange)
		}
		if len(p.EventTypes) == 0 {
			return fmt.Errorf("%w: key %s authorized for no event types", ErrBadRegistryChange, p.KeyId)
		}
		for _, t := range p.EventTypes {
			if t == pb.EventType_EVENT_TYPE_UNSPECIFIED || isRegistryEvent(t) || pb.EventType_name[int32(t)] == "" {
				return fmt.Errorf("%w: key %s cannot be authorized for %s", ErrBadRegistryChange, p.KeyId, t)
			}
		}
		if old, ok := r.keys[p.KeyId]; ok {
			if old.RetiredAt != 0 {
				return fmt.Errorf("%w: key %s was retired and cannot return", ErrBadRegistryChange, p.KeyId)
			}
			if !bytes.Equal(old.PublicKey, p.PublicKey) {
				return fmt.Errorf("%w: key %s already names another public key", ErrBadRegistryChange, p.KeyId)
			}
		}
	case *pb.KeyRetired:
		a, ok := r.keys[p.KeyId]
		if !ok {
			return fmt.Errorf("%w: cannot retire unknown key %s", ErrBadRegistryChange, p.KeyId)
		}
		if a.RetiredAt != 0 {
			return fmt.Errorf("%w: key %s already retired", ErrBadRegistryChange, p.KeyId)
		}
	}
	return nil
}

// Apply records the effect of an appended event at sequence seq. Events that
// do not change the registry are ignored. Call it only after Check passed.
func (r *Registry) Apply(o *envelope.Opened, seq uint64) {
	switch p := o.Payload.(type) {
	case *pb.KeyAuthorized:
		a := &Authority{
			KeyID:        p.KeyId,
			PublicKey:    slices.Clone(p.PublicKey),
			Holder:       p.Holder,
			SupplierIDs:  slices.Clone(p.SupplierIds),
			AuthorizedAt: seq,
		}
		for _, t := range p.EventTypes {
			a.EventTypes = append(a.EventTypes, t.String())
		}
		slices.Sort(a.EventTypes)
		slices.Sort(a.SupplierIDs)
		r.keys[p.KeyId] = a
	case *pb.KeyRetired:
		if a, ok := r.keys[p.KeyId]; ok {
			a.RetiredAt = seq
			a.RetireReason = p.Reason
		}
	}
}

// Restore puts back an authority saved from Keys, as when a ledger reopens.
func (r *Registry) Restore(a Authority) {
	cp := a
	r.keys[a.KeyID] = &cp
}

// Root is the trust anchor's public key.
func (r *Registry) Root() ed25519.PublicKey { return r.root }
