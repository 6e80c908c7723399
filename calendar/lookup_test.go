package calendar

import (
	"testing"
	"time"
)

// walkAddWorkingDays is AddWorkingDays as a walk day by day: the
// definition the lookup tables must agree with.
func walkAddWorkingDays(c *Calendar, d time.Time, n int) (time.Time, error) {
	day, days := dateOf(d), 0
	for n > 0 {
		day, days = day.next(), days+1
		working, err := c.isWorkingDay(day)
		if err != nil {
			return time.Time{}, err
		}
		if working {
			n--
		}
	}
	return d.AddDate(0, 0, days), nil
}

// walkWorkingDaysBetween is WorkingDaysBetween as a walk day by day.
func walkWorkingDaysBetween(c *Calendar, from, to time.Time) (int, error) {
	start, end := dateOf(from).next(), dateOf(to)
	if end.before(start) {
		return 0, nil
	}
	for _, d := range []date{start, end} {
		if _, err := c.isWorkingDay(d); err != nil {
			return 0, err
		}
	}
	count := 0
	for d := start; !end.before(d); d = d.next() {
		if working, _ := c.isWorkingDay(d); working {
			count++
		}
	}
	return count, nil
}

// TestLookupsAgreeWithWalkingDayByDay: for every start date from a year
// before the data to a year after it, and every count up to 70 working
// days, AddWorkingDays gives the date (or the error, word for word) that
// walking the calendar day by day gives; WorkingDaysBetween likewise for
// every span up to 100 days.
func TestLookupsAgreeWithWalkingDayByDay(t *testing.T) {
	c, err := England()
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(c.FirstYear()-1, time.January, 1, 14, 30, 0, 0, London)
	to := time.Date(c.LastYear()+1, time.December, 31, 0, 0, 0, 0, London)
	checked := 0
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		for n := 0; n <= 70; n++ {
			got, gerr := c.AddWorkingDays(d, n)
			want, werr := walkAddWorkingDays(c, d, n)
			if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) || !got.Equal(want) || got.Location() != want.Location() {
				t.Fatalf("AddWorkingDays(%s, %d) = %v, %v; walking gives %v, %v", d.Format(DateLayout), n, got, gerr, want, werr)
			}
			checked++
		}
		for span := -2; span <= 100; span += 3 {
			end := d.AddDate(0, 0, span)
			got, gerr := c.WorkingDaysBetween(d, end)
			want, werr := walkWorkingDaysBetween(c, d, end)
			if got != want || (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
				t.Fatalf("WorkingDaysBetween(%s, %s) = %d, %v; walking gives %d, %v", d.Format(DateLayout), end.Format(DateLayout), got, gerr, want, werr)
			}
		}
	}
	if checked < 100_000 {
		t.Fatalf("only %d sums checked", checked)
	}
}

func BenchmarkAddWorkingDays(b *testing.B) {
	c, err := England()
	if err != nil {
		b.Fatal(err)
	}
	d := time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC)
	b.Run("lookup", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.AddWorkingDays(d, 20); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if _, err := walkAddWorkingDays(c, d, 20); err != nil {
				b.Fatal(err)
			}
		}
	})
}
