package calendar_test

import (
	"fmt"

	"github.com/supplier-accountability/sal/calendar"
)

// A supplier may dispute an assessment within 10 working days. Assessed on
// Monday 22 March 2027, the window crosses Good Friday and Easter Monday.
func ExampleCalendar_AddWorkingDays() {
	england, err := calendar.England()
	if err != nil {
		panic(err)
	}
	assessed, err := calendar.ParseDate("2027-03-22")
	if err != nil {
		panic(err)
	}
	deadline, err := england.AddWorkingDays(assessed, 10)
	if err != nil {
		panic(err)
	}
	fmt.Println(deadline.Format(calendar.DateLayout), deadline.Weekday())
	// Output: 2027-04-07 Wednesday
}
