// Package scorecards serves the per-supplier scorecards and the standards
// catalogue. A supplier reads only its own card; asking for another
// supplier's gets 403 whether or not that supplier exists.
package scorecards

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/standards"
)

type store interface {
	Scorecard(supplierID string) ([]byte, error)
	Card(supplierID string) (*scorecard.Card, error)
	Suppliers() ([]string, error)
}

var _ store = (*ledger.Ledger)(nil)

// Service serves reads.
type Service struct {
	store store
}

// New returns the service.
func New(s store) *Service { return &Service{store: s} }

// Register adds the routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/suppliers/{supplier}/scorecard", s.scorecard)
	mux.HandleFunc("GET /v1/suppliers", s.list)
	mux.HandleFunc("GET /v1/standards", s.standards)
}

func (s *Service) scorecard(w http.ResponseWriter, r *http.Request) {
	p, id := api.Principal(r), r.PathValue("supplier")
	if !api.CanRead(p, id) {
		api.WriteError(w, api.Errorf(http.StatusForbidden, "forbidden: a supplier may read only its own scorecard"))
		return
	}
	b, err := s.store.Scorecard(id)
	if errors.Is(err, ledger.ErrNotFound) {
		api.WriteError(w, api.Errorf(http.StatusNotFound, "supplier %s has no scorecard (not registered)", id))
		return
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		api.WriteError(w, err)
		return
	}
	api.WriteRawJSON(w, http.StatusOK, pretty.Bytes())
}

// Summary is one line of the supplier list.
type Summary struct {
	SupplierID   string `json:"supplier_id"`
	Name         string `json:"name"`
	Commitments  int    `json:"commitments"`
	OpenBreaches int    `json:"open_breaches"`
	LastSeq      uint64 `json:"last_seq"`
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	if err := api.RequireRole(api.Principal(r), auth.Commercial, auth.Auditor); err != nil {
		api.WriteError(w, err)
		return
	}
	ids, err := s.store.Suppliers()
	if err != nil {
		api.WriteError(w, err)
		return
	}
	out := make([]Summary, 0, len(ids))
	for _, id := range ids {
		c, err := s.store.Card(id)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		sum := Summary{SupplierID: id, Name: c.Name, Commitments: len(c.Commitments), LastSeq: c.LastSeq}
		for _, b := range c.Breaches {
			if b.Status == scorecard.BreachOpen {
				sum.OpenBreaches++
			}
		}
		out = append(out, sum)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"suppliers": out})
}

func (s *Service) standards(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]any{"standards": standards.All()})
}
