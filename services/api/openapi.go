package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.0.3 description of the whole HTTP API.
//
//go:embed openapi.yaml
var OpenAPI []byte

// ServeOpenAPI answers with the OpenAPI document as YAML. It needs no
// authentication.
func ServeOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
}
