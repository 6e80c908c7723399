package calendar

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

//go:embed holidays_england.txt
var englandData string

// england parses the embedded data once; a Calendar is never modified after
// Parse, so every caller can share it.
var england = sync.OnceValues(func() (*Calendar, error) {
	return Parse(strings.NewReader(englandData))
})

// ErrOutOfRange is wrapped by every error about a date outside the years a
// Calendar has bank-holiday data for. Test for it with errors.Is.
var ErrOutOfRange = errors.New("calendar: date outside the bank-holiday data")

// A Calendar knows which dates are working days: Monday to Friday, except
// bank holidays. It answers only for the years its data covers and returns an
// error wrapping ErrOutOfRange for any other date rather than guess.
//
// Its methods take time.Time values but use only their year, month and day
// in their own location; the clock time is ignored. To ask about an instant,
// convert it to London first (t.In(London)).
//
// A Calendar is immutable and safe for concurrent use.
type Calendar struct {
	holidays    map[date]string // date -> holiday name
	first, last int             // years covered, inclusive

	// Every day covered, numbered from 1 January of the first year (day
	// 0): working[i] counts the working days among days 0 to i, and
	// nth[k] is the day number of working day k+1. Date arithmetic is
	// then two lookups, not a walk day by day (a scorecard's escalation
	// clocks ask for dozens of working-day sums).
	base    time.Time // midnight UTC, 1 January of the first year
	working []int32
	nth     []int32
}

// England returns the calendar of bank holidays in England and Wales, parsed
// from the data embedded in the binary (holidays_england.txt).
func England() (*Calendar, error) {
	return england()
}

// Parse reads bank holidays, one "YYYY-MM-DD name" per line; blank lines and
// lines starting with # are ignored. The years covered run from the earliest
// holiday's year to the latest's, and every year in between must list at
// least one holiday. A holiday may not fall on a weekend (list the substitute
// day instead) or appear twice.
func Parse(r io.Reader) (*Calendar, error) {
	c := &Calendar{holidays: make(map[date]string)}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := c.addLine(line); err != nil {
			return nil, fmt.Errorf("calendar: line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("calendar: reading holidays: %w", err)
	}
	if err := c.setYears(); err != nil {
		return nil, err
	}
	c.count()
	return c, nil
}

// count numbers the days covered and their working days.
func (c *Calendar) count() {
	c.base = time.Date(c.first, time.January, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(c.last+1, time.January, 1, 0, 0, 0, 0, time.UTC)
	days := int(end.Sub(c.base).Hours() / 24)
	c.working = make([]int32, days)
	var k int32
	for i := range days {
		d := dateOf(c.base.AddDate(0, 0, i))
		if _, holiday := c.holidays[d]; !holiday && !d.weekend() {
			c.nth = append(c.nth, int32(i))
			k++
		}
		c.working[i] = k
	}
}

// dayNumber is d's number from 1 January of the first year covered
// (negative before it, len(c.working) or more after the last).
func (c *Calendar) dayNumber(d date) int {
	return int(d.time().Sub(c.base).Hours() / 24)
}

// dateAt is the date of day number i.
func (c *Calendar) dateAt(i int) date {
	return dateOf(c.base.AddDate(0, 0, i))
}

// workingUpTo counts the working days from the first day covered up to
// and including day i (which must be covered, or -1).
func (c *Calendar) workingUpTo(i int) int {
	if i < 0 {
		return 0
	}
	return int(c.working[i])
}

// addLine records the holiday on one non-comment line.
func (c *Calendar) addLine(line string) error {
	field, name, _ := strings.Cut(line, " ")
	name = strings.TrimSpace(name)
	t, err := parseDate(field)
	if err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("holiday %s has no name", field)
	}
	d := dateOf(t)
	if d.weekend() {
		return fmt.Errorf("holiday %s (%s) falls on a %s; list its substitute day", field, name, t.Weekday())
	}
	if prev, dup := c.holidays[d]; dup {
		return fmt.Errorf("holiday %s (%s) already listed as %s", field, name, prev)
	}
	c.holidays[d] = name
	return nil
}

// setYears works out the years covered and checks none is missing.
func (c *Calendar) setYears() error {
	if len(c.holidays) == 0 {
		return errors.New("calendar: no holidays listed")
	}
	perYear := make(map[int]int)
	c.first, c.last = 1<<31-1, -1<<31
	for d := range c.holidays {
		perYear[d.year]++
		c.first = min(c.first, d.year)
		c.last = max(c.last, d.year)
	}
	for y := c.first; y <= c.last; y++ {
		if perYear[y] == 0 {
			return fmt.Errorf("calendar: no holidays listed for %d (between %d and %d)", y, c.first, c.last)
		}
	}
	return nil
}

// FirstYear is the first year the calendar has bank-holiday data for.
func (c *Calendar) FirstYear() int { return c.first }

// LastYear is the last year the calendar has bank-holiday data for.
func (c *Calendar) LastYear() int { return c.last }

// IsWorkingDay reports whether the date of d is a working day: a weekday that
// is not a bank holiday. It returns an error wrapping ErrOutOfRange if the
// date is outside the years covered.
func (c *Calendar) IsWorkingDay(d time.Time) (bool, error) {
	return c.isWorkingDay(dateOf(d))
}

func (c *Calendar) isWorkingDay(d date) (bool, error) {
	if d.year < c.first || d.year > c.last {
		return false, &rangeError{d: d, first: c.first, last: c.last}
	}
	_, holiday := c.holidays[d]
	return !d.weekend() && !holiday, nil
}

// AddWorkingDays returns the date n working days after d. Day d itself is
// not counted, so one working day after a Friday is the next Monday (unless
// that is a bank holiday). Day d need not be a working day, nor within the
// years covered, but every day after it up to the result must be: otherwise
// the error wraps ErrOutOfRange. It is also an error if n is negative.
//
// For n = 0 it returns d unchanged; otherwise the result keeps d's location
// and clock time.
func (c *Calendar) AddWorkingDays(d time.Time, n int) (time.Time, error) {
	if n < 0 {
		return time.Time{}, fmt.Errorf("calendar: cannot add %d working days: must not be negative", n)
	}
	if n == 0 {
		return d, nil
	}
	i := c.dayNumber(dateOf(d))
	if i+1 < 0 || i+1 >= len(c.working) {
		// The first day counted is outside the years covered.
		return time.Time{}, &rangeError{d: c.dateAt(i + 1), first: c.first, last: c.last}
	}
	k := c.workingUpTo(i) + n // the working day wanted, counted from the first covered
	if k > len(c.nth) {
		// It lies beyond the data: the first day after it is where the
		// count runs out.
		return time.Time{}, &rangeError{d: c.dateAt(len(c.working)), first: c.first, last: c.last}
	}
	return d.AddDate(0, 0, int(c.nth[k-1])-i), nil
}

// WorkingDaysBetween counts the working days after the date of from, up to
// and including the date of to: AddWorkingDays(from, n) lands on a date with
// WorkingDaysBetween(from, date) = n. It is 0 if to is on or before from.
//
// It returns an error wrapping ErrOutOfRange if any counted day is outside
// the years covered.
func (c *Calendar) WorkingDaysBetween(from, to time.Time) (int, error) {
	start, end := dateOf(from).next(), dateOf(to)
	if end.before(start) {
		return 0, nil
	}
	// Check both ends, so the error names the nearer missing date.
	for _, d := range []date{start, end} {
		if _, err := c.isWorkingDay(d); err != nil {
			return 0, err
		}
	}
	return c.workingUpTo(c.dayNumber(end)) - c.workingUpTo(c.dayNumber(start)-1), nil
}

// ParseDate parses s as a calendar date in DateLayout (YYYY-MM-DD). The
// result is midnight UTC on that date.
func ParseDate(s string) (time.Time, error) {
	t, err := parseDate(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("calendar: %w", err)
	}
	return t, nil
}

func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid date %q, want YYYY-MM-DD: %w", s, err)
	}
	return t, nil
}

// rangeError is the error for a date outside a calendar's years.
type rangeError struct {
	d           date
	first, last int
}

func (e *rangeError) Error() string {
	return fmt.Sprintf("calendar: %s is outside the bank-holiday data (%d-%d)", e.d, e.first, e.last)
}

func (e *rangeError) Unwrap() error { return ErrOutOfRange }

// date is a calendar date with no time of day or location.
type date struct {
	year  int
	month time.Month
	day   int
}

func dateOf(t time.Time) date {
	y, m, d := t.Date()
	return date{y, m, d}
}

// time is midnight UTC on the date.
func (d date) time() time.Time {
	return time.Date(d.year, d.month, d.day, 0, 0, 0, 0, time.UTC)
}

func (d date) next() date         { return dateOf(d.time().AddDate(0, 0, 1)) }
func (d date) before(e date) bool { return d.time().Before(e.time()) }
func (d date) String() string     { return d.time().Format(DateLayout) }

func (d date) weekend() bool {
	wd := d.time().Weekday()
	return wd == time.Saturday || wd == time.Sunday
}
