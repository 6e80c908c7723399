// Package calendar answers date questions the way the rules need them:
// calendar dates in England, and working days (weekdays that are not bank
// holidays in England and Wales).
//
// England returns a Calendar built from bank-holiday data embedded in the
// binary (holidays_england.txt, transcribed from GOV.UK). The data covers a
// fixed span of years; asking about a date outside it is an error wrapping
// ErrOutOfRange, never a guess, so the file must be extended before its last
// year runs out.
package calendar

import (
	"time"
	_ "time/tzdata" // images built FROM scratch have no zoneinfo
)

// DateLayout is the format of every calendar date the system records.
const DateLayout = "2006-01-02"

// London is England's time zone.
var London = mustLoad("Europe/London")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("calendar: time zone " + name + ": " + err.Error()) // embedded tzdata: cannot happen
	}
	return loc
}

// Today is the calendar date in England at instant t, as YYYY-MM-DD.
func Today(t time.Time) string {
	return t.In(London).Format(DateLayout)
}
