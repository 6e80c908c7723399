// Package demo seeds a running system with a realistic, clearly fictional
// history: a dozen suppliers committing to the catalogue's standards over two
// years, commercial teams assessing them, disputes, remediation plans and
// reviews, and the consequences the enforcement rules draw from them.
//
// Everything goes through the same path as real use: each write is an HTTP
// request to the system's handler, carrying a bearer token issued to the
// principal who would make it, so the services validate, sign and publish
// the event through NATS JetStream and answer once the ledger has committed
// it. Nothing is written to the ledger directly, and no consequence is
// invented: breaches, escalations, closures and disinvestment reviews are
// raised by the enforcement service's rules as the injected clock walks
// through the two years.
//
// The same seed gives the same requests, in the same order, at the same
// simulated instants, and so the same ledger (up to signatures and the
// service keys' own registration).
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/scorecard"
	"github.com/supplier-accountability/sal/system"
)

// ErrNotEmpty means Seed was given a system that already holds suppliers.
var ErrNotEmpty = errors.New("demo: the ledger already holds suppliers")

// Summary says what Seed did.
type Summary struct {
	Seed      int64     `json:"seed"`
	Start     time.Time `json:"start"` // simulated start (end minus two years)
	End       time.Time `json:"end"`
	Suppliers int       `json:"suppliers"`
	// Requests made, by kind (each one event in the ledger).
	Commitments   int `json:"commitments"`
	Withdrawals   int `json:"withdrawals"`
	Assessments   int `json:"assessments"`
	Disputes      int `json:"disputes"`
	Resolutions   int `json:"dispute_resolutions"`
	Plans         int `json:"plans"`
	ReviewsClosed int `json:"reviews_closed"`
	// Consequences the enforcement rules recorded, as seen on the scorecards at the end.
	Breaches      int `json:"breaches"`
	Escalations   int `json:"escalations"`
	ReviewsOpened int `json:"reviews_opened"`
	// Events appended to the ledger while seeding: the requests and the consequences.
	Events int `json:"events"`
	// Ratings counts suppliers by KPI rating label as of End.
	Ratings map[string]int `json:"ratings"`
	// Skipped counts planned steps that did not apply (a step planned
	// outside the span, or a plan for a breach that was not open). Zero
	// unless the plan and the rules disagree.
	Skipped int `json:"skipped"`
}

// actionHour is when, in UTC, the simulated day's human actions happen.
const actionHour = 10 * time.Hour

// reviewHold is how far back from the end a disinvestment review of a
// supplier heading for "Inadequate" is left open rather than closed.
const reviewHold = 150

// Seed fills an empty system (no supplier registered yet; otherwise an
// error wrapping ErrNotEmpty) with about two years of history ending at end,
// walking clock from end minus two years to end. The system must read clock
// (system.Config{Now: clock.Now}), and its ledger must hold nothing appended
// after end minus two years: start the system with NewClock(end.AddDate(-2, 0, 0)).
//
// Each simulated day the clock is set to 10:00 UTC and the enforcement
// rules are evaluated; on working days the day's human actions follow, each
// an HTTP request to sys.Handler with a token issued through sys.Tokens,
// each followed by an evaluation of the rules. (Settling the rules after
// every change, and keeping the clock still within a day, makes the ledger
// the same from run to run even though the enforcement service also
// evaluates by itself in the background.) When
// Seed returns, the clock stands at end; call clock.Release to hand over to
// the wall clock.
//
// end is normally the present (time.Now()), so that the clock can be
// released to the wall clock without going back. The dates must lie within
// the bank-holiday calendar (2024-2028); end between 2026-01-01 and
// 2028-06-30 leaves room for every target and due date the plan draws. If
// ctx ends or a request fails, Seed stops and the system keeps what was
// recorded so far.
func Seed(ctx context.Context, sys *system.System, clock *Clock, seed int64, end time.Time) (Summary, error) {
	sum := Summary{Seed: seed, End: end, Ratings: map[string]int{}}
	if sys == nil || clock == nil {
		return sum, errors.New("demo: Seed needs a system and its clock")
	}
	if clock.Released() {
		return sum, errors.New("demo: the clock was released to the wall clock; seed with a pinned clock")
	}
	ids, err := sys.Ledger.Suppliers()
	if err != nil {
		return sum, fmt.Errorf("demo: list suppliers: %w", err)
	}
	if len(ids) > 0 {
		return sum, fmt.Errorf("%w (%d, first %s)", ErrNotEmpty, len(ids), ids[0])
	}
	cal, err := calendar.England()
	if err != nil {
		return sum, err
	}
	end = end.UTC()
	start := end.AddDate(-2, 0, 0)
	sum.Start, sum.End = start, end
	first := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	last := time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
	if first.Year() < cal.FirstYear() || last.Year() > cal.LastYear() || last.AddDate(0, 6, 0).Year() > cal.LastYear() {
		return sum, fmt.Errorf("demo: %s to %s does not fit the bank-holiday calendar (%d-%d) with six months to spare",
			first.Format(calendar.DateLayout), last.Format(calendar.DateLayout), cal.FirstYear(), cal.LastYear())
	}
	headBefore, _, err := sys.Ledger.Head()
	if err != nil {
		return sum, err
	}
	if headBefore > 0 {
		es, err := sys.Ledger.Entries(headBefore, 1)
		if err != nil {
			return sum, err
		}
		if len(es) == 1 && es[0].AppendedAt.After(start) {
			return sum, fmt.Errorf("demo: the ledger's last entry was appended at %s, after the simulated start %s; start the system with NewClock(end.AddDate(-2, 0, 0))",
				es[0].AppendedAt.UTC().Format(time.RFC3339), start.Format(time.RFC3339))
		}
	}

	p := newPlanner(seed, cal, first, last)
	p.build()
	if p.err != nil {
		return sum, p.err
	}
	s := &seeder{ctx: ctx, sys: sys, clock: clock, cal: cal, seed: seed, end: end, last: last, sum: &sum, sups: p.sups}
	sum.Skipped = p.dropped
	if err := s.issueTokens(); err != nil {
		return sum, err
	}

	byDay := map[time.Time][]step{}
	for _, st := range p.steps {
		byDay[st.day] = append(byDay[st.day], st)
	}
	clock.Set(start)
	if err := s.settle(); err != nil {
		return sum, err
	}
	for d := days(first, 1); !d.After(last); d = days(d, 1) {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		s.today = d
		s.tick()
		if err := s.settle(); err != nil {
			return sum, err
		}
		working, err := cal.IsWorkingDay(d)
		if err != nil {
			return sum, err
		}
		if !working {
			continue
		}
		for _, st := range byDay[d] {
			if err := st.run(s); err != nil {
				return sum, err
			}
			if err := s.settle(); err != nil {
				return sum, err
			}
		}
		if err := s.closeReviews(); err != nil {
			return sum, err
		}
	}
	clock.Set(end)
	if err := s.settle(); err != nil {
		return sum, err
	}

	headAfter, _, err := sys.Ledger.Head()
	if err != nil {
		return sum, err
	}
	sum.Events = int(headAfter - headBefore)
	if err := s.tally(); err != nil {
		return sum, err
	}
	return sum, nil
}

// seeder runs the plan against the system.
type seeder struct {
	ctx   context.Context
	sys   *system.System
	clock *Clock
	cal   *calendar.Calendar
	seed  int64
	end   time.Time
	last  time.Time
	sum   *Summary
	sups  []*supState

	commercial []string // tokens of commercialUsers
	today      time.Time
	requests   int
}

// tick sets the clock to the moment of the current day's actions: 10:00
// UTC, never past the end. Every action of a day, and every consequence
// evaluated that day, happens at that one instant: the enforcement service
// also evaluates in the background, reading the clock when it starts, so a
// clock that moved during the day could date the same consequence
// differently from run to run.
func (s *seeder) tick() {
	t := s.today.Add(actionHour)
	if t.After(s.end) {
		t = s.end
	}
	s.clock.Set(t)
}

// settle lets the enforcement service apply the rules at the clock's
// current moment and waits until every consequence is committed.
func (s *seeder) settle() error {
	if _, err := s.sys.Enforcer.Evaluate(s.ctx); err != nil {
		return fmt.Errorf("demo: evaluate the rules on %s: %w", s.dateString(), err)
	}
	return nil
}

func (s *seeder) dateString() string { return calendar.Today(s.clock.Now()) }

func (s *seeder) issueTokens() error {
	for _, name := range commercialUsers {
		tok, err := s.sys.Tokens.Issue(auth.Principal{Role: auth.Commercial, Name: name})
		if err != nil {
			return fmt.Errorf("demo: issue a token: %w", err)
		}
		s.commercial = append(s.commercial, tok)
	}
	for _, sup := range s.sups {
		tok, err := s.sys.Tokens.Issue(auth.Principal{Role: auth.Supplier, SupplierID: sup.info.id, Name: "demo-" + sup.info.id})
		if err != nil {
			return fmt.Errorf("demo: issue a token: %w", err)
		}
		sup.token = tok
	}
	return nil
}

// do sends one request to the system's handler and decodes the JSON answer
// into out. Writes carry an Idempotency-Key drawn from the seed and a
// counter, so the records they create get the same ids on every run.
func (s *seeder) do(token, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, "http://sal.demo"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	want := http.StatusOK
	if method == http.MethodPost {
		s.requests++
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("sal-demo-%d-%d", s.seed, s.requests))
		want = http.StatusCreated
	}
	rec := httptest.NewRecorder()
	s.sys.Handler.ServeHTTP(rec, req)
	if rec.Code != want {
		return fmt.Errorf("demo: %s %s on %s: %d %s", method, path, s.dateString(), rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			return fmt.Errorf("demo: %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

func (s *seeder) register(sup *supState) error {
	if err := s.do(sup.token, http.MethodPost, "/v1/suppliers", map[string]string{
		"supplier_id": sup.info.id, "name": sup.info.name,
	}, nil); err != nil {
		return err
	}
	s.sum.Suppliers++
	return nil
}

func (s *seeder) commit(cm *cmState) error {
	var out struct {
		CommitmentID string `json:"commitment_id"`
	}
	if err := s.do(cm.sup.token, http.MethodPost, "/v1/suppliers/"+cm.sup.info.id+"/commitments", map[string]string{
		"standard":        cm.std.ID,
		"version":         cm.std.CurrentExample,
		"product":         cm.product,
		"product_version": cm.productVersion,
		"target_date":     cm.target.Format(calendar.DateLayout),
	}, &out); err != nil {
		return err
	}
	cm.id = out.CommitmentID
	s.sum.Commitments++
	return nil
}

func (s *seeder) assess(cm *cmState, outcome, ref, assessor string, by int) error {
	if cm.id == "" {
		s.sum.Skipped++
		return nil
	}
	var out struct {
		AssessmentID string `json:"assessment_id"`
	}
	if err := s.do(s.commercial[by], http.MethodPost, "/v1/suppliers/"+cm.sup.info.id+"/commitments/"+cm.id+"/assessments", map[string]string{
		"outcome": outcome, "evidence_ref": ref, "assessor": assessor,
	}, &out); err != nil {
		return err
	}
	cm.lastAssessment = out.AssessmentID
	s.sum.Assessments++
	return nil
}

func (s *seeder) withdraw(cm *cmState, reason string) error {
	if cm.id == "" {
		s.sum.Skipped++
		return nil
	}
	if err := s.do(cm.sup.token, http.MethodPost, "/v1/suppliers/"+cm.sup.info.id+"/commitments/"+cm.id+"/withdrawal", map[string]string{
		"reason": reason,
	}, nil); err != nil {
		return err
	}
	s.sum.Withdrawals++
	return nil
}

func (s *seeder) openDispute(cm *cmState, grounds string) error {
	if cm.lastAssessment == "" {
		s.sum.Skipped++
		return nil
	}
	var out struct {
		DisputeID string `json:"dispute_id"`
	}
	if err := s.do(cm.sup.token, http.MethodPost, "/v1/suppliers/"+cm.sup.info.id+"/assessments/"+cm.lastAssessment+"/disputes", map[string]string{
		"grounds": grounds,
	}, &out); err != nil {
		return err
	}
	cm.dispute = out.DisputeID
	s.sum.Disputes++
	return nil
}

func (s *seeder) resolveDispute(cm *cmState, upheld bool, reason string, by int) error {
	if cm.dispute == "" {
		s.sum.Skipped++
		return nil
	}
	outcome := "rejected"
	if upheld {
		outcome = "upheld"
	}
	if err := s.do(s.commercial[by], http.MethodPost, "/v1/suppliers/"+cm.sup.info.id+"/disputes/"+cm.dispute+"/resolution", map[string]string{
		"outcome": outcome, "reason": reason,
	}, nil); err != nil {
		return err
	}
	s.sum.Resolutions++
	return nil
}

// agreePlan agrees a remediation plan for the breach open on cm, as the
// commercial team finds it on the scorecard.
func (s *seeder) agreePlan(cm *cmState, due time.Time, summary string, by int) error {
	if cm.id == "" {
		s.sum.Skipped++
		return nil
	}
	card, err := s.sys.Ledger.Card(cm.sup.info.id)
	if err != nil {
		return fmt.Errorf("demo: scorecard of %s: %w", cm.sup.info.id, err)
	}
	var open *scorecard.Breach
	for _, b := range card.Breaches {
		if b.CommitmentID == cm.id && b.Status == scorecard.BreachOpen {
			open = b
		}
	}
	if open == nil {
		s.sum.Skipped++
		return nil
	}
	if err := s.do(s.commercial[by], http.MethodPost, "/v1/suppliers/"+cm.sup.info.id+"/breaches/"+open.ID+"/plans", map[string]string{
		"due_date": due.Format(calendar.DateLayout), "summary": summary,
	}, nil); err != nil {
		return err
	}
	s.sum.Plans++
	return nil
}

// closeReviews is the commercial team's look at open disinvestment reviews:
// each is closed with a reason some weeks after it opened, except the
// recent ones of suppliers heading for "Inadequate", which stay open.
func (s *seeder) closeReviews() error {
	holdFrom := days(s.last, -reviewHold).Format(calendar.DateLayout)
	today := s.today.Format(calendar.DateLayout)
	for _, sup := range s.sups {
		card, err := s.sys.Ledger.Card(sup.info.id)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // not registered yet
		}
		if err != nil {
			return fmt.Errorf("demo: scorecard of %s: %w", sup.info.id, err)
		}
		for _, rv := range card.Reviews {
			if rv.Status != "open" || (sup.profile == profileInadequate && rv.OpenedOn >= holdFrom) {
				continue
			}
			h := s.hash(rv.ID)
			opened, err := calendar.ParseDate(rv.OpenedOn)
			if err != nil {
				return err
			}
			closeOn, err := s.cal.AddWorkingDays(opened, 10+int(h%20))
			if err != nil {
				return err
			}
			if today < closeOn.Format(calendar.DateLayout) {
				continue
			}
			by := int(h/20) % len(s.commercial)
			reason := reviewClosures[int(h/100)%len(reviewClosures)]
			if err := s.do(s.commercial[by], http.MethodPost, "/v1/suppliers/"+sup.info.id+"/reviews/"+rv.ID+"/closure", map[string]string{
				"reason": reason,
			}, nil); err != nil {
				return err
			}
			s.sum.ReviewsClosed++
			if err := s.settle(); err != nil {
				return err
			}
		}
	}
	return nil
}

// hash is a deterministic draw for choices the plan cannot make ahead (a
// review's id is known only once the rules open it).
func (s *seeder) hash(key string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s", s.seed, key)
	return h.Sum64()
}

// tally fills in the consequences and the ratings as the system shows them.
func (s *seeder) tally() error {
	for _, sup := range s.sups {
		card, err := s.sys.Ledger.Card(sup.info.id)
		if err != nil {
			return fmt.Errorf("demo: scorecard of %s: %w", sup.info.id, err)
		}
		s.sum.Breaches += len(card.Breaches)
		for _, b := range card.Breaches {
			s.sum.Escalations += len(b.Escalations)
		}
		s.sum.ReviewsOpened += len(card.Reviews)
	}
	var list struct {
		Suppliers []struct {
			Rating string `json:"rating"`
		} `json:"suppliers"`
	}
	if err := s.do(s.commercial[0], http.MethodGet, "/v1/suppliers", nil, &list); err != nil {
		return err
	}
	for _, x := range list.Suppliers {
		s.sum.Ratings[x.Rating]++
	}
	return nil
}
