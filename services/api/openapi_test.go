package api

import (
	"bufio"
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// documentedRoutes is every route of the HTTP API, as "METHOD /path" with
// the path parameters named as in the Go patterns. Add a route here and to
// openapi.yaml when registering it.
var documentedRoutes = []string{
	"POST /v1/suppliers",
	"GET /v1/suppliers",
	"POST /v1/suppliers/{supplier}/commitments",
	"POST /v1/suppliers/{supplier}/commitments/{commitment}/withdrawal",
	"POST /v1/suppliers/{supplier}/commitments/{commitment}/assessments",
	"POST /v1/suppliers/{supplier}/assessments/{assessment}/disputes",
	"POST /v1/suppliers/{supplier}/disputes/{dispute}/resolution",
	"POST /v1/suppliers/{supplier}/breaches/{breach}/plans",
	"POST /v1/suppliers/{supplier}/reviews/{review}/closure",
	"GET /v1/suppliers/{supplier}/scorecard",
	"GET /v1/standards",
	"GET /v1/rules",
	"POST /v1/enforcement/evaluate",
	"GET /v1/audit/events",
	"GET /v1/audit/quarantine",
	"GET /v1/audit/keys",
	"POST /v1/audit/verify",
	"GET /v1/audit/checkpoint",
	"GET /v1/audit/proofs/inclusion",
	"GET /v1/audit/proofs/consistency",
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	openAPIRoute,
}

// openAPIRoute serves this document (ServeOpenAPI). It is documented
// before it is registered, so its absence from the source is tolerated.
const openAPIRoute = "GET /openapi.yaml"

// yamlOperations scans the paths section of an OpenAPI document written
// with two-space indentation: a path key at indent 2, its methods at
// indent 4. It returns "METHOD /path" for every operation.
func yamlOperations(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	pathKey := regexp.MustCompile(`^  (/[^:\s]*):\s*$`)
	methodKey := regexp.MustCompile(`^    (get|put|post|delete|options|head|patch|trace):\s*$`)
	ops := map[string]bool{}
	inPaths, path := false, ""
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") { // a top-level key
			inPaths, path = line == "paths:", ""
			continue
		}
		if !inPaths {
			continue
		}
		if m := pathKey.FindStringSubmatch(line); m != nil {
			path = m[1]
			continue
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			t.Fatalf("openapi.yaml: unexpected key under paths: %q", line)
		}
		if m := methodKey.FindStringSubmatch(line); m != nil && path != "" {
			ops[strings.ToUpper(m[1])+" "+path] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ops
}

// registeredRoutes scans Go source for route registrations on receiver
// (e.g. "mux" or "top") and returns their patterns, with "ANY " prefixed
// to a pattern that names no method. The "/v1/" mount is skipped.
func registeredRoutes(t *testing.T, files []string, receiver string) []string {
	t.Helper()
	re := regexp.MustCompile(`\b` + receiver + `\.Handle(?:Func)?\("([^"]+)"`)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			p := string(m[1])
			if p == "/v1/" {
				continue
			}
			if strings.HasPrefix(p, "/") {
				p = "ANY " + p
			}
			out = append(out, p)
		}
	}
	return out
}

func goFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		t.Fatal("openapi.yaml is empty")
	}
	if !bytes.Contains(doc, []byte("openapi: 3.0.3\n")) {
		t.Fatal(`openapi.yaml does not declare "openapi: 3.0.3"`)
	}
	if bytes.Contains(doc, []byte("\t")) {
		t.Fatal("openapi.yaml contains a tab; YAML indentation must be spaces")
	}
	if !bytes.Equal(doc, OpenAPI) {
		t.Fatal("the embedded OpenAPI document differs from openapi.yaml")
	}

	// (a) Every route in the list is documented, and nothing else is.
	ops := yamlOperations(t, doc)
	for _, r := range documentedRoutes {
		if !ops[r] {
			t.Errorf("route %s is not documented in openapi.yaml (want the path key with the method under it)", r)
		}
	}
	for op := range ops {
		if !slices.Contains(documentedRoutes, op) {
			t.Errorf("openapi.yaml documents %s, which is not in the route list", op)
		}
	}

	// (b) The list is exactly what the code registers.
	src := registeredRoutes(t, goFiles(t, filepath.Join("..", "..", "services")), "mux")
	src = append(src, registeredRoutes(t, []string{filepath.Join("..", "..", "system", "system.go")}, "top")...)
	seen := map[string]bool{}
	for _, r := range src {
		if seen[r] {
			t.Errorf("route %s is registered twice", r)
		}
		seen[r] = true
		if !slices.Contains(documentedRoutes, r) {
			t.Errorf("route %s is registered in the code but not documented (add it to openapi.yaml and to documentedRoutes)", r)
		}
	}
	for _, r := range documentedRoutes {
		if seen[r] {
			continue
		}
		if r == openAPIRoute {
			t.Logf("%s is documented but not registered yet", r)
			continue
		}
		t.Errorf("route %s is documented but no longer registered in the code", r)
	}
	if len(src) < 20 {
		t.Fatalf("found only %d registered routes; is the source scan broken?", len(src))
	}
}

func TestServeOpenAPI(t *testing.T) {
	rec := httptest.NewRecorder()
	ServeOpenAPI(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/yaml" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), OpenAPI) || len(OpenAPI) == 0 {
		t.Fatal("body is not the embedded document")
	}
}
