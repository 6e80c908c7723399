// Package keys owns signing keys on disk and the key registry: which key may
// emit which event types, for which suppliers.
//
// The registry is itself kept in the ledger. Its trust anchor is one root
// key: only the root may sign KeyAuthorized and KeyRetired events, and every
// other key's authority comes from such an event earlier in the log. An event
// therefore verifies against the keys in force at its place in the log, and
// replaying the log rebuilds the registry exactly.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreate reads the Ed25519 private key kept at path, creating it (with
// 0600 permissions, in a 0700 directory) when it does not exist. The file
// holds the hex-encoded 32-byte seed and a newline. A key file readable by
// group or others is refused.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = Load(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("keys: create directory for %s: %w", path, err)
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("keys: generate %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("keys: create %s: %w", path, err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key.Seed()) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("keys: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("keys: close %s: %w", path, err)
	}
	return key, true, nil
}

// Load reads an existing key file.
func Load(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keys: %s is readable by others (mode %v); run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keys: %s does not hold a hex Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// WritePublic writes a public key, hex-encoded with a newline, to path:
// the registry root's public half, for the processes that verify events
// but never authorize keys.
func WritePublic(path string, pub ed25519.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keys: create directory for %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(pub)+"\n"), 0o644); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	return nil
}

// LoadPublic reads a public key file written by WritePublic.
func LoadPublic(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	pub, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("keys: %s does not hold a hex Ed25519 public key", path)
	}
	return ed25519.PublicKey(pub), nil
}
