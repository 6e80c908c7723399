// Package scorecards serves the per-supplier scorecards and the standards
// catalogue. A supplier reads only its own card; asking for another
// supplier's gets 403 whether or not that supplier exists.
package scorecards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/api"
	"github.com/supplier-accountability/sal/standards"
)

type store interface {
	Scorecard(supplierID string) ([]byte, error)
	CardDigest(supplierID string) ([32]byte, error)
	Card(supplierID string) (*scorecard.Card, error)
	Suppliers() ([]string, error)
}

var _ store = (*ledger.Ledger)(nil)

// Service serves reads.
type Service struct {
	store  store
	engine *rules.Engine
	now    func() time.Time

	mu         sync.Mutex
	cache      map[string]cached // supplier id -> the last answer served
	cacheBytes int               // of the bodies in cache
}

// maxCacheBytes bounds the answers kept: about 3,000 scorecards of
// suppliers with a 200-event history.
const maxCacheBytes = 128 << 20

// cached is a served scorecard: valid while the stored card (by digest)
// and the date are the same.
type cached struct {
	digest [32]byte
	date   string
	body   []byte
}

// New returns the service. The rating and escalation clocks on a scorecard
// are computed by engine as of the clock's date.
func New(s store, engine *rules.Engine, now func() time.Time) *Service {
	return &Service{store: s, engine: engine, now: now, cache: map[string]cached{}}
}

// View is a scorecard as served: the stored projection, plus the KPI rating
// and each breach's escalation clock as of a date, with their explanations.
type View struct {
	*scorecard.Card
	AsOf   string                 `json:"as_of"`
	Rating rules.Rating           `json:"rating"`
	Clocks map[string]rules.Clock `json:"escalation_clocks"`
}

// Explain builds the view of card as of today.
func Explain(engine *rules.Engine, card *scorecard.Card, today string) (View, error) {
	v := View{Card: card, AsOf: today, Rating: rules.Rate(card, today), Clocks: map[string]rules.Clock{}}
	for _, b := range card.Breaches {
		k, err := engine.ClockOf(card, b)
		if err != nil {
			return v, fmt.Errorf("breach %s: %w", b.ID, err)
		}
		v.Clocks[b.ID] = k
	}
	return v, nil
}

// viewJSON is the JSON of v, whose card was decoded from raw: the stored
// card's bytes as they are, with the date's rating and clocks added. The
// card is most of a scorecard; not encoding it again halves the cost of a
// read that misses the cache.
func viewJSON(raw []byte, v View) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	extra, err := json.Marshal(struct {
		AsOf   string                 `json:"as_of"`
		Rating rules.Rating           `json:"rating"`
		Clocks map[string]rules.Clock `json:"escalation_clocks"`
	}{v.AsOf, v.Rating, v.Clocks})
	if err != nil {
		return nil, fmt.Errorf("scorecards: encode the view of %s: %w", v.SupplierID, err)
	}
	if len(raw) < 2 || raw[0] != '{' || raw[len(raw)-1] != '}' {
		return nil, fmt.Errorf("scorecards: stored card of %s is not a JSON object", v.SupplierID)
	}
	out := make([]byte, 0, len(raw)+len(extra))
	out = append(out, raw[:len(raw)-1]...)
	if len(raw) > 2 {
		out = append(out, ',')
	}
	return append(out, extra[1:]...), nil
}

// Register adds the routes to mux.
func (s *Service) Register(mux api.Router) {
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
	today := calendar.Today(s.now())
	digest, err := s.store.CardDigest(id)
	if errors.Is(err, ledger.ErrNotFound) {
		api.WriteError(w, api.Errorf(http.StatusNotFound, "supplier %s has no scorecard (not registered)", id))
		return
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if ok && c.digest == digest && c.date == today {
		api.WriteRawJSON(w, http.StatusOK, c.body)
		return
	}
	raw, err := s.store.Scorecard(id)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	card, err := scorecard.Decode(raw)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	v, err := Explain(s.engine, card, today)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	body, err := viewJSON(raw, v)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	// Kept only if the card did not change between the two reads: every
	// event on a card changes its digest, and a digest never comes back.
	if after, err := s.store.CardDigest(id); err == nil && after == digest {
		s.mu.Lock()
		s.cacheBytes += len(body) - len(s.cache[id].body)
		s.cache[id] = cached{digest: digest, date: today, body: body}
		// Over the bound, forget answers at random (map order): emptying
		// the cache would make every following read a miss at once.
		for other, c := range s.cache {
			if s.cacheBytes <= maxCacheBytes {
				break
			}
			if other != id {
				s.cacheBytes -= len(c.body)
				delete(s.cache, other)
			}
		}
		s.mu.Unlock()
	}
	api.WriteRawJSON(w, http.StatusOK, body)
}

// Summary is one line of the supplier list.
type Summary struct {
	SupplierID   string `json:"supplier_id"`
	Name         string `json:"name"`
	Rating       string `json:"rating"`
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
	today := calendar.Today(s.now())
	out := make([]Summary, 0, len(ids))
	for _, id := range ids {
		c, err := s.store.Card(id)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		sum := Summary{SupplierID: id, Name: c.Name, Rating: rules.Rate(c, today).Label, Commitments: len(c.Commitments), LastSeq: c.LastSeq}
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
