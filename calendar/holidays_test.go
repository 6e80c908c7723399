package calendar_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/calendar"
)

// easterSundays are the Easter dates the data was written from.
var easterSundays = map[int]string{
	2024: "2024-03-31",
	2025: "2025-04-20",
	2026: "2026-04-05",
	2027: "2027-03-28",
	2028: "2028-04-16",
}

// computus is Easter Sunday in the Gregorian calendar (the anonymous
// "Meeus/Jones/Butcher" algorithm).
func computus(year int) time.Time {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
}

func TestEasterSundays(t *testing.T) {
	for year, want := range easterSundays {
		got := computus(year)
		if s := got.Format(calendar.DateLayout); s != want || got.Weekday() != time.Sunday {
			t.Errorf("Easter %d: computus gives %s (%s), data written from %s", year, s, got.Weekday(), want)
		}
	}
}

func isWeekend(d time.Time) bool {
	return d.Weekday() == time.Saturday || d.Weekday() == time.Sunday
}

// monday is the first Monday on or after d (step 1) or on or before it (step -1).
func monday(d time.Time, step int) time.Time {
	for d.Weekday() != time.Monday {
		d = d.AddDate(0, 0, step)
	}
	return d
}

// ruleHolidays computes the bank holidays of England and Wales for year from
// the standing rules, keyed by date. It knows nothing of one-off holidays.
func ruleHolidays(t *testing.T, year int) map[string]string {
	t.Helper()
	easter, err := calendar.ParseDate(easterSundays[year])
	if err != nil {
		t.Fatalf("no Easter date for %d: %v", year, err)
	}
	on := func(m time.Month, d int) time.Time { return time.Date(year, m, d, 0, 0, 0, 0, time.UTC) }
	got := make(map[string]string)
	add := func(d time.Time, name string) { got[d.Format(calendar.DateLayout)] = name }

	add(easter.AddDate(0, 0, -2), "Good Friday")
	add(easter.AddDate(0, 0, 1), "Easter Monday")
	add(monday(on(time.May, 1), 1), "Early May bank holiday")
	add(monday(on(time.May, 31), -1), "Spring bank holiday")
	add(monday(on(time.August, 31), -1), "Summer bank holiday")

	// Fixed-date holidays keep their day when it is a weekday. Those on a
	// weekend move, in order, to the next weekday not already a holiday
	// (so Christmas on a Sunday gives Boxing Day on Monday 26 and Christmas
	// Day (substitute day) on Tuesday 27, as GOV.UK lists 2022).
	fixed := []struct {
		date time.Time
		name string
	}{
		{on(time.January, 1), "New Year's Day"},
		{on(time.December, 25), "Christmas Day"},
		{on(time.December, 26), "Boxing Day"},
	}
	for _, f := range fixed {
		if !isWeekend(f.date) {
			add(f.date, f.name)
		}
	}
	for _, f := range fixed {
		if !isWeekend(f.date) {
			continue
		}
		d := f.date
		for isWeekend(d) || got[d.Format(calendar.DateLayout)] != "" {
			d = d.AddDate(0, 0, 1)
		}
		add(d, f.name+" (substitute day)")
	}
	return got
}

// dataFile reads holidays_england.txt directly, without Parse: its "Years
// covered: A-B" header and its holidays by date.
func dataFile(t *testing.T) (first, last int, holidays map[string]string) {
	t.Helper()
	f, err := os.Open("holidays_england.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	holidays = make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# Years covered: "); ok {
			if _, err := fmt.Sscanf(rest, "%d-%d", &first, &last); err != nil {
				t.Fatalf("bad header %q: %v", line, err)
			}
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		date, name, _ := strings.Cut(line, " ")
		if _, dup := holidays[date]; dup {
			t.Errorf("%s listed twice", date)
		}
		holidays[date] = name
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if first == 0 || last == 0 {
		t.Fatal(`holidays_england.txt has no "# Years covered: A-B" header`)
	}
	return first, last, holidays
}

func TestEnglandHeader(t *testing.T) {
	first, last, _ := dataFile(t)
	c := england(t)
	if first != c.FirstYear() || last != c.LastYear() {
		t.Errorf("header says years %d-%d, data covers %d-%d", first, last, c.FirstYear(), c.LastYear())
	}
	if first != 2024 || last != 2028 {
		t.Errorf("header says years %d-%d, want 2024-2028", first, last)
	}
}

// Every listed holiday is a weekday.
func TestEnglandHolidaysAreWeekdays(t *testing.T) {
	_, _, holidays := dataFile(t)
	for date, name := range holidays {
		d, err := calendar.ParseDate(date)
		if err != nil {
			t.Errorf("%s %s: %v", date, name, err)
			continue
		}
		if isWeekend(d) {
			t.Errorf("%s %s is a %s", date, name, d.Weekday())
		}
	}
}

// The file lists exactly the holidays the rules give, with the same names.
func TestEnglandMatchesRules(t *testing.T) {
	first, last, listed := dataFile(t)
	want := make(map[string]string)
	for year := first; year <= last; year++ {
		for date, name := range ruleHolidays(t, year) {
			want[date] = name
		}
	}
	for date, name := range want {
		if got, ok := listed[date]; !ok {
			t.Errorf("missing %s %s", date, name)
		} else if got != name {
			t.Errorf("%s listed as %q, rules give %q", date, got, name)
		}
	}
	for date, name := range listed {
		if _, ok := want[date]; !ok {
			t.Errorf("%s %s is not given by the rules", date, name)
		}
	}
}

// IsWorkingDay agrees with the rules on every day covered.
func TestEnglandWorkingDaysMatchRules(t *testing.T) {
	c := england(t)
	holidays := make(map[string]string)
	for year := c.FirstYear(); year <= c.LastYear(); year++ {
		for date, name := range ruleHolidays(t, year) {
			holidays[date] = name
		}
	}
	days := 0
	for d := time.Date(c.FirstYear(), 1, 1, 0, 0, 0, 0, time.UTC); d.Year() <= c.LastYear(); d = d.AddDate(0, 0, 1) {
		_, holiday := holidays[d.Format(calendar.DateLayout)]
		want := !isWeekend(d) && !holiday
		got, err := c.IsWorkingDay(d)
		if err != nil || got != want {
			t.Errorf("IsWorkingDay(%s, %s) = %v, %v; want %v", d.Format(calendar.DateLayout), d.Weekday(), got, err, want)
		}
		days++
	}
	if days != 366+365+365+365+366 {
		t.Errorf("checked %d days, want every day of 2024-2028", days)
	}
}
