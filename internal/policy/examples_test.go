package policy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/internal/policy"
	"github.com/cutover-dev/cutover/internal/spec"
)

// examplesDir holds the policies users copy; each must load with the real
// loader, so a change that breaks them fails here first.
var examplesDir = filepath.Join("..", "..", "examples", "policies")

func TestExamplePoliciesLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example policies in %s, want at least 2: %v", len(files), examplesDir, files)
	}
	for _, f := range files {
		if _, err := policy.Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
	set, err := policy.Load(files...)
	if err != nil {
		t.Fatalf("all together: %v", err)
	}
	if got := set.Names(); !slices.Contains(got, "trading") || !slices.Contains(got, "banking") {
		t.Errorf("policies %q, want trading and banking", got)
	}
}

// The trading example carries the seed's numbers: NYSE hours, 5 µs of
// latency impact, a 1 s rollback, and the real 2026 NYSE holidays.
func TestExampleTradingPolicy(t *testing.T) {
	set, err := policy.Load(filepath.Join(examplesDir, "trading.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := set.Get("trading")
	ps := p.GetSpec()
	if ps.GetTimeZone() != "America/New_York" || !ps.GetBreakGlass() {
		t.Errorf("timeZone %q, breakGlass %v; want America/New_York, true", ps.GetTimeZone(), ps.GetBreakGlass())
	}
	var market string
	for _, w := range ps.GetWindows() {
		if w.GetName() == "market-hours" {
			a := w.GetAllow()
			market = a[0].GetStart() + "-" + a[0].GetEnd() + " " + w.GetMaxLatencyImpact() + " " + w.GetRollbackTimeLimit() +
				" " + strings.Join(w.GetAllowedStrategies(), ",")
			if !w.GetRequireShadowFirst() {
				t.Error("market-hours does not require shadow first")
			}
		}
	}
	if want := "09:30-16:00 5us 1s canary"; market != want {
		t.Errorf("market-hours = %q, want %q", market, want)
	}
	data, err := os.ReadFile(filepath.Join(examplesDir, ps.GetHolidaysFile()))
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	for line := range strings.Lines(string(data)) {
		if d, _, _ := strings.Cut(line, "#"); strings.TrimSpace(d) != "" {
			days = append(days, strings.TrimSpace(d))
		}
	}
	nyse2026 := []string{"2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25",
		"2026-06-19", "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25"}
	if !slices.Equal(days, nyse2026) {
		t.Errorf("%s = %q, want %q", ps.GetHolidaysFile(), days, nyse2026)
	}
}

// The banking examples' rollouts (both named core-banking) resolve through
// the banking policy into valid specs with four eyes, pinned artifacts,
// the compliance checks and London business hours.
func TestExampleBankingRollouts(t *testing.T) {
	set, err := policy.Load(filepath.Join(examplesDir, "banking.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"banking-canary.yaml", "banking-blue-green.yaml"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "examples", file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := spec.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			out, err := set.Resolve(m.Name, m.Spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := spec.Validate(out); err != nil {
				t.Errorf("the effective spec is not valid: %v", err)
			}
			a := out.GetApproval()
			if out.GetPolicy() != "banking" || a.GetRequired() < 2 || !slices.Equal(a.GetRoles(), []string{"approver"}) {
				t.Errorf("policy %q, approval %v; want banking, 2 approvers", out.GetPolicy(), a)
			}
			if pf := out.GetPreflight(); !pf.GetRequirePinned() || len(pf.GetChecks()) != 3 {
				t.Errorf("preflight = %v, want requirePinned and the three compliance checks", pf)
			}
			w := out.GetWindow()
			if w.GetTimeZone() != "Europe/London" || len(w.GetAllow()) != 1 || w.GetAllow()[0].GetStart() != "09:00" ||
				len(w.GetFreezes()) != 12 || len(w.GetHolidays()) != 8 {
				t.Errorf("window = %v, want London business hours, 12 month-end freezes and 8 bank holidays", w)
			}
		})
	}
}
