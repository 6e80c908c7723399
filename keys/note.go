package keys

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// NoteSigner returns a signed-note signer (C2SP signed-note, Ed25519) named
// name for key, and the verifier key string an auditor uses to check notes
// it signs (the "name+hash+key" form golang.org/x/mod/sumdb/note reads).
func NoteSigner(name string, key ed25519.PrivateKey) (note.Signer, string, error) {
	pub := append([]byte{1}, key.Public().(ed25519.PublicKey)...) // 1: the Ed25519 algorithm
	h := sha256.Sum256(append([]byte(name+"\n"), pub...))
	hash := binary.BigEndian.Uint32(h[:4])
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, hash, base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("keys: note signer %q: %w", name, err)
	}
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", fmt.Errorf("keys: note verifier %q: %w", name, err)
	}
	return s, vkey, nil
}
