package policy_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/policy"
	"github.com/cutover-dev/cutover/internal/window"
)

// The example trading policy, resolved for two rollouts and compiled by
// the engine's own window package, opens and closes at the right instants:
// New York wall-clock hours on both sides of the switch to daylight-saving
// time (Sunday 2026-03-08), and never on an NYSE holiday from its file.
func TestTradingWindowAcrossDST(t *testing.T) {
	set, err := policy.Load(filepath.Join("..", "..", "examples", "policies", "trading.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	compile := func(urgency, body string) *window.Window {
		t.Helper()
		s, err := set.Resolve("hft-pricer", rolloutSpec(t, base+"urgency: "+urgency+"\n"+body))
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		w, err := window.Compile(s.GetWindow())
		if err != nil {
			t.Fatalf("compile %v: %v", s.GetWindow(), err)
		}
		return w
	}
	plain := compile("medium", plainCanary+microGates)
	careful := compile("high", shadowCanary+microGates)

	for _, tc := range []struct {
		at            string // UTC
		what          string
		plain, shadow bool   // open for each
		why           string // the plain canary's reason when closed
	}{
		{"2026-03-06T14:00:00Z", "Fri 09:00 EST, before the open", true, true, ""},
		{"2026-03-06T14:30:00Z", "Fri 09:30 EST, the open", false, true, "outside the allowed hours"},
		{"2026-03-06T15:00:00Z", "Fri 10:00 EST, market hours", false, true, "outside the allowed hours"},
		{"2026-03-06T21:00:00Z", "Fri 16:00 EST, the close", true, true, ""},
		{"2026-03-08T07:30:00Z", "Sun 03:30 EDT, just after the clocks went forward", true, true, ""},
		{"2026-03-09T13:15:00Z", "Mon 09:15 EDT, before the open", true, true, ""},
		{"2026-03-09T14:00:00Z", "Mon 10:00 EDT, market hours (09:00 in EST terms)", false, true, "outside the allowed hours"},
		{"2026-03-09T19:59:00Z", "Mon 15:59 EDT, market hours (14:59 in EST terms)", false, true, "outside the allowed hours"},
		{"2026-03-09T20:00:00Z", "Mon 16:00 EDT, the close", true, true, ""},
		{"2026-04-03T00:00:00Z", "Thu 2026-04-02 20:00 EDT, after hours (already Good Friday in UTC)", true, true, ""},
		{"2026-04-03T04:30:00Z", "Good Friday 00:30 EDT, from nyse-holidays-2026.txt", false, false, "holiday 2026-04-03"},
		{"2026-04-03T16:00:00Z", "Good Friday 12:00 EDT", false, false, "holiday 2026-04-03"},
		{"2026-04-03T22:00:00Z", "Good Friday 18:00 EDT", false, false, "holiday 2026-04-03"},
		{"2026-11-26T15:00:00Z", "Thanksgiving 10:00 EST", false, false, "holiday 2026-11-26"},
		{"2026-12-31T20:00:00Z", "Thu 2026-12-31 15:00 EST, the year-end freeze", false, false, "freeze (year end)"},
	} {
		at, err := time.Parse(time.RFC3339, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		why, closed := plain.Closed(at)
		if !closed != tc.plain || (closed && !strings.Contains(why, tc.why)) {
			t.Errorf("%s (%s): medium plain canary closed=%v (%q), want open=%v (%q)", tc.what, tc.at, closed, why, tc.plain, tc.why)
		}
		if careful.Open(at) != tc.shadow {
			t.Errorf("%s (%s): high shadow-first canary open=%v, want %v", tc.what, tc.at, careful.Open(at), tc.shadow)
		}
	}

	// Waiting in Monday's session, the plain canary moves at the close.
	next, ok := plain.NextOpen(time.Date(2026, 3, 9, 14, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 3, 9, 20, 0, 0, 0, time.UTC); !ok || !next.Equal(want) {
		t.Errorf("NextOpen from Mon 10:00 EDT = %v, %v; want %v (16:00 EDT)", next, ok, want)
	}
	// On Good Friday it waits for the weekend.
	next, ok = plain.NextOpen(time.Date(2026, 4, 3, 16, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 4, 4, 4, 0, 0, 0, time.UTC); !ok || !next.Equal(want) {
		t.Errorf("NextOpen on Good Friday = %v, %v; want %v (Sat 00:00 EDT)", next, ok, want)
	}
}
