package web

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"github.com/supplier-accountability/sal/auth"
	"github.com/supplier-accountability/sal/calendar"
	"github.com/supplier-accountability/sal/ledger"
	"github.com/supplier-accountability/sal/rules"
	"github.com/supplier-accountability/sal/scorecard"
)

// point is a supplier's rating and open breaches at the end of one month.
type point struct {
	Month        string
	Rank         int // 0 Good .. 3 Inadequate; 4 Other
	Label        string
	OpenBreaches int
}

type trendCache struct {
	lastSeq uint64
	points  []point
}

// trend replays a supplier's events and samples the rating at the end of
// each month, up to the moment until (the zero time: now). It is cached
// until the supplier's next event.
func (s *Server) trend(id string, until time.Time) ([]point, error) {
	if until.IsZero() {
		until = s.now()
	}
	seqs, err := s.store.SupplierSeqs(id, 0)
	if err != nil || len(seqs) == 0 {
		return nil, err
	}
	last := seqs[len(seqs)-1]
	today := calendar.Today(until)
	key := id + "|" + until.UTC().Format(time.RFC3339)
	if until.Equal(s.now()) {
		key = id + "|" + today
	}
	s.trendMu.Lock()
	if c, ok := s.trends[key]; ok && c.lastSeq == last {
		s.trendMu.Unlock()
		return c.points, nil
	}
	s.trendMu.Unlock()

	cards := map[string]*scorecard.Card{}
	var pts []point
	var monthEnd time.Time
	sample := func(date string) {
		c := cards[id]
		if c == nil {
			return
		}
		r := rules.Rate(c, date)
		open := 0
		for _, b := range c.Breaches {
			if b.Status == scorecard.BreachOpen {
				open++
			}
		}
		pts = append(pts, point{Month: date[:7], Rank: ratingRank[r.Label], Label: r.Label, OpenBreaches: open})
	}
	for len(seqs) > 0 {
		n := min(len(seqs), 1024)
		es, err := s.store.EntriesAt(seqs[:n])
		if err != nil {
			return nil, err
		}
		seqs = seqs[n:]
		for _, e := range es {
			if e.AppendedAt.After(until) {
				seqs = nil
				break
			}
			day, err := time.Parse(calendar.DateLayout, calendar.Today(e.AppendedAt))
			if err != nil {
				return nil, err
			}
			if monthEnd.IsZero() {
				monthEnd = endOfMonth(day)
			}
			for day.After(monthEnd) {
				sample(monthEnd.Format(calendar.DateLayout))
				monthEnd = endOfMonth(monthEnd.AddDate(0, 0, 1))
			}
			if err := ledger.Project(cards, e); err != nil {
				return nil, err
			}
		}
	}
	end, _ := time.Parse(calendar.DateLayout, today)
	for !monthEnd.After(end) {
		sample(monthEnd.Format(calendar.DateLayout))
		monthEnd = endOfMonth(monthEnd.AddDate(0, 0, 1))
	}
	sample(today)
	if len(pts) > 36 {
		pts = pts[len(pts)-36:]
	}
	s.trendMu.Lock()
	if len(s.trends) >= 1024 {
		clear(s.trends)
	}
	s.trends[key] = trendCache{lastSeq: last, points: pts}
	s.trendMu.Unlock()
	return pts, nil
}

func endOfMonth(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, time.UTC)
}

var rankColour = []string{"#00703c", "#5f7a00", "#b35900", "#b10e1e", "#505a5f"}

// trendSVG draws the rating (as a coloured band, top is Good) and the open
// breaches (as a line) month by month, server-side.
func (s *Server) trendSVG(w http.ResponseWriter, r *http.Request, se *session) {
	id := r.PathValue("supplier")
	if se.p.Role == auth.Supplier && se.p.SupplierID != id {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	at, _, _, err := s.pointInTime(r, se)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pts, err := s.trend(id, at)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write([]byte(trendSVG(pts)))
}

func trendSVG(pts []point) string {
	const W, H, left, top, plotH = 720, 200, 150, 16, 140
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-labelledby="trend-title trend-desc" font-family="DejaVu Sans, Arial, sans-serif">`, W, H)
	b.WriteString(`<title id="trend-title">Rating and open breaches by month</title>`)
	desc := "No history yet."
	if n := len(pts); n > 0 {
		desc = fmt.Sprintf("From %s to %s. Latest: %s with %d open breaches.", pts[0].Month, pts[n-1].Month, pts[n-1].Label, pts[n-1].OpenBreaches)
	}
	fmt.Fprintf(&b, `<desc id="trend-desc">%s</desc>`, html.EscapeString(desc))
	labels := []string{rules.Good, rules.ApproachingTarget, rules.RequiresImprovement, rules.Inadequate}
	for i, l := range labels {
		y := top + i*plotH/4 + plotH/8
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#0b0c0c" dominant-baseline="middle">%s</text>`, left-8, y, html.EscapeString(l))
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#dfe3e6"/>`, left, W-40, y, y)
	}
	if len(pts) == 0 {
		b.WriteString(`</svg>`)
		return b.String()
	}
	maxB := 1
	for _, p := range pts {
		maxB = max(maxB, p.OpenBreaches)
	}
	step := float64(W-40-left) / float64(max(len(pts)-1, 1))
	var line strings.Builder
	for i, p := range pts {
		x := float64(left) + float64(i)*step
		rank := min(p.Rank, 3)
		y := top + rank*plotH/4 + plotH/8
		colour := rankColour[min(p.Rank, 4)]
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%d" r="5" fill="%s"><title>%s: %s, %d open breaches</title></circle>`, x, y, colour, p.Month, html.EscapeString(p.Label), p.OpenBreaches)
		by := float64(top+plotH) - float64(p.OpenBreaches)/float64(maxB)*float64(plotH)
		if i == 0 {
			fmt.Fprintf(&line, "M%.1f %.1f", x, by)
		} else {
			fmt.Fprintf(&line, " L%.1f %.1f", x, by)
		}
		if i == 0 || i == len(pts)-1 || i%6 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#505a5f">%s</text>`, x, top+plotH+18, p.Month)
		}
	}
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#1d70b8" stroke-width="2" stroke-dasharray="5 3"/>`, line.String())
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#1d70b8">dashed: open breaches (max %d)</text>`, W-200, H-4, maxB)
	b.WriteString(`</svg>`)
	return b.String()
}
