package demo

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/standards"
)

// The plan is drawn entirely from the seed before anything is sent: which
// supplier plays which part, what it commits to, and on which working day
// each human action (a commitment, an assessment, a dispute, a plan...)
// happens. The consequences are left to the enforcement rules. Record ids
// the plan cannot know in advance (the breach a plan is agreed for, the
// review to close) are looked up on the scorecard when the step runs, and
// the system answers deterministically, so one seed gives one history.

// profile is the part a supplier plays: the KPI rating it should end with.
type profile int

const (
	profileGood profile = iota
	profileApproaching
	profileRequiresImprovement
	profileInadequate
)

// supState is a supplier during planning and seeding.
type supState struct {
	info     supplierInfo
	profile  profile
	variant  int // which way a profile gets to its rating
	reg      time.Time
	pairs    [][2]string       // (product, standard) not yet committed to, in draw order
	products []string          // the products it sells
	versions map[string]string // product -> product version
	token    string
}

// cmState is one planned commitment; the seeder fills in the ids the
// system gives it.
type cmState struct {
	sup            *supState
	std            standards.Standard
	product        string
	productVersion string
	target         time.Time

	id             string // cm_…, once made
	lastAssessment string // as_…, the latest recorded
	dispute        string // dp_…, the latest opened
}

// step is one planned human action on a working day.
type step struct {
	day time.Time
	run func(*seeder) error
}

type planner struct {
	rng         *rand.Rand
	cal         *calendar.Calendar
	first, last time.Time // the simulated span: first is the start date, last the end date (midnight UTC)
	capDate     time.Time // latest target or due date (inside the calendar's years)
	sups        []*supState
	steps       []step
	dropped     int // steps that fell outside the span (a planning slip; should stay 0)
	err         error
}

const day = 24 * time.Hour

func newPlanner(seed int64, cal *calendar.Calendar, first, last time.Time) *planner {
	capDate := time.Date(cal.LastYear(), 12, 15, 0, 0, 0, 0, time.UTC)
	return &planner{
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x5a1_de30_5eed)),
		cal:     cal,
		first:   first,
		last:    last,
		capDate: capDate,
	}
}

func days(t time.Time, n int) time.Time { return t.AddDate(0, 0, n) }

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// n draws an int in [lo, hi].
func (p *planner) n(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + p.rng.IntN(hi-lo+1)
}

func (p *planner) chance(percent int) bool { return p.rng.IntN(100) < percent }

func (p *planner) pick(xs []string) string { return xs[p.rng.IntN(len(xs))] }

// dateIn draws a calendar date in [lo, hi] (lo when the span is empty).
func (p *planner) dateIn(lo, hi time.Time) time.Time {
	span := int(hi.Sub(lo) / day)
	if span <= 0 {
		return lo
	}
	return days(lo, p.rng.IntN(span+1))
}

// wd is the first working day on or after t.
func (p *planner) wd(t time.Time) time.Time {
	for range 15 {
		ok, err := p.cal.IsWorkingDay(t)
		if err != nil {
			p.fail(err)
			return t
		}
		if ok {
			return t
		}
		t = days(t, 1)
	}
	p.fail(fmt.Errorf("no working day within two weeks of %s", t.Format(calendar.DateLayout)))
	return t
}

// addWD is n working days after t.
func (p *planner) addWD(t time.Time, n int) time.Time {
	r, err := p.cal.AddWorkingDays(t, n)
	if err != nil {
		p.fail(err)
		return t
	}
	return r
}

// dayIn draws a working day on or after a date in [lo, hi].
func (p *planner) dayIn(lo, hi time.Time) time.Time { return p.wd(p.dateIn(lo, hi)) }

// targetIn draws a target date in [lo, hi], often the end of a month or a
// quarter, as contracts write them.
func (p *planner) targetIn(lo, hi time.Time) time.Time {
	hi = minT(hi, p.capDate)
	t := p.dateIn(lo, hi)
	if p.chance(60) {
		eom := time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
		if !eom.After(hi) {
			t = eom
		}
	}
	return t
}

// due is a plan due date about n days after from (a working day, not past the cap).
func (p *planner) due(from time.Time, n int) time.Time {
	return p.wd(minT(days(from, n), p.capDate))
}

func (p *planner) fail(err error) {
	if p.err == nil {
		p.err = fmt.Errorf("demo: plan: %w", err)
	}
}

// at schedules run on day, which must be a working day inside the span.
func (p *planner) at(d time.Time, run func(*seeder) error) {
	if !d.After(p.first) || d.After(p.last) {
		p.dropped++
		return
	}
	p.steps = append(p.steps, step{day: d, run: run})
}

// optional schedules run on day only if the day is inside the span.
func (p *planner) optional(d time.Time, run func(*seeder) error) {
	if d.After(p.first) && !d.After(p.last) {
		p.steps = append(p.steps, step{day: d, run: run})
	}
}

// build draws the whole plan.
func (p *planner) build() {
	parts := []profile{
		profileGood, profileGood, profileGood,
		profileApproaching, profileApproaching, profileApproaching,
		profileRequiresImprovement, profileRequiresImprovement, profileRequiresImprovement,
		profileInadequate, profileInadequate, profileInadequate,
	}
	p.rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	seen := map[profile]int{}
	for i, info := range suppliers {
		sup := &supState{info: info, profile: parts[i], variant: seen[parts[i]], versions: map[string]string{}}
		seen[parts[i]]++
		p.setUp(sup)
		p.sups = append(p.sups, sup)
	}
	for _, sup := range p.sups {
		p.history(sup)
	}
	slices.SortStableFunc(p.steps, func(a, b step) int { return a.day.Compare(b.day) })
}

// setUp chooses what a supplier sells and when it registers.
func (p *planner) setUp(sup *supState) {
	sup.products = []string{sup.info.primary}
	others := make([]string, 0, len(products))
	for _, pr := range products {
		if pr.name != sup.info.primary {
			others = append(others, pr.name)
		}
	}
	p.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	sup.products = append(sup.products, others[:p.n(1, 2)]...)
	for _, name := range sup.products {
		if p.chance(50) {
			sup.versions[name] = fmt.Sprintf("%d.%d", p.n(2, 9), p.n(0, 12))
		} else {
			sup.versions[name] = fmt.Sprintf("%d.%d", p.first.Year()+p.n(0, 1), p.n(1, 4))
		}
		for _, pr := range products {
			if pr.name == name {
				for _, s := range pr.standards {
					sup.pairs = append(sup.pairs, [2]string{name, s})
				}
			}
		}
	}
	p.rng.Shuffle(len(sup.pairs), func(i, j int) { sup.pairs[i], sup.pairs[j] = sup.pairs[j], sup.pairs[i] })
	sup.reg = p.dayIn(days(p.first, 1), days(p.first, 14))
	p.at(sup.reg, func(s *seeder) error { return s.register(sup) })
}

// commitment draws the next (product, standard) for sup among those ok accepts.
func (p *planner) commitment(sup *supState, ok func(standards.Standard) bool) *cmState {
	if ok == nil {
		ok = func(standards.Standard) bool { return true }
	}
	for i, pair := range sup.pairs {
		std, found := standards.Lookup(pair[1])
		if found && ok(std) {
			sup.pairs = slices.Delete(sup.pairs, i, i+1)
			return &cmState{sup: sup, std: std, product: pair[0], productVersion: sup.versions[pair[0]]}
		}
	}
	// Every natural pairing is taken: commit a product to any fitting standard.
	var fits []standards.Standard
	for _, std := range standards.All() {
		if ok(std) {
			fits = append(fits, std)
		}
	}
	product := sup.products[p.rng.IntN(len(sup.products))]
	return &cmState{sup: sup, std: fits[p.rng.IntN(len(fits))], product: product, productVersion: sup.versions[product]}
}

func nonClinical(s standards.Standard) bool { return !s.ClinicalSafety }
func clinical(s standards.Standard) bool    { return s.ClinicalSafety }

// history plans a supplier's two years according to its part.
func (p *planner) history(sup *supState) {
	S, E := p.first, p.last
	any := func() *cmState { return p.commitment(sup, nil) }
	switch sup.profile {
	case profileGood:
		for range p.n(4, 7) {
			p.metEarly(any())
		}
		for range p.n(2, 4) {
			p.future(any())
		}
		p.late(any(), days(S, 100), days(E, -130), lateRemediated)
		if p.chance(50) {
			p.late(any(), days(S, 100), days(E, -130), lateRemediated)
		}
		if p.chance(50) {
			p.late(any(), days(S, 100), days(E, -150), lateLevel1)
		}
		p.recheck(any(), days(S, 200), days(E, -120), p.badOutcome(), disputeUpheld, false)
		if p.chance(50) {
			p.withdrawEarly(any())
		}
	case profileApproaching:
		for range p.n(4, 6) {
			p.metEarly(any())
		}
		for range p.n(1, 3) {
			p.future(any())
		}
		p.late(any(), days(S, 100), days(E, -130), lateRemediated)
		p.recheck(any(), days(S, 200), days(E, -120), p.badOutcome(), disputeRejected, false)
		if p.chance(50) {
			p.withdrawEarly(any())
		}
		// Ends with an open minor breach under an agreed plan not yet due.
		p.recheck(p.commitment(sup, nonClinical), days(E, -40), days(E, -22), "partially_conformant", disputeNone, true)
	case profileRequiresImprovement:
		for range p.n(3, 5) {
			p.metEarly(any())
		}
		for range p.n(1, 2) {
			p.future(any())
		}
		// A troubled first year: three breaches within twelve months open
		// a disinvestment review, closed a few weeks later.
		p.late(any(), days(S, 100), days(S, 400), lateLevel1)
		p.late(any(), days(S, 100), days(S, 400), lateRemediated)
		mode := disputeNone
		if sup.variant == 2 {
			mode = disputeRejected
		}
		p.recheck(any(), days(S, 200), days(S, 400), p.badOutcome(), mode, false)
		p.withdrawEarly(any())
		switch sup.variant {
		case 0: // a missed target, never assessed, no plan: level 1 and open
			p.late(any(), days(E, -120), days(E, -50), lateNeverAssessed)
		case 1: // a commitment withdrawn after its target date (rule R6)
			p.withdrawLate(any())
		default: // an open minor breach of a clinical-safety standard caps the rating
			p.recheck(p.commitment(sup, clinical), days(E, -40), days(E, -22), "partially_conformant", disputeNone, true)
		}
	case profileInadequate:
		for range p.n(2, 4) {
			p.metEarly(any())
		}
		p.future(any())
		p.late(any(), days(S, 100), days(S, 400), lateRemediated)
		p.late(any(), days(S, 100), days(S, 400), lateLevel2Recovered)
		p.recheck(any(), days(S, 200), days(S, 400), p.badOutcome(), disputeRejected, false)
		switch sup.variant {
		case 0: // a plan whose due date passed: level 2, still open
			p.late(any(), days(E, -230), days(E, -140), lateLevel2Open)
		case 1: // three missed targets left open
			for range 3 {
				p.late(any(), days(E, -200), days(E, -45), lateNeverAssessed)
			}
		default:
			p.late(any(), days(E, -230), days(E, -140), lateLevel2Open)
			p.late(any(), days(E, -120), days(E, -50), lateNeverAssessed)
		}
	}
}

func (p *planner) badOutcome() string {
	if p.chance(50) {
		return "partially_conformant"
	}
	return "non_conformant"
}

// made schedules the commitment some weeks or months before first, the
// first thing that happens to it.
func (p *planner) made(cm *cmState, first time.Time) {
	lo := maxT(days(cm.sup.reg, 1), days(first, -420))
	hi := days(first, -14)
	p.at(p.dayIn(lo, hi), func(s *seeder) error { return s.commit(cm) })
}

// assess schedules an assessment of cm on day d.
func (p *planner) assess(cm *cmState, d time.Time, outcome string, optional bool) {
	ref := fmt.Sprintf("%s-%d-%04d", evidencePrefix[cm.std.ID], d.Year(), p.n(1, 9999))
	who := p.assessor(cm.std)
	by := p.n(0, len(commercialUsers)-1)
	run := func(s *seeder) error { return s.assess(cm, outcome, ref, who, by) }
	if optional {
		p.optional(d, run)
		return
	}
	p.at(d, run)
}

func (p *planner) assessor(std standards.Standard) string {
	switch {
	case std.ClinicalSafety:
		return assessors[1]
	case std.ID == "WCAG22-AA":
		return assessors[4]
	case std.ID == "CE-PLUS" || std.ID == "ISO27001":
		return assessors[5]
	case std.ID == "DSPT":
		return assessors[2]
	case std.ID == "FHIR-R4" || std.ID == "FHIR-R4-UKCORE" || std.ID == "IHE-XDSB" || std.ID == "GPCONNECT":
		return assessors[3]
	}
	return assessors[p.rng.IntN(len(assessors))]
}

// plan schedules agreeing a remediation plan, due on due, for the open
// breach cm has when the step runs.
func (p *planner) plan(cm *cmState, on, due time.Time) {
	summary := p.pick(planSummaries)
	by := p.n(0, len(commercialUsers)-1)
	p.at(on, func(s *seeder) error { return s.agreePlan(cm, due, summary, by) })
}

// metEarly: assessed conformant before the target date (sometimes after an
// "at risk" finding), sometimes re-certified a year on.
func (p *planner) metEarly(cm *cmState) {
	S, E := p.first, p.last
	c := p.dayIn(days(S, 75), days(E, -8))
	cm.target = p.targetIn(days(c, 7), days(c, 100))
	first := c
	if lo, hi := maxT(days(c, -90), days(S, 40)), days(c, -20); !hi.Before(lo) && p.chance(35) {
		first = p.dayIn(lo, hi)
		p.assess(cm, first, p.badOutcome(), false)
	}
	p.made(cm, first)
	p.assess(cm, c, "conformant", false)
	if lo := days(c, 330); p.chance(50) && lo.Before(E) { // re-certified about a year on
		p.assess(cm, p.dayIn(lo, minT(days(c, 400), days(E, -1))), "conformant", true)
	}
}

// future: a target date after the end; on track, at risk or already met.
func (p *planner) future(cm *cmState) {
	E := p.last
	cm.target = p.targetIn(days(E, 30), days(E, 270))
	m := p.dayIn(maxT(days(cm.sup.reg, 1), days(E, -540)), days(E, -30))
	p.at(m, func(s *seeder) error { return s.commit(cm) })
	switch {
	case p.chance(30):
		p.assess(cm, p.dayIn(days(m, 20), days(E, -6)), "partially_conformant", false)
	case p.chance(25):
		p.assess(cm, p.dayIn(days(m, 20), days(E, -6)), "conformant", false)
	}
}

type lateKind int

const (
	lateRemediated      lateKind = iota // plan agreed in time, conformant before it is due
	lateLevel1                          // no plan in 20 working days (level 1), then a plan and a fix
	lateLevel2Recovered                 // plan in time, due date passes (level 2), fixed later
	lateLevel2Open                      // plan in time, due date passes (level 2), still open
	lateNeverAssessed                   // never assessed, no plan: level 1, still open
)

// late: the target date, drawn in [lo, hi], passes without a conformant
// assessment, so rule R1 raises a major breach the day after; what follows
// depends on kind.
func (p *planner) late(cm *cmState, lo, hi time.Time, kind lateKind) {
	S, E := p.first, p.last
	cm.target = p.targetIn(lo, hi)
	t := cm.target
	first := days(t, -30)
	if l, h := maxT(days(t, -120), days(S, 40)), days(t, -10); !h.Before(l) && p.chance(40) {
		first = p.dayIn(l, h)
		p.assess(cm, first, p.badOutcome(), false)
	}
	p.made(cm, first)
	raised := days(t, 1)
	switch kind {
	case lateRemediated:
		on := p.addWD(raised, p.n(3, 15))
		due := p.due(on, p.n(35, 70))
		if p.chance(30) {
			p.assess(cm, p.dayIn(days(on, 5), days(on, 15)), p.badOutcome(), false)
		}
		p.plan(cm, on, due)
		p.assess(cm, p.dayIn(days(on, 21), days(due, -7)), "conformant", false)
	case lateLevel1:
		on := p.addWD(raised, p.n(23, 35))
		due := p.due(on, p.n(35, 60))
		p.plan(cm, on, due)
		p.assess(cm, p.dayIn(days(on, 10), days(due, -7)), "conformant", false)
	case lateLevel2Recovered:
		on := p.addWD(raised, p.n(3, 12))
		due := p.due(on, p.n(20, 40))
		p.plan(cm, on, due)
		if p.chance(50) {
			p.assess(cm, p.dayIn(days(on, 5), days(due, -7)), "non_conformant", false)
		}
		p.assess(cm, p.dayIn(days(due, 10), days(due, 45)), "conformant", false)
	case lateLevel2Open:
		on := p.addWD(raised, p.n(3, 12))
		due := p.due(on, p.n(20, 40))
		p.plan(cm, on, due)
		if p.chance(50) {
			p.assess(cm, p.dayIn(days(on, 5), days(due, -7)), "non_conformant", false)
		}
		if p.chance(50) {
			p.assess(cm, p.dayIn(days(due, 10), days(E, -5)), p.badOutcome(), false)
		}
	case lateNeverAssessed:
		if p.chance(40) {
			p.assess(cm, p.dayIn(days(t, 10), days(E, -5)), "non_conformant", false)
		}
	}
}

type disputeMode int

const (
	disputeNone disputeMode = iota
	disputeUpheld
	disputeRejected
)

// recheck: met before the target date, then re-assessed after it with a
// bad outcome on a working day in [lo, hi], so rule R2 raises a breach
// (major for non_conformant, minor for partially_conformant). The supplier
// may dispute it; unless the dispute is upheld, a plan is agreed and (if
// not keepOpen) a conformant re-assessment closes the breach.
func (p *planner) recheck(cm *cmState, lo, hi time.Time, outcome string, mode disputeMode, keepOpen bool) {
	S, E := p.first, p.last
	a := p.dayIn(lo, hi)
	cm.target = p.targetIn(maxT(days(a, -200), days(S, 90)), days(a, -30))
	c := p.dayIn(maxT(days(cm.target, -60), days(S, 60)), days(cm.target, -7))
	p.made(cm, c)
	p.assess(cm, c, "conformant", false)
	p.assess(cm, a, outcome, false)
	planFrom := a
	switch mode {
	case disputeUpheld, disputeRejected:
		opened := p.addWD(a, p.n(2, 6))
		resolved := p.addWD(opened, p.n(3, 10))
		grounds := p.pick(disputeGrounds)
		p.at(opened, func(s *seeder) error { return s.openDispute(cm, grounds) })
		upheld := mode == disputeUpheld
		reason := p.pick(rejectedReasons)
		if upheld {
			reason = p.pick(upheldReasons)
		}
		by := p.n(0, len(commercialUsers)-1)
		p.at(resolved, func(s *seeder) error { return s.resolveDispute(cm, upheld, reason, by) })
		if upheld {
			return
		}
		planFrom = resolved
	}
	if keepOpen {
		on := p.addWD(planFrom, p.n(3, 8))
		p.plan(cm, on, p.due(E, p.n(30, 90)))
		return
	}
	on := p.addWD(planFrom, p.n(3, 6))
	due := p.due(on, p.n(35, 60))
	p.plan(cm, on, due)
	p.assess(cm, p.dayIn(days(on, 10), days(due, -7)), "conformant", false)
}

// withdrawEarly: withdrawn on or before the target date, at no cost.
func (p *planner) withdrawEarly(cm *cmState) {
	S, E := p.first, p.last
	cm.target = p.targetIn(days(S, 150), days(E, 200))
	w := p.dayIn(maxT(days(S, 60), days(cm.target, -200)), minT(days(cm.target, -7), days(E, -3)))
	first := w
	if lo, hi := maxT(days(w, -120), days(S, 40)), days(w, -15); !hi.Before(lo) && p.chance(40) {
		first = p.dayIn(lo, hi)
		p.assess(cm, first, p.badOutcome(), false)
	}
	p.made(cm, first)
	reason := p.pick(withdrawReasons)
	p.at(w, func(s *seeder) error { return s.withdraw(cm, reason) })
}

// withdrawLate: met, then withdrawn after the target date, so rule R6
// raises a major breach that nothing can close; a plan is agreed for it.
func (p *planner) withdrawLate(cm *cmState) {
	E := p.last
	cm.target = p.targetIn(days(E, -300), days(E, -150))
	c := p.dayIn(days(cm.target, -60), days(cm.target, -7))
	p.made(cm, c)
	p.assess(cm, c, "conformant", false)
	w := p.dayIn(days(cm.target, 20), days(E, -60))
	reason := p.pick(lateWithdrawReasons)
	p.at(w, func(s *seeder) error { return s.withdraw(cm, reason) })
	on := p.addWD(w, p.n(3, 10))
	p.plan(cm, on, p.due(E, p.n(30, 90)))
}
