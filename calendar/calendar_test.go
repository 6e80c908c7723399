package calendar_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/supplier-accountability/sal/calendar"
)

func england(t *testing.T) *calendar.Calendar {
	t.Helper()
	c, err := calendar.England()
	if err != nil {
		t.Fatalf("England() error: %v", err)
	}
	return c
}

func mustDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEnglandYears(t *testing.T) {
	c := england(t)
	if c.FirstYear() != 2024 || c.LastYear() != 2028 {
		t.Errorf("years = %d-%d, want 2024-2028", c.FirstYear(), c.LastYear())
	}
	again := england(t)
	if again != c {
		t.Error("England() parsed the embedded data twice")
	}
}

func TestIsWorkingDay(t *testing.T) {
	c := england(t)
	tests := []struct {
		date string
		want bool
	}{
		{"2025-01-08", true},  // ordinary Wednesday
		{"2025-01-11", false}, // Saturday
		{"2025-01-12", false}, // Sunday
		{"2027-03-26", false}, // Good Friday
		{"2027-03-29", false}, // Easter Monday
		{"2027-12-24", true},  // Christmas Eve is not a bank holiday
		{"2027-12-25", false}, // Christmas Day, Saturday
		{"2027-12-27", false}, // Christmas Day (substitute day)
		{"2027-12-28", false}, // Boxing Day (substitute day)
		{"2027-12-29", true},
		{"2026-12-28", false}, // Boxing Day (substitute day)
		{"2028-01-03", false}, // New Year's Day (substitute day)
		{"2024-01-01", false}, // first day covered, a bank holiday
		{"2024-01-02", true},
		{"2028-12-29", true}, // last working day covered
		{"2028-12-31", false},
	}
	for _, tt := range tests {
		got, err := c.IsWorkingDay(mustDate(t, tt.date))
		if err != nil || got != tt.want {
			t.Errorf("IsWorkingDay(%s) = %v, %v; want %v, nil", tt.date, got, err, tt.want)
		}
	}
}

func TestIsWorkingDayOutOfRange(t *testing.T) {
	c := england(t)
	tests := []struct {
		date, msg string
	}{
		{"2031-01-02", "calendar: 2031-01-02 is outside the bank-holiday data (2024-2028)"},
		{"2023-12-31", "calendar: 2023-12-31 is outside the bank-holiday data (2024-2028)"},
		{"2029-01-01", "calendar: 2029-01-01 is outside the bank-holiday data (2024-2028)"},
	}
	for _, tt := range tests {
		got, err := c.IsWorkingDay(mustDate(t, tt.date))
		if !errors.Is(err, calendar.ErrOutOfRange) {
			t.Errorf("IsWorkingDay(%s) = %v, %v; want ErrOutOfRange", tt.date, got, err)
			continue
		}
		if err.Error() != tt.msg {
			t.Errorf("IsWorkingDay(%s) error = %q, want %q", tt.date, err, tt.msg)
		}
	}
}

// A date is its year, month and day in its own location; the clock is ignored.
func TestTimeOfDayIgnored(t *testing.T) {
	c := england(t)
	tests := []struct {
		name string
		t    time.Time
		want bool
	}{
		{"late on Good Friday in London", time.Date(2027, 3, 26, 23, 59, 59, 0, calendar.London), false},
		{"early on Good Friday in London", time.Date(2027, 3, 26, 0, 0, 0, 0, calendar.London), false},
		{"Thursday in a zone far east", time.Date(2027, 3, 25, 23, 0, 0, 0, time.FixedZone("UTC+14", 14*3600)), true},
		{"Saturday in a zone far west", time.Date(2027, 3, 27, 1, 0, 0, 0, time.FixedZone("UTC-12", -12*3600)), false},
	}
	for _, tt := range tests {
		got, err := c.IsWorkingDay(tt.t)
		if err != nil || got != tt.want {
			t.Errorf("%s: IsWorkingDay(%v) = %v, %v; want %v, nil", tt.name, tt.t, got, err, tt.want)
		}
	}
}

func TestAddWorkingDays(t *testing.T) {
	c := england(t)
	tests := []struct {
		name string
		from string
		n    int
		want string
	}{
		{"n=0 on a working day", "2025-01-08", 0, "2025-01-08"},
		{"n=0 on a Saturday", "2025-01-11", 0, "2025-01-11"},
		{"n=0 on a bank holiday", "2027-03-26", 0, "2027-03-26"},
		{"n=0 outside the data", "2031-01-02", 0, "2031-01-02"},
		{"midweek", "2025-01-08", 2, "2025-01-10"},
		{"Friday to Monday", "2025-01-10", 1, "2025-01-13"},
		{"from a Saturday", "2025-01-11", 1, "2025-01-13"},
		{"from a Sunday", "2025-01-12", 5, "2025-01-17"},
		{"across a weekend", "2025-01-08", 10, "2025-01-22"},
		{"across Good Friday and Easter Monday", "2027-03-22", 10, "2027-04-07"},
		{"Thursday before Easter", "2027-03-25", 1, "2027-03-30"},
		{"from Good Friday", "2027-03-26", 1, "2027-03-30"},
		{"Christmas 2027 substitute days", "2027-12-24", 1, "2027-12-29"},
		{"Christmas 2026, Boxing Day substitute", "2026-12-24", 1, "2026-12-29"},
		{"New Year 2028 substitute day", "2027-12-31", 1, "2028-01-04"},
		{"from the day before the data; first day covered is a holiday", "2023-12-31", 1, "2024-01-02"},
		{"last working day covered", "2028-12-28", 1, "2028-12-29"},
		{"20 working days across May holidays", "2026-04-27", 20, "2026-05-27"},
	}
	for _, tt := range tests {
		got, err := c.AddWorkingDays(mustDate(t, tt.from), tt.n)
		if err != nil {
			t.Errorf("%s: AddWorkingDays(%s, %d) error: %v", tt.name, tt.from, tt.n, err)
			continue
		}
		if s := got.Format(calendar.DateLayout); s != tt.want {
			t.Errorf("%s: AddWorkingDays(%s, %d) = %s, want %s", tt.name, tt.from, tt.n, s, tt.want)
		}
	}
}

func TestAddWorkingDaysErrors(t *testing.T) {
	c := england(t)
	tests := []struct {
		name     string
		from     string
		n        int
		outRange bool
		msg      string
	}{
		{"runs past the data", "2028-12-29", 1, true, "calendar: 2029-01-01 is outside the bank-holiday data (2024-2028)"},
		{"far past the data", "2028-06-01", 1000, true, "calendar: 2029-01-01 is outside the bank-holiday data (2024-2028)"},
		{"starts after the data", "2031-01-01", 1, true, "calendar: 2031-01-02 is outside the bank-holiday data (2024-2028)"},
		{"starts well before the data", "2023-06-01", 1, true, "calendar: 2023-06-02 is outside the bank-holiday data (2024-2028)"},
		{"weekend before the data is not known either", "2023-12-29", 1, true, "calendar: 2023-12-30 is outside the bank-holiday data (2024-2028)"},
		{"negative n", "2025-01-08", -1, false, "calendar: cannot add -1 working days: must not be negative"},
	}
	for _, tt := range tests {
		got, err := c.AddWorkingDays(mustDate(t, tt.from), tt.n)
		if err == nil {
			t.Errorf("%s: AddWorkingDays(%s, %d) = %v, want error", tt.name, tt.from, tt.n, got)
			continue
		}
		if errors.Is(err, calendar.ErrOutOfRange) != tt.outRange {
			t.Errorf("%s: errors.Is(%v, ErrOutOfRange) = %v, want %v", tt.name, err, !tt.outRange, tt.outRange)
		}
		if err.Error() != tt.msg {
			t.Errorf("%s: error = %q, want %q", tt.name, err, tt.msg)
		}
	}
}

// The result keeps the location and clock of d, also across a change of
// British Summer Time (29 March 2026).
func TestAddWorkingDaysKeepsLocation(t *testing.T) {
	c := england(t)
	from := time.Date(2026, 3, 27, 17, 30, 0, 0, calendar.London)
	got, err := c.AddWorkingDays(from, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 3, 30, 17, 30, 0, 0, calendar.London)
	if !got.Equal(want) || got.Location() != calendar.London {
		t.Errorf("AddWorkingDays(%v, 1) = %v, want %v", from, got, want)
	}
}

func TestWorkingDaysBetween(t *testing.T) {
	c := england(t)
	tests := []struct {
		name     string
		from, to string
		want     int
	}{
		{"same day", "2025-01-08", "2025-01-08", 0},
		{"to before from", "2025-01-10", "2025-01-08", 0},
		{"to before from, both outside the data", "2031-01-10", "2031-01-08", 0},
		{"next day", "2025-01-08", "2025-01-09", 1},
		{"Friday to Monday", "2025-01-10", "2025-01-13", 1},
		{"Friday to Sunday", "2025-01-10", "2025-01-12", 0},
		{"Saturday to Monday", "2025-01-11", "2025-01-13", 1},
		{"across Easter 2027", "2027-03-22", "2027-04-07", 10},
		{"to is a holiday", "2027-03-22", "2027-03-29", 3},
		{"Christmas 2027", "2027-12-24", "2027-12-31", 3},
		{"from before the data", "2023-12-31", "2024-01-02", 1},
		{"whole of 2025", "2024-12-31", "2025-12-31", 253},
		{"last day covered", "2028-12-28", "2028-12-31", 1},
	}
	for _, tt := range tests {
		got, err := c.WorkingDaysBetween(mustDate(t, tt.from), mustDate(t, tt.to))
		if err != nil || got != tt.want {
			t.Errorf("%s: WorkingDaysBetween(%s, %s) = %d, %v; want %d, nil", tt.name, tt.from, tt.to, got, err, tt.want)
		}
	}
}

func TestWorkingDaysBetweenOutOfRange(t *testing.T) {
	c := england(t)
	tests := []struct {
		from, to, msg string
	}{
		{"2028-12-01", "2029-01-05", "calendar: 2029-01-05 is outside the bank-holiday data (2024-2028)"},
		{"2023-12-30", "2024-01-05", "calendar: 2023-12-31 is outside the bank-holiday data (2024-2028)"},
		{"2023-06-01", "2031-01-01", "calendar: 2023-06-02 is outside the bank-holiday data (2024-2028)"},
	}
	for _, tt := range tests {
		got, err := c.WorkingDaysBetween(mustDate(t, tt.from), mustDate(t, tt.to))
		if !errors.Is(err, calendar.ErrOutOfRange) {
			t.Errorf("WorkingDaysBetween(%s, %s) = %d, %v; want ErrOutOfRange", tt.from, tt.to, got, err)
			continue
		}
		if err.Error() != tt.msg {
			t.Errorf("WorkingDaysBetween(%s, %s) error = %q, want %q", tt.from, tt.to, err, tt.msg)
		}
	}
}

// Counting back what was added gives n, from every date covered.
func TestAddThenCount(t *testing.T) {
	c := england(t)
	for d := mustDate(t, "2024-01-01"); d.Year() <= 2028; d = d.AddDate(0, 0, 1) {
		for n := 0; n <= 25; n++ {
			end, err := c.AddWorkingDays(d, n)
			if errors.Is(err, calendar.ErrOutOfRange) {
				break
			}
			if err != nil {
				t.Fatalf("AddWorkingDays(%v, %d): %v", d, n, err)
			}
			got, err := c.WorkingDaysBetween(d, end)
			if err != nil || got != n {
				t.Fatalf("WorkingDaysBetween(%v, AddWorkingDays(_, %d) = %v) = %d, %v", d, n, end, got, err)
			}
			if ok, _ := c.IsWorkingDay(end); n > 0 && !ok {
				t.Fatalf("AddWorkingDays(%v, %d) = %v, not a working day", d, n, end)
			}
		}
	}
}

func TestParse(t *testing.T) {
	const data = `# test data
2030-01-01 New Year's Day

  2031-01-01   New Year's Day  
2031-05-05 Early May bank holiday
`
	c, err := calendar.Parse(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if c.FirstYear() != 2030 || c.LastYear() != 2031 {
		t.Errorf("years = %d-%d, want 2030-2031", c.FirstYear(), c.LastYear())
	}
	for date, want := range map[string]bool{"2031-01-01": false, "2031-01-02": true, "2031-05-05": false, "2030-05-06": true} {
		if got, err := c.IsWorkingDay(mustDate(t, date)); err != nil || got != want {
			t.Errorf("IsWorkingDay(%s) = %v, %v; want %v, nil", date, got, err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data, msg string
	}{
		{"malformed date", "2025-01-01 New Year's Day\n2025-13-01 Nonsense\n",
			`calendar: line 2: invalid date "2025-13-01", want YYYY-MM-DD: parsing time "2025-13-01": month out of range`},
		{"single-digit month", "# c\n2025-1-01 New Year's Day\n",
			`calendar: line 2: invalid date "2025-1-01", want YYYY-MM-DD: parsing time "2025-1-01" as "2006-01-02": cannot parse "1-01" as "01"`},
		{"no name", "2025-01-01\n", "calendar: line 1: holiday 2025-01-01 has no name"},
		{"name only spaces", "2025-01-01   \t\n", "calendar: line 1: holiday 2025-01-01 has no name"},
		{"on a weekend", "2022-12-25 Christmas Day\n",
			"calendar: line 1: holiday 2022-12-25 (Christmas Day) falls on a Sunday; list its substitute day"},
		{"duplicate", "2025-12-25 Christmas Day\n2025-12-25 Christmas again\n",
			"calendar: line 2: holiday 2025-12-25 (Christmas again) already listed as Christmas Day"},
		{"empty", "# nothing here\n\n", "calendar: no holidays listed"},
		{"missing year", "2025-01-01 New Year's Day\n2027-01-01 New Year's Day\n",
			"calendar: no holidays listed for 2026 (between 2025 and 2027)"},
	}
	for _, tt := range tests {
		c, err := calendar.Parse(strings.NewReader(tt.data))
		if err == nil {
			t.Errorf("%s: Parse = %+v, want error", tt.name, c)
			continue
		}
		if err.Error() != tt.msg {
			t.Errorf("%s: Parse error = %q, want %q", tt.name, err, tt.msg)
		}
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := calendar.Parse(errReader{boom})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "calendar: ") {
		t.Errorf("Parse(failing reader) error = %v, want a calendar error wrapping %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseDate(t *testing.T) {
	got, err := calendar.ParseDate("2027-03-26")
	if want := time.Date(2027, 3, 26, 0, 0, 0, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("ParseDate(2027-03-26) = %v, %v; want %v, nil", got, err, want)
	}
	for _, s := range []string{"", "2027-02-29", "27-03-26", "2027/03/26", "2027-03-26T00:00:00Z", " 2027-03-26"} {
		_, err := calendar.ParseDate(s)
		var pe *time.ParseError
		if err == nil || !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "calendar: invalid date ") {
			t.Errorf("ParseDate(%q) error = %v, want a calendar error wrapping *time.ParseError", s, err)
		}
	}
}
