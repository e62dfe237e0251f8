package policy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/policy"
)

// spans renders a window's allow spans as "Mon,Tue 16:00-09:30".
func spans(w *cutoverv1.DeploymentWindow) []string {
	var out []string
	for _, s := range w.GetAllow() {
		out = append(out, strings.Join(s.GetDays(), ",")+" "+s.GetStart()+"-"+s.GetEnd())
	}
	return out
}

func hookNames(hs []*cutoverv1.Hook) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.GetName())
	}
	return out
}

var (
	afterHours  = []string{"Mon,Tue,Wed,Thu,Fri 16:00-09:30", "Sat,Sun 00:00-00:00", "Mon 00:00-09:30"}
	marketHours = "Mon,Tue,Wed,Thu,Fri 09:30-16:00"
	allTrading  = append(slices.Clone(afterHours), marketHours)
)

func TestResolve(t *testing.T) {
	set := loadTestdata(t)
	for _, tc := range []struct {
		name    string
		app     string
		spec    string
		wantErr []string // substrings of the refusal, in order
		check   func(t *testing.T, in, out *cutoverv1.RolloutSpec)
	}{
		{
			name: "no policy matches: the spec unchanged",
			app:  "web", spec: plainCanary + "window: {timeZone: UTC}\n",
			check: func(t *testing.T, in, out *cutoverv1.RolloutSpec) {
				if !proto.Equal(in, out) {
					t.Errorf("got %v, want the input", out)
				}
			},
		},
		{
			name: "trading, medium plain canary: after hours only",
			app:  "hft-pricer", spec: plainCanary + microGates,
			check: func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
				w := out.GetWindow()
				if got := spans(w); !slices.Equal(got, afterHours) {
					t.Errorf("allow = %q, want %q", got, afterHours)
				}
				if w.GetTimeZone() != "America/New_York" {
					t.Errorf("timeZone = %q", w.GetTimeZone())
				}
				// The file's dates, then the list's new ones, each once.
				if want := []string{"2026-01-01", "2026-04-03", "2026-11-26", "2026-12-25"}; !slices.Equal(w.GetHolidays(), want) {
					t.Errorf("holidays = %q, want %q", w.GetHolidays(), want)
				}
				if len(w.GetFreezes()) != 1 || w.GetFreezes()[0].GetReason() != "year end" {
					t.Errorf("freezes = %v", w.GetFreezes())
				}
				if out.GetPolicy() != "trading" {
					t.Errorf("policy = %q, want trading", out.GetPolicy())
				}
			},
		},
		{
			name: "trading, high shadow-first canary with µs gates: market hours too",
			app:  "order-router", spec: "urgency: high\n" + shadowCanary + microGates,
			check: wantSpans(allTrading),
		},
		{
			name: "an absolute latency bound within the limit is at least as strict",
			app:  "hft-a", spec: "urgency: critical\n" + shadowCanary +
				"gates: [{metric: latencyP999, condition: '<= 4us', window: 250ms, failureLimit: 4}]\n",
			check: wantSpans(allTrading),
		},
		{
			name: "latency gate looser than 5us: after hours only",
			app:  "hft-a", spec: "urgency: high\n" + shadowCanary +
				"gates: [{metric: latencyP99, condition: '<= stable + 6us'}]\n",
			check: wantSpans(afterHours),
		},
		{
			name: "a factor of stable bounds no microseconds",
			app:  "hft-a", spec: "urgency: high\n" + shadowCanary +
				"gates: [{metric: latencyP99, condition: '<= 1.01x stable'}]\n",
			check: wantSpans(afterHours),
		},
		{
			name: "a warning latency gate does not count",
			app:  "hft-a", spec: "urgency: high\n" + shadowCanary +
				"gates: [{metric: latencyP99, condition: '<= stable + 5us', severity: warning}, {metric: errorRate, condition: '<= 0.1%'}]\n",
			check: wantSpans(afterHours),
		},
		{
			name: "a critical gate slower than the rollback limit",
			app:  "hft-a", spec: "urgency: high\n" + shadowCanary +
				"gates: [{metric: latencyP99, condition: '<= stable + 5us'}, {metric: errorRate, condition: '<= 0.1%', window: 1s, failureLimit: 2}]\n",
			check: wantSpans(afterHours),
		},
		{
			name: "a spec's own window under a policy with windows",
			app:  "hft-a", spec: plainCanary + "window: {timeZone: UTC}\n",
			wantErr: []string{"policy trading: spec.window:", "remove spec.window"},
		},
		{
			name: "trading allows break-glass",
			app:  "hft-a", spec: "urgency: critical\nbreakGlassReason: CVE-2026-0001\n" + blueGreen,
			check: wantSpans(afterHours),
		},
		{
			name: "no window admits: every window's failures, with the fields",
			app:  "strict-1", spec: blueGreen,
			wantErr: []string{
				"policy strict: no window admits this rollout: ",
				"window only-canary: urgency medium not allowed (spec.urgency; allowed: critical), strategy blueGreen not allowed (spec.strategy; allowed: canary), shadow first needs a canary, not blueGreen (spec.strategy); ",
				"window fast: no critical latency gate", "at most 5µs (spec.gates), no critical gate to roll back within 1s (spec.gates)",
			},
		},
		{
			name: "shadow first: a setWeight comes first",
			app:  "strict-2", spec: "urgency: critical\n" + plainCanary,
			wantErr: []string{"window only-canary: the first traffic step must be a shadow step, not setWeight (spec.strategy.canary.steps[0])",
				"window fast: no critical latency gate"},
		},
		{
			name: "shadow first: a header route comes first",
			app:  "strict-2", spec: "urgency: critical\nstrategy: {canary: {steps: [{setHeaderRoute: {header: X-Canary, value: always}}, {shadow: {mirrorPercent: 50, duration: 60s}}, {setWeight: 100}]}}\n",
			wantErr: []string{"window only-canary: the first traffic step must be a shadow step, not setHeaderRoute (spec.strategy.canary.steps[0])"},
		},
		{
			name: "a window without spans admits at any time",
			app:  "strict-3", spec: "urgency: critical\n" + shadowCanary,
			check: func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
				if w := out.GetWindow(); w == nil || len(w.GetAllow()) != 0 {
					t.Errorf("window = %v, want one with no allow spans (any time)", w)
				}
			},
		},
		{
			name: "banking without windows: freezes and holidays become the window",
			app:  "core-banking", spec: plainCanary,
			check: func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
				w := out.GetWindow()
				if w.GetTimeZone() != "Europe/London" || len(w.GetAllow()) != 0 ||
					!slices.Equal(w.GetHolidays(), []string{"2026-12-25"}) || len(w.GetFreezes()) != 1 {
					t.Errorf("window = %v", w)
				}
			},
		},
		{
			name: "banking adds its closures to a window in its time zone",
			app:  "pay-uk", spec: plainCanary + "window: {timeZone: Europe/London, allow: [{start: '08:00', end: '18:00'}], holidays: ['2026-12-24']}\n",
			check: func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
				w := out.GetWindow()
				if got := spans(w); !slices.Equal(got, []string{" 08:00-18:00"}) {
					t.Errorf("allow = %q, want the spec's", got)
				}
				if !slices.Equal(w.GetHolidays(), []string{"2026-12-24", "2026-12-25"}) || len(w.GetFreezes()) != 1 {
					t.Errorf("holidays %q, freezes %v", w.GetHolidays(), w.GetFreezes())
				}
			},
		},
		{
			name: "banking's closures in another zone are London days",
			app:  "pay-us", spec: plainCanary + "window: {timeZone: America/New_York}\n",
			check: func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
				w := out.GetWindow()
				want := []string{
					"2026-01-30T00:00:00Z 2026-02-04T00:00:00Z month-end",
					"2026-12-25T00:00:00Z 2026-12-26T00:00:00Z holiday 2026-12-25 (policy banking)",
				}
				var got []string
				for _, f := range w.GetFreezes() {
					got = append(got, f.GetStart()+" "+f.GetEnd()+" "+f.GetReason())
				}
				if !slices.Equal(got, want) || len(w.GetHolidays()) != 0 || w.GetTimeZone() != "America/New_York" {
					t.Errorf("freezes %q, holidays %q, zone %q; want freezes %q", got, w.GetHolidays(), w.GetTimeZone(), want)
				}
			},
		},
		{
			name: "banking forbids break-glass",
			app:  "core-banking", spec: "urgency: critical\nbreakGlassReason: outage\n" + plainCanary,
			wantErr: []string{"policy banking: spec.breakGlassReason: break-glass is not allowed (breakGlass: false)"},
		},
		{
			name: "no approval: the policy's",
			app:  "core-banking", spec: plainCanary,
			check: wantApproval(2, []string{"approver"}, "24h"),
		},
		{
			name: "a weaker approval is raised, roles and timeout filled in",
			app:  "core-banking", spec: plainCanary + "approval: {required: 1}\n",
			check: wantApproval(2, []string{"approver"}, "24h"),
		},
		{
			name: "a stronger approval is kept",
			app:  "core-banking", spec: plainCanary + "approval: {required: 3, roles: [approver], timeout: 2h}\n",
			check: wantApproval(3, []string{"approver"}, "2h"),
		},
		{
			name: "an approval by a role the policy does not allow",
			app:  "core-banking", spec: plainCanary + "approval: {required: 2, roles: [approver, deployer]}\n",
			wantErr: []string{"policy banking: spec.approval.roles[1]: role deployer may not approve under this policy (allowed: approver)"},
		},
		{
			name: "pre-flight and hooks: the policy's first, requirePinned kept",
			app:  "core-banking", spec: plainCanary +
				"preflight: {checks: [{name: scan, http: {url: 'http://127.0.0.1:1/scan'}}]}\n" +
				"hooks: {preRollout: [{name: warm, command: {command: ./warm}}], postPromotion: [{name: tell, http: {url: 'http://127.0.0.1:1/tell'}}]}\n",
			check: func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
				p := out.GetPreflight()
				if !p.GetRequirePinned() || !slices.Equal(hookNames(p.GetChecks()), []string{"sox", "scan"}) {
					t.Errorf("preflight = %v", p)
				}
				h := out.GetHooks()
				for _, c := range []struct {
					phase     string
					got, want []string
				}{
					{"preRollout", hookNames(h.GetPreRollout()), []string{"change-ticket", "warm"}},
					{"preTrafficShift", hookNames(h.GetPreTrafficShift()), nil},
					{"postPromotion", hookNames(h.GetPostPromotion()), []string{"tell"}},
					{"onAbort", hookNames(h.GetOnAbort()), []string{"page"}},
				} {
					if !slices.Equal(c.got, c.want) {
						t.Errorf("%s = %q, want %q", c.phase, c.got, c.want)
					}
				}
			},
		},
		{
			name: "a spec's hook may not take a policy hook's name",
			app:  "core-banking", spec: plainCanary + "hooks: {onAbort: [{name: page, command: {command: ./page}}]}\n",
			wantErr: []string{`policy banking: spec.hooks.onAbort[0].name: "page" is the name of one of the policy's hooks there`},
		},
		{
			name: "two policies match: both named",
			app:  "pay-eu-sepa", spec: plainCanary,
			wantErr: []string{`app "pay-eu-sepa" matches policies banking (testdata/policies.yaml) and eu-payments (testdata/policies.yaml): choose one with spec.policy`},
		},
		{
			name: "two policies match, the spec chooses",
			app:  "pay-eu-sepa", spec: plainCanary + "policy: eu-payments\n",
			check: func(t *testing.T, in, out *cutoverv1.RolloutSpec) {
				if out.GetPolicy() != "eu-payments" || out.GetApproval() != nil || out.GetWindow() != nil {
					t.Errorf("got policy %q, approval %v, window %v; want eu-payments alone", out.GetPolicy(), out.GetApproval(), out.GetWindow())
				}
			},
		},
		{
			name: "the spec names an unknown policy",
			app:  "web", spec: plainCanary + "policy: tradng\n",
			wantErr: []string{`spec.policy: no policy "tradng" is loaded (loaded: trading, banking, eu-payments, strict)`},
		},
		{
			name: "the spec names a policy that is not its app's",
			app:  "web", spec: plainCanary + "policy: trading\n",
			wantErr: []string{`policy trading: spec.policy: does not apply to app "web" (its apps: hft-*, order-router)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := rolloutSpec(t, base+tc.spec)
			before := proto.Clone(in)
			out, err := set.Resolve(tc.app, in)
			if !proto.Equal(in, before) {
				t.Fatalf("Resolve modified its input:\n got %v\nwant %v", in, before)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("resolved to %v, want a refusal", out)
				}
				if !errors.Is(err, policy.ErrRefused) {
					t.Errorf("error %v does not wrap ErrRefused", err)
				}
				rest := err.Error()
				for _, w := range tc.wantErr {
					i := strings.Index(rest, w)
					if i < 0 {
						t.Fatalf("error\n  %s\nlacks (in order)\n  %s", err, w)
					}
					rest = rest[i+len(w):]
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			tc.check(t, in, out)
			again, err := set.Resolve(tc.app, in)
			if err != nil || !proto.Equal(out, again) {
				t.Errorf("a second Resolve differs: %v, %v", again, err)
			}
		})
	}
}

func wantSpans(want []string) func(*testing.T, *cutoverv1.RolloutSpec, *cutoverv1.RolloutSpec) {
	return func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
		t.Helper()
		if got := spans(out.GetWindow()); !slices.Equal(got, want) {
			t.Errorf("allow = %q, want %q", got, want)
		}
	}
}

func wantApproval(required int32, roles []string, timeout string) func(*testing.T, *cutoverv1.RolloutSpec, *cutoverv1.RolloutSpec) {
	return func(t *testing.T, _, out *cutoverv1.RolloutSpec) {
		t.Helper()
		a := out.GetApproval()
		if a.GetRequired() != required || !slices.Equal(a.GetRoles(), roles) || a.GetTimeout() != timeout {
			t.Errorf("approval = %v, want required %d, roles %q, timeout %q", a, required, roles, timeout)
		}
	}
}

// A nil or empty set applies nothing, but still refuses a spec insisting
// on a policy.
func TestResolveWithoutPolicies(t *testing.T) {
	var set *policy.Set
	in := rolloutSpec(t, base+plainCanary)
	out, err := set.Resolve("web", in)
	if err != nil || !proto.Equal(in, out) || out == in {
		t.Errorf("nil set: %v, %v; want an equal copy", out, err)
	}
	in.Policy = "trading"
	if _, err := set.Resolve("web", in); err == nil || !strings.Contains(err.Error(), `spec.policy: no policy "trading" is loaded (loaded: none)`) {
		t.Errorf("nil set, spec.policy set: %v", err)
	}
}
