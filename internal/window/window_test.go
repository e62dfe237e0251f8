package window_test

import (
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/window"
)

func mustCompile(t *testing.T, w *cutoverv1.DeploymentWindow) *window.Window {
	t.Helper()
	c, err := window.Compile(w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The trading window: weekdays outside market hours, New York time,
// across the March 2026 change to daylight-saving time (Sunday March 8).
func TestNewYorkOutsideMarketHoursAcrossDST(t *testing.T) {
	w := mustCompile(t, &cutoverv1.DeploymentWindow{TimeZone: "America/New_York",
		Allow:    []*cutoverv1.WindowSpan{{Days: []string{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "16:00", End: "09:30"}},
		Holidays: []string{"2026-12-25"}})
	for _, tt := range []struct {
		at   string
		open bool
	}{
		{"2026-03-06T20:59:00Z", false}, // Fri 15:59 EST: market open
		{"2026-03-06T21:00:00Z", true},  // Fri 16:00 EST
		{"2026-03-07T14:29:00Z", true},  // Sat 09:29 EST: Friday's span
		{"2026-03-07T14:30:00Z", false}, // Sat 09:30
		{"2026-03-09T13:29:00Z", false}, // Mon 09:29 EDT: no span from Sunday
		{"2026-03-09T19:59:00Z", false}, // Mon 15:59 EDT
		{"2026-03-09T20:00:00Z", true},  // Mon 16:00 EDT (an hour earlier in UTC)
		{"2026-03-10T13:29:00Z", true},  // Tue 09:29 EDT: Monday's span
		{"2026-03-10T13:30:00Z", false}, // Tue 09:30 EDT
		{"2026-12-25T22:00:00Z", false}, // Fri 17:00 EST, a holiday
		{"2026-12-25T13:00:00Z", false}, // Fri 08:00 EST: Thursday's span, but the holiday
	} {
		if got := w.Open(at(t, tt.at)); got != tt.open {
			t.Errorf("Open(%s) = %v, want %v", tt.at, got, tt.open)
		}
	}
	for _, tt := range []struct{ from, want string }{
		{"2026-03-07T15:00:00Z", "2026-03-09T20:00:00Z"}, // Sat -> Mon 16:00 EDT
		{"2026-03-06T15:00:00Z", "2026-03-06T21:00:00Z"}, // Fri 10:00 EST -> 16:00 EST
		{"2026-12-25T15:00:00Z", "2026-12-26T05:00:00Z"}, // holiday Friday -> its span resumes at Saturday 00:00 EST
		{"2026-03-06T21:30:00Z", "2026-03-06T21:30:00Z"}, // already open
	} {
		got, ok := w.NextOpen(at(t, tt.from))
		if !ok || !got.Equal(at(t, tt.want)) {
			t.Errorf("NextOpen(%s) = %s %v, want %s", tt.from, got.UTC().Format(time.RFC3339), ok, tt.want)
		}
	}
}

// London office hours across the October 2026 change back to GMT
// (Sunday October 25): 09:00 local is 08:00 UTC before, 09:00 UTC after.
func TestLondonAcrossFallBack(t *testing.T) {
	w := mustCompile(t, &cutoverv1.DeploymentWindow{TimeZone: "Europe/London",
		Allow: []*cutoverv1.WindowSpan{{Days: []string{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "09:00", End: "17:00"}}})
	for _, tt := range []struct {
		at   string
		open bool
	}{
		{"2026-10-23T07:59:00Z", false}, {"2026-10-23T08:00:00Z", true}, {"2026-10-23T15:59:00Z", true}, {"2026-10-23T16:00:00Z", false},
		{"2026-10-26T08:30:00Z", false}, {"2026-10-26T09:00:00Z", true}, {"2026-10-26T16:59:00Z", true}, {"2026-10-26T17:00:00Z", false},
	} {
		if got := w.Open(at(t, tt.at)); got != tt.open {
			t.Errorf("Open(%s) = %v, want %v", tt.at, got, tt.open)
		}
	}
	if got, _ := w.NextOpen(at(t, "2026-10-23T16:00:00Z")); !got.Equal(at(t, "2026-10-26T09:00:00Z")) {
		t.Errorf("NextOpen over the weekend of the change = %s", got.UTC())
	}
	// Spring forward (Sunday March 29 2026, 01:00 -> 02:00 GMT->BST): a
	// span starting in the skipped hour still opens that night.
	night := mustCompile(t, &cutoverv1.DeploymentWindow{TimeZone: "Europe/London",
		Allow: []*cutoverv1.WindowSpan{{Days: []string{"Sun"}, Start: "01:30", End: "03:00"}}})
	got, ok := night.NextOpen(at(t, "2026-03-28T12:00:00Z"))
	if !ok || got.Before(at(t, "2026-03-29T00:59:00Z")) || !got.Before(at(t, "2026-03-29T02:00:00Z")) {
		t.Errorf("span in the skipped hour opens at %s", got.UTC())
	}
}

func TestFreezeAndErrors(t *testing.T) {
	w := mustCompile(t, &cutoverv1.DeploymentWindow{TimeZone: "America/New_York",
		Freezes: []*cutoverv1.FreezePeriod{{Start: "2026-12-31", End: "2027-01-02", Reason: "year end"}}})
	if why, closed := w.Closed(at(t, "2027-01-01T12:00:00Z")); !closed || why != "freeze (year end)" {
		t.Errorf("in the freeze: %q %v", why, closed)
	}
	if got, _ := w.NextOpen(at(t, "2027-01-01T12:00:00Z")); !got.Equal(at(t, "2027-01-02T05:00:00Z")) {
		t.Errorf("after the freeze: %s, want local midnight Jan 2", got.UTC())
	}
	never := mustCompile(t, &cutoverv1.DeploymentWindow{Freezes: []*cutoverv1.FreezePeriod{{Start: "2026-01-01", End: "2030-01-01"}}})
	if _, ok := never.NextOpen(at(t, "2026-06-01T00:00:00Z")); ok {
		t.Error("a window frozen for years opened within the horizon")
	}
	_, err := window.Compile(&cutoverv1.DeploymentWindow{TimeZone: "Mars/Olympus",
		Allow:    []*cutoverv1.WindowSpan{{Days: []string{"Funday"}, Start: "25:00", End: "9"}},
		Freezes:  []*cutoverv1.FreezePeriod{{Start: "2026-02-01", End: "2026-01-01"}, {Start: "soon"}},
		Holidays: []string{"12/25"}})
	for _, want := range []string{
		`timeZone: unknown time zone "Mars/Olympus"`, `allow[0].days[0]: must be Mon`, `allow[0].start: must be a local time HH:MM, got "25:00"`,
		`allow[0].end: must be a local time HH:MM, got "9"`, `freezes[0].end: must be after start 2026-02-01`, `freezes[1].start: must be RFC 3339`,
		`holidays[0]: must be a date YYYY-MM-DD, got "12/25"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile: %v\nwant it to contain %q", err, want)
		}
	}
}
