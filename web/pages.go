package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/envelope"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/services/scorecards"
	"github.com/supplier-accountability/sal/standards"
)

func (s *Server) base(r *http.Request, se *session, title string) map[string]any {
	flash, isErr := s.takeFlash(se)
	return map[string]any{"Title": title, "Me": se.p, "CSRF": se.csrf, "Flash": flash, "FlashError": isErr}
}

// row is one line of the suppliers list.
type row struct {
	ID, Name, Rating string
	RatingRank       int
	Commitments      int
	OpenBreaches     int
	MaxLevel         int
	OpenReview       bool
	Standards        map[string]bool
}

var ratingRank = map[string]int{rules.Good: 0, rules.ApproachingTarget: 1, rules.RequiresImprovement: 2, rules.Inadequate: 3, rules.Other: 4}

func (s *Server) suppliers(w http.ResponseWriter, r *http.Request, se *session) {
	if se.p.Role == auth.Supplier {
		s.errorPage(w, http.StatusForbidden, "Suppliers see their own scorecard only.")
		return
	}
	ids, err := s.store.Suppliers()
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	q := r.URL.Query()
	fStd, fRating, fLevel := q.Get("standard"), q.Get("rating"), q.Get("level")
	today := calendar.Today(s.now())
	var rows []row
	for _, id := range ids {
		c, err := s.store.Card(id)
		if err != nil {
			s.errorPage(w, http.StatusInternalServerError, err.Error())
			return
		}
		rt := rules.Rate(c, today)
		rw := row{ID: id, Name: c.Name, Rating: rt.Label, RatingRank: ratingRank[rt.Label], Commitments: len(c.Commitments), Standards: map[string]bool{}}
		for _, cm := range c.Commitments {
			rw.Standards[cm.StandardID] = true
		}
		for _, b := range c.Breaches {
			if b.Status == scorecard.BreachOpen {
				rw.OpenBreaches++
				rw.MaxLevel = max(rw.MaxLevel, b.EscalationLevel)
			}
		}
		for _, rv := range c.Reviews {
			if rv.Status == "open" {
				rw.OpenReview = true
			}
		}
		if fStd != "" && !rw.Standards[fStd] || fRating != "" && rt.Label != fRating || fLevel != "" && strconv.Itoa(rw.MaxLevel) != fLevel {
			continue
		}
		rows = append(rows, rw)
	}
	sortKey, desc := q.Get("sort"), q.Get("dir") == "desc"
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		var less bool
		switch sortKey {
		case "rating":
			less = a.RatingRank < b.RatingRank || a.RatingRank == b.RatingRank && a.Name < b.Name
		case "breaches":
			less = a.OpenBreaches < b.OpenBreaches || a.OpenBreaches == b.OpenBreaches && a.Name < b.Name
		case "level":
			less = a.MaxLevel < b.MaxLevel || a.MaxLevel == b.MaxLevel && a.Name < b.Name
		default:
			less = strings.ToLower(a.Name) < strings.ToLower(b.Name)
		}
		if desc {
			return !less
		}
		return less
	})
	data := s.base(r, se, "Suppliers")
	data["Rows"] = rows
	data["Standards"] = standards.All()
	data["Ratings"] = []string{rules.Good, rules.ApproachingTarget, rules.RequiresImprovement, rules.Inadequate, rules.Other}
	data["F"] = map[string]string{"standard": fStd, "rating": fRating, "level": fLevel, "sort": sortKey, "dir": q.Get("dir")}
	data["Today"] = today
	s.render(w, http.StatusOK, "suppliers", data)
}

// timelineItem is one event on a supplier's timeline.
type timelineItem struct {
	Seq        uint64
	At         time.Time
	Type       string
	What       string
	Signer     string
	Signature  string
	EventID    string
	AppendedAt time.Time
}

func (s *Server) scorecardPage(w http.ResponseWriter, r *http.Request, se *session) {
	id := r.PathValue("supplier")
	if se.p.Role == auth.Supplier && se.p.SupplierID != id {
		s.errorPage(w, http.StatusForbidden, "A supplier may see its own scorecard only.")
		return
	}
	at, size, asOf, err := s.pointInTime(r, se)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, err.Error())
		return
	}
	var card *scorecard.Card
	if at.IsZero() {
		card, err = s.card(id)
	} else {
		card, err = s.cardAt(id, size)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		if se.p.Role == auth.Supplier {
			card, err = scorecard.New(id), nil
		} else {
			s.errorPage(w, http.StatusNotFound, "No supplier "+id+" has been registered"+map[bool]string{true: " by then.", false: "."}[!at.IsZero()])
			return
		}
	}
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	// The content is a function of the card's last event, the date, the
	// point in time shown, and who looks (their role and CSRF token).
	key := fmt.Sprintf("scorecard|%s|%d|%s|%d|%s|%s|%s", id, card.LastSeq, asOf, size, se.p.String(), se.csrf, s.now().UTC().Format("2006-01-02T15:04"))
	data := s.base(r, se, card.Name+" scorecard")
	if card.Name == "" {
		data["Title"] = id + " scorecard"
	}
	s.pageMu.Lock()
	_, cached := s.pageCache[key]
	s.pageMu.Unlock()
	if cached {
		s.renderCached(w, "scorecard", key, data)
		return
	}
	view, err := scorecards.Explain(s.engine, card, asOf)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	timeline, err := s.timeline(id, size)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	data["V"] = view
	data["Timeline"] = timeline
	data["Standards"] = standards.All()
	data["AsOf"] = asOf
	data["At"] = ""
	if !at.IsZero() {
		data["At"] = at.UTC().Format(time.RFC3339)
		data["AtSize"] = size
	}
	shown := at
	if shown.IsZero() {
		shown = s.now()
	}
	data["AtInput"] = shown.UTC().Format("2006-01-02T15:04")
	s.renderCached(w, "scorecard", key, data)
}

// pointInTime reads ?at= (auditors and commercial users only): an RFC 3339
// time, a datetime-local value (UTC), or a date (end of that day, UTC).
func (s *Server) pointInTime(r *http.Request, se *session) (time.Time, uint64, string, error) {
	v := r.URL.Query().Get("at")
	if v == "" {
		return time.Time{}, 0, calendar.Today(s.now()), nil
	}
	if se.p.Role == auth.Supplier {
		return time.Time{}, 0, "", errors.New("history at a past date is for auditors and commercial users")
	}
	var at time.Time
	var err error
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if at, err = time.Parse(layout, v); err == nil {
			if layout == "2006-01-02" {
				at = at.Add(24*time.Hour - time.Second)
			}
			break
		}
	}
	if err != nil {
		return time.Time{}, 0, "", fmt.Errorf("at=%q is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM, UTC)", v)
	}
	size, err := s.store.SizeAt(at)
	if err != nil {
		return time.Time{}, 0, "", err
	}
	return at, size, calendar.Today(at), nil
}

// cardAt replays one supplier's events up to tree size into a fresh card.
func (s *Server) cardAt(id string, size uint64) (*scorecard.Card, error) {
	seqs, err := s.store.SupplierSeqs(id, size)
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		return nil, ledger.ErrNotFound
	}
	cards := map[string]*scorecard.Card{}
	for len(seqs) > 0 {
		n := min(len(seqs), 1024)
		es, err := s.store.EntriesAt(seqs[:n])
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if err := ledger.Project(cards, e); err != nil {
				return nil, err
			}
		}
		seqs = seqs[n:]
	}
	return cards[id], nil
}

func (s *Server) timeline(id string, size uint64) ([]timelineItem, error) {
	es, err := s.store.SupplierEntries(id, size, 100)
	if err != nil {
		return nil, err
	}
	reg := s.store.Registry()
	out := make([]timelineItem, 0, len(es))
	for _, e := range es {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			return nil, err
		}
		it := timelineItem{Seq: e.Seq, At: o.OccurredAt(), AppendedAt: e.AppendedAt, Type: eventLabel(o.Event.Type.String()), What: summary(o), EventID: o.Event.EventId}
		if a, ok := reg.Lookup(o.Event.KeyId); ok {
			it.Signer = a.Holder
		}
		out = append(out, it)
	}
	return out, nil
}

func eventLabel(t string) string {
	t = strings.TrimPrefix(t, "EVENT_TYPE_")
	t = strings.ToLower(strings.ReplaceAll(t, "_", " "))
	return strings.ToUpper(t[:1]) + t[1:]
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, se *session) {
	if se.p.Role == auth.Supplier {
		s.errorPage(w, http.StatusForbidden, "The audit pages are for auditors and commercial users.")
		return
	}
	head, _, err := s.store.Head()
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	from := uint64(1)
	if head > 50 {
		from = head - 49
	}
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			s.errorPage(w, http.StatusBadRequest, "from must be a sequence number")
			return
		}
		from = n
	}
	es, err := s.store.Entries(from, 50)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	reg := s.store.Registry()
	var items []timelineItem
	var suppliers []string
	for _, e := range es {
		o, err := envelope.Open(e.Envelope)
		if err != nil {
			s.errorPage(w, http.StatusInternalServerError, err.Error())
			return
		}
		it := timelineItem{Seq: e.Seq, At: o.OccurredAt(), AppendedAt: e.AppendedAt, Type: eventLabel(o.Event.Type.String()), What: summary(o), EventID: o.Event.EventId, Signer: "registry root", Signature: "valid"}
		key := reg.Root()
		if a, ok := reg.Lookup(o.Event.KeyId); ok {
			it.Signer, key = a.Holder, a.PublicKey
		}
		if o.Verify(key) != nil {
			it.Signature = "INVALID"
		}
		items = append(items, it)
		suppliers = append(suppliers, o.Event.SupplierId)
	}
	q, err := s.store.Quarantine(1, 200)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	data := s.base(r, se, "Audit")
	data["Events"] = items
	data["EventSuppliers"] = suppliers
	data["Quarantine"] = q
	data["Head"] = head
	data["From"] = from
	if from > 50 {
		data["Prev"] = from - 50
	} else if from > 1 {
		data["Prev"] = uint64(1)
	}
	if from+50 <= head {
		data["Next"] = from + 50
	}
	s.render(w, http.StatusOK, "audit", data)
}

// actions maps a form to the JSON API call it makes.
var actions = map[string]struct {
	path   func(supplier string, f func(string) string) string
	fields []string
	done   string
}{
	"register": {func(s string, f func(string) string) string { return "/v1/suppliers" }, []string{"supplier_id", "name"}, "Registered."},
	"commit":   {func(s string, f func(string) string) string { return "/v1/suppliers/" + s + "/commitments" }, []string{"standard", "version", "product", "product_version", "target_date"}, "Commitment recorded."},
	"withdraw": {func(s string, f func(string) string) string {
		return "/v1/suppliers/" + s + "/commitments/" + f("commitment") + "/withdrawal"
	}, []string{"reason"}, "Commitment withdrawn."},
	"assess": {func(s string, f func(string) string) string {
		return "/v1/suppliers/" + s + "/commitments/" + f("commitment") + "/assessments"
	}, []string{"outcome", "evidence_ref", "assessor", "assessed_on"}, "Assessment recorded."},
	"dispute": {func(s string, f func(string) string) string {
		return "/v1/suppliers/" + s + "/assessments/" + f("assessment") + "/disputes"
	}, []string{"grounds"}, "Dispute opened."},
	"resolve": {func(s string, f func(string) string) string {
		return "/v1/suppliers/" + s + "/disputes/" + f("dispute") + "/resolution"
	}, []string{"outcome", "reason"}, "Dispute resolved."},
	"plan": {func(s string, f func(string) string) string {
		return "/v1/suppliers/" + s + "/breaches/" + f("breach") + "/plans"
	}, []string{"due_date", "summary"}, "Remediation plan agreed."},
	"closereview": {func(s string, f func(string) string) string {
		return "/v1/suppliers/" + s + "/reviews/" + f("review") + "/closure"
	}, []string{"reason"}, "Review closed."},
}

// action turns a submitted form into a JSON API request, made as the
// signed-in user, and comes back to the scorecard with the outcome.
func (s *Server) action(w http.ResponseWriter, r *http.Request, se *session) {
	supplier, name := r.PathValue("supplier"), r.PathValue("action")
	a, ok := actions[name]
	if !ok {
		s.errorPage(w, http.StatusNotFound, "No such action.")
		return
	}
	body := map[string]string{}
	for _, f := range a.fields {
		if v := strings.TrimSpace(r.PostFormValue(f)); v != "" {
			body[f] = v
		}
	}
	if name == "register" {
		body["supplier_id"] = supplier
	}
	b, _ := json.Marshal(body)
	path := a.path(supplier, func(k string) string { return safeSegment(r.PostFormValue(k)) })
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b)).WithContext(r.Context())
	req.RequestURI = ""
	req.Header.Set("Authorization", "Bearer "+se.token)
	if k := r.PostFormValue("idempotency_key"); k != "" {
		req.Header.Set("Idempotency-Key", k)
	}
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, req)
	back := "/suppliers/" + supplier
	if rec.Code/100 == 2 {
		var out struct {
			Event struct {
				Seq     uint64 `json:"seq"`
				Pending bool   `json:"pending"`
			} `json:"event"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		msg := a.done
		if out.Event.Seq != 0 {
			msg += fmt.Sprintf(" Signed and stored in the ledger as entry %d.", out.Event.Seq)
		} else if out.Event.Pending {
			msg += " Stored durably; the ledger will show it in a moment."
		}
		s.setFlash(se, msg, false)
	} else {
		var out struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		if rec.Code == http.StatusForbidden {
			s.errorPage(w, http.StatusForbidden, "Not allowed: "+out.Error)
			return
		}
		s.setFlash(se, "Not recorded: "+out.Error, true)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// safeSegment keeps a form value from escaping its path segment.
func safeSegment(v string) string {
	return strings.NewReplacer("/", "", "?", "", "#", "", "..", "").Replace(v)
}

var actionHeadings = map[string]string{
	"assess": "Record an assessment", "dispute": "Dispute an assessment", "withdraw": "Withdraw a commitment",
	"plan": "Agree a remediation plan", "resolve": "Resolve a dispute", "closereview": "Close a disinvestment review",
}

// actionForm shows the form of one action about one record, with the record
// beside it. Who may do what is decided by the API when the form is sent.
func (s *Server) actionForm(w http.ResponseWriter, r *http.Request, se *session) {
	id, name := r.PathValue("supplier"), r.PathValue("action")
	heading, ok := actionHeadings[name]
	if !ok {
		s.errorPage(w, http.StatusNotFound, "No such action.")
		return
	}
	if se.p.Role == auth.Auditor || se.p.Role == auth.Supplier && se.p.SupplierID != id {
		s.errorPage(w, http.StatusForbidden, "Your role may not do this.")
		return
	}
	card, err := s.card(id)
	if errors.Is(err, ledger.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, "No supplier "+id+" has been registered.")
		return
	}
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	q := r.URL.Query()
	data := s.base(r, se, heading)
	data["Action"], data["Heading"], data["SupplierID"], data["SupplierName"] = name, heading, id, card.Name
	data["IdempotencyKey"] = randomToken()
	missing := func(what string) {
		s.errorPage(w, http.StatusNotFound, "This scorecard has no such "+what+".")
	}
	switch name {
	case "assess", "withdraw":
		cm := card.Commitment(q.Get("commitment"))
		if cm == nil {
			missing("commitment")
			return
		}
		data["Commitment"] = cm
	case "dispute":
		a := card.Assessment(q.Get("assessment"))
		if a == nil {
			missing("assessment")
			return
		}
		for _, cm := range card.Commitments {
			for _, x := range cm.Assessments {
				if x.ID == a.ID {
					data["Commitment"] = cm
				}
			}
		}
		data["Assessment"] = a.ID
	case "plan":
		b := card.Breach(q.Get("breach"))
		if b == nil {
			missing("breach")
			return
		}
		data["Breach"] = b
	case "resolve":
		d := card.Dispute(q.Get("dispute"))
		if d == nil {
			missing("dispute")
			return
		}
		data["Dispute"] = d
	case "closereview":
		rv := card.Review(q.Get("review"))
		if rv == nil {
			missing("review")
			return
		}
		data["Review"] = rv
	}
	s.render(w, http.StatusOK, "action", data)
}

type cachedCard struct {
	lastSeq uint64
	card    *scorecard.Card
}

// card returns a supplier's live scorecard, decoding it only when the
// supplier has had a new event since it was last decoded. Cards handed out
// are shared: callers must not change them.
func (s *Server) card(id string) (*scorecard.Card, error) {
	es, err := s.store.SupplierEntries(id, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, ledger.ErrNotFound
	}
	last := es[0].Seq
	s.trendMu.Lock()
	c, ok := s.cards[id]
	s.trendMu.Unlock()
	if ok && c.lastSeq == last {
		return c.card, nil
	}
	card, err := s.store.Card(id)
	if err != nil {
		return nil, err
	}
	if card.LastSeq == last {
		s.trendMu.Lock()
		s.cards[id] = cachedCard{lastSeq: last, card: card}
		s.trendMu.Unlock()
	}
	return card, nil
}
