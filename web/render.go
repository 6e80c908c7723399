package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/standards"
)

var pages = []string{"signin", "suppliers", "scorecard", "audit", "error", "action"}

func (s *Server) parse() error {
	funcs := template.FuncMap{
		"ratingClass": func(label string) string {
			return "rating-" + strings.ToLower(strings.ReplaceAll(label, " ", "-"))
		},
		"statusLabel": func(st string) string { return strings.ReplaceAll(st, "_", " ") },
		"outcomeLabel": func(o string) string {
			return strings.ReplaceAll(o, "_", " ")
		},
		"standardName": func(id string) string {
			if st, ok := standards.Lookup(id); ok {
				return st.Name
			}
			return id
		},
		"short": func(id string) string {
			if len(id) > 14 {
				return id[:14] + "…"
			}
			return id
		},
		"pct":          func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"isSupplier":   func(p auth.Principal) bool { return p.Role == auth.Supplier },
		"isCommercial": func(p auth.Principal) bool { return p.Role == auth.Commercial },
		"isAuditor":    func(p auth.Principal) bool { return p.Role == auth.Auditor },
		"canAudit":     func(p auth.Principal) bool { return p.Role == auth.Auditor || p.Role == auth.Commercial },
		"time": func(t time.Time) string {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"query": func(kv ...string) template.URL {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					v.Set(kv[i], kv[i+1])
				}
			}
			return template.URL("?" + v.Encode())
		},
	}
	s.tmpl = map[string]*template.Template{}
	for _, p := range pages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("web: template %s: %w", p, err)
		}
		s.tmpl[p] = t
	}
	return nil
}

// render executes a page into a buffer first, so a template error gives a
// clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if _, ok := data["Title"]; !ok {
		data["Title"] = map[string]string{"signin": "Sign in", "suppliers": "Suppliers", "scorecard": "Scorecard", "audit": "Audit", "error": "Problem"}[page]
	}
	var buf bytes.Buffer
	if err := s.tmpl[page].Execute(&buf, data); err != nil {
		http.Error(w, "page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, "error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// renderCached renders a page whose content depends only on key (which
// must name everything the content shows, the session's CSRF token
// included): the content is kept and reused, and only the layout (flash
// message, sign-out form) is drawn again.
func (s *Server) renderCached(w http.ResponseWriter, page, key string, data map[string]any) {
	s.pageMu.Lock()
	html, ok := s.pageCache[key]
	s.pageMu.Unlock()
	if !ok {
		var buf bytes.Buffer
		if err := s.tmpl[page].ExecuteTemplate(&buf, "content", data); err != nil {
			http.Error(w, "page could not be rendered: "+err.Error(), http.StatusInternalServerError)
			return
		}
		html = template.HTML(buf.String())
		s.pageMu.Lock()
		if len(s.pageCache) >= 256 {
			clear(s.pageCache)
		}
		s.pageCache[key] = html
		s.pageMu.Unlock()
	}
	data["ContentHTML"] = html
	s.render(w, http.StatusOK, page, data)
}
