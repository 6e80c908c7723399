// Package auth maps bearer tokens to principals: a commercial user, an
// auditor, or a supplier (bound to one supplier id).
//
// Tokens are random and shown once, when issued; the token file keeps only
// their SHA-256, so a copy of the data directory does not leak credentials.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Role is what a principal may do; see the table in README.md.
type Role string

// The roles.
const (
	Commercial Role = "commercial"
	Supplier   Role = "supplier"
	Auditor    Role = "auditor"
)

// Principal is an authenticated caller.
type Principal struct {
	Role       Role   `json:"role"`
	SupplierID string `json:"supplier_id,omitempty"` // set only for Supplier
	Name       string `json:"name"`                  // who, for the record (e.g. "j.smith")
}

// String is how the principal is recorded in events: "commercial:j.smith",
// "supplier:acme-health".
func (p Principal) String() string {
	if p.Role == Supplier {
		return "supplier:" + p.SupplierID
	}
	return string(p.Role) + ":" + p.Name
}

// SupplierIDPattern is the shape of a supplier id: it appears in NATS
// subjects and URLs, so it is kept to lower-case letters, digits and dashes.
var SupplierIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// ParseRole reads "commercial", "auditor" or "supplier:<id>".
func ParseRole(s string) (Role, string, error) {
	switch {
	case s == string(Commercial):
		return Commercial, "", nil
	case s == string(Auditor):
		return Auditor, "", nil
	case strings.HasPrefix(s, "supplier:"):
		id := strings.TrimPrefix(s, "supplier:")
		if !SupplierIDPattern.MatchString(id) {
			return "", "", fmt.Errorf("auth: supplier id %q must be 2-63 lower-case letters, digits or dashes", id)
		}
		return Supplier, id, nil
	}
	return "", "", fmt.Errorf("auth: role %q is not commercial, auditor or supplier:<id>", s)
}

type storedToken struct {
	Hash      string    `json:"sha256"`
	Principal Principal `json:"principal"`
	IssuedAt  time.Time `json:"issued_at"`
}

// Store holds the hashed tokens, backed by a JSON file.
type Store struct {
	path string
	mu   sync.RWMutex
	toks []storedToken

	// The file is re-read when it changes (sal token writes it while the
	// system runs), checked at most once a second.
	checkedAt time.Time
	modTime   time.Time
}

// OpenStore reads the token file at path; a missing file is an empty store.
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: read tokens: %w", err)
	}
	if err := json.Unmarshal(b, &s.toks); err != nil {
		return nil, fmt.Errorf("auth: tokens file %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		s.modTime = fi.ModTime()
	}
	return s, nil
}

// refresh re-reads the token file if it changed since it was last read,
// looking at most once a second unless now is set. A file that cannot be
// read or parsed leaves the tokens as they were.
func (s *Store) refresh(now bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now && time.Since(s.checkedAt) < time.Second {
		return
	}
	s.checkedAt = time.Now()
	fi, err := os.Stat(s.path)
	if err != nil || fi.ModTime().Equal(s.modTime) {
		return
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return
	}
	var toks []storedToken
	if json.Unmarshal(b, &toks) != nil {
		return
	}
	s.toks, s.modTime = toks, fi.ModTime()
}

// Len is the number of tokens issued.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.toks)
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Issue creates a token for p, saves its hash, and returns the token. The
// token cannot be recovered later.
func (s *Store) Issue(p Principal) (string, error) {
	if p.Role == Supplier && !SupplierIDPattern.MatchString(p.SupplierID) {
		return "", fmt.Errorf("auth: supplier id %q is not valid", p.SupplierID)
	}
	if p.Name == "" {
		return "", errors.New("auth: a token needs a name for the record")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	tok := "sal_" + base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	next := append(append([]storedToken{}, s.toks...), storedToken{Hash: hashToken(tok), Principal: p, IssuedAt: time.Now().UTC()})
	if err := writeFileAtomic(s.path, next); err != nil {
		return "", err
	}
	s.toks = next
	if fi, err := os.Stat(s.path); err == nil {
		s.modTime = fi.ModTime()
	}
	return tok, nil
}

func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: encode tokens: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("auth: write tokens: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("auth: write tokens: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("auth: sync tokens: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("auth: close tokens: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("auth: replace tokens: %w", err)
	}
	return nil
}

// Authenticate returns the principal a token belongs to.
func (s *Store) Authenticate(tok string) (Principal, bool) {
	if tok == "" {
		return Principal{}, false
	}
	s.refresh(false)
	h := []byte(hashToken(tok))
	if p, ok := s.lookup(h); ok {
		return p, true
	}
	// A token issued a moment ago, by `sal token` or by another process
	// sharing the file, works at once: on a miss, look at the file again.
	s.refresh(true)
	return s.lookup(h)
}

func (s *Store) lookup(h []byte) (Principal, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.toks {
		if subtle.ConstantTimeCompare(h, []byte(t.Hash)) == 1 {
			return t.Principal, true
		}
	}
	return Principal{}, false
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal the request was authenticated as.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Require wraps next so that it runs only for a request carrying a valid
// bearer token; any other gets 401 with a one-line JSON reason.
func (s *Store) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, found := strings.CutPrefix(h, "Bearer ")
		if !found || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sal"`)
			writeErr(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		p, ok := s.Authenticate(strings.TrimSpace(tok))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sal", error="invalid_token"`)
			writeErr(w, http.StatusUnauthorized, "unknown or revoked token")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
