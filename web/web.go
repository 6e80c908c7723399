// Package web serves the pages people use every week: sign-in, the
// suppliers list, each supplier's scorecard (with its history at any past
// moment for auditors), and the audit pages. Pages are server-rendered
// html/template with plain CSS; every write goes through the same JSON API
// handlers as curl does, so the API stays the source of truth.
//
// Sign-in takes the same bearer tokens as the API and sets a session
// cookie (HttpOnly, Secure, SameSite=Strict); every form carries a
// per-session CSRF token.
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/keys"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// store is what the pages read from the ledger.
type store interface {
	Card(supplierID string) (*scorecard.Card, error)
	Suppliers() ([]string, error)
	Head() (uint64, [32]byte, error)
	Entries(from uint64, limit int) ([]ledger.Entry, error)
	EntriesAt(seqs []uint64) ([]ledger.Entry, error)
	SupplierEntries(supplierID string, before uint64, limit int) ([]ledger.Entry, error)
	SupplierSeqs(supplierID string, size uint64) ([]uint64, error)
	SizeAt(t time.Time) (uint64, error)
	Quarantine(from uint64, limit int) ([]ledger.QuarantineRecord, error)
	Registry() *keys.Registry
}

var _ store = (*ledger.Ledger)(nil)

// authenticator checks tokens at sign-in.
type authenticator interface {
	Authenticate(token string) (auth.Principal, bool)
}

// Server serves the pages.
type Server struct {
	store  store
	tokens authenticator
	api    http.Handler // the /v1 API mux, without the bearer-token wrapper
	engine *rules.Engine
	now    func() time.Time
	tmpl   map[string]*template.Template

	mu       sync.Mutex
	sessions map[string]*session

	pageMu    sync.Mutex
	pageCache map[string]template.HTML

	trendMu sync.Mutex // guards trends and cards
	trends  map[string]trendCache
	cards   map[string]cachedCard
}

type session struct {
	p auth.Principal
	// token is the credential the user signed in with: the pages' writes
	// carry it, so a service in another process authenticates them itself.
	token   string
	csrf    string
	expires time.Time
	flash   string
	isError bool
}

// SessionCookie is the name of the session cookie.
const SessionCookie = "sal_session"

// SessionLifetime is how long a sign-in lasts.
const SessionLifetime = 8 * time.Hour

// New returns the pages server. api is the inner /v1 handler (the routes,
// not wrapped by bearer-token authentication): forms call it with the
// signed-in principal.
func New(s store, tokens authenticator, api http.Handler, engine *rules.Engine, now func() time.Time) (*Server, error) {
	srv := &Server{store: s, tokens: tokens, api: api, engine: engine, now: now, sessions: map[string]*session{}, trends: map[string]trendCache{}, cards: map[string]cachedCard{}, pageCache: map[string]template.HTML{}}
	if err := srv.parse(); err != nil {
		return nil, err
	}
	return srv, nil
}

// Register adds the pages to mux.
func (s *Server) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.signin)
	mux.HandleFunc("POST /signout", s.page(s.signout))
	mux.HandleFunc("GET /suppliers", s.page(s.suppliers))
	mux.HandleFunc("GET /suppliers/{supplier}", s.page(s.scorecardPage))
	mux.HandleFunc("GET /suppliers/{supplier}/trend.svg", s.page(s.trendSVG))
	mux.HandleFunc("GET /suppliers/{supplier}/actions/{action}", s.page(s.actionForm))
	mux.HandleFunc("POST /suppliers/{supplier}/actions/{action}", s.page(s.action))
	mux.HandleFunc("GET /audit", s.page(s.auditPage))
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) newSession(p auth.Principal, token string) (string, *session) {
	id := randomToken()
	se := &session{p: p, token: token, csrf: randomToken(), expires: s.now().Add(SessionLifetime)}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sweep expired sessions now and then.
	for k, v := range s.sessions {
		if time.Now().After(v.expires.Add(time.Hour)) {
			delete(s.sessions, k)
		}
	}
	s.sessions[id] = se
	return id, se
}

func (s *Server) sessionOf(r *http.Request) (string, *session) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.sessions[c.Value]
	if !ok || time.Now().After(se.expires) && s.now().After(se.expires) {
		return "", nil
	}
	return c.Value, se
}

type ctxKey struct{}

// page wraps a handler that needs a signed-in user; POSTs must carry the
// session's CSRF token.
func (s *Server) page(fn func(w http.ResponseWriter, r *http.Request, se *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		_, se := s.sessionOf(r)
		if se == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.errorPage(w, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
			if err := r.ParseForm(); err != nil {
				code, msg := formError(err)
				s.errorPage(w, code, msg)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(se.csrf)) != 1 {
				s.errorPage(w, http.StatusForbidden, "This form has expired or did not come from this site (CSRF check failed). Go back, reload the page and try again.")
				return
			}
		}
		ctx := context.WithValue(auth.WithPrincipal(r.Context(), se.p), ctxKey{}, se)
		fn(w, r.WithContext(ctx), se)
	}
}

// MaxForm is the largest form body a page accepts: the API's bound on a
// JSON body (the forms' fields are shorter still). Without it, net/http
// would read up to 10 MB of form.
const MaxForm = 64 << 10

// formError is the status and message for a form that could not be read.
func formError(err error) (int, string) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, "The form is too large to send."
	}
	return http.StatusBadRequest, "The form could not be read."
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	_, se := s.sessionOf(r)
	switch {
	case se == nil:
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
	case se.p.Role == auth.Supplier:
		http.Redirect(w, r, "/suppliers/"+se.p.SupplierID, http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/suppliers", http.StatusSeeOther)
	}
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	s.render(w, http.StatusOK, "signin", map[string]any{"Next": r.URL.Query().Get("next")})
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
	if err := r.ParseForm(); err != nil {
		code, msg := formError(err)
		s.render(w, code, "signin", map[string]any{"Error": msg})
		return
	}
	p, ok := s.tokens.Authenticate(r.PostFormValue("token"))
	if !ok {
		s.render(w, http.StatusUnauthorized, "signin", map[string]any{"Error": "That access token is not recognised. Check it and try again.", "Next": r.PostFormValue("next")})
		return
	}
	id, _ := s.newSession(p, r.PostFormValue("token"))
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: int(SessionLifetime.Seconds())})
	next := r.PostFormValue("next")
	if next == "" || next[0] != '/' || len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, se *session) {
	id, _ := s.sessionOf(r)
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (s *Server) setFlash(se *session, msg string, isError bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se.flash, se.isError = msg, isError
}

func (s *Server) takeFlash(se *session) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, e := se.flash, se.isError
	se.flash, se.isError = "", false
	return m, e
}
