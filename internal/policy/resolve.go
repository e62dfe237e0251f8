package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
)

// latencyMetrics are the gate metrics maxLatencyImpact accepts.
var latencyMetrics = []string{"latencyP50", "latencyP90", "latencyP99", "latencyP999"}

// Resolve returns the effective spec of the rollout (app) name: in merged
// with the policy that applies to it, or a copy of in when none does. It
// never modifies in. A policy applies when one of its patterns matches
// name; in.policy may insist on one, which must then exist and match. The
// merged spec carries the policy's windows, freezes and holidays as
// spec.window, at least its approval, its pre-flight checks and hooks
// before the spec's own, and spec.policy set to its name. A spec the
// policy does not allow is refused with a *RefusedError naming the spec
// fields at fault.
//
// Resolve is safe for concurrent use. in should be valid (spec.Validate);
// the result must be validated again, since it holds more.
func (s *Set) Resolve(name string, in *cutoverv1.RolloutSpec) (*cutoverv1.RolloutSpec, error) {
	if in == nil {
		in = &cutoverv1.RolloutSpec{}
	}
	c, err := s.choose(name, in.GetPolicy())
	if err != nil {
		return nil, err
	}
	out := proto.Clone(in).(*cutoverv1.RolloutSpec)
	if c == nil {
		return out, nil
	}
	if err := c.apply(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Set) list() []*compiled {
	if s == nil {
		return nil
	}
	return s.policies
}

// choose picks the policy of an app: the one the spec names, or the only
// one whose patterns match; nil when none matches.
func (s *Set) choose(app, named string) (*compiled, error) {
	var matching []*compiled
	for _, c := range s.list() {
		if c.matches(app) {
			matching = append(matching, c)
		}
	}
	if named != "" {
		i := slices.IndexFunc(s.list(), func(c *compiled) bool { return c.p.GetName() == named })
		if i < 0 {
			loaded := strings.Join(s.Names(), ", ")
			if loaded == "" {
				loaded = "none"
			}
			return nil, refuse("", "spec.policy: no policy %q is loaded (loaded: %s)", named, loaded)
		}
		c := s.list()[i]
		if !c.matches(app) {
			return nil, refuse(named, "spec.policy: does not apply to app %q (its apps: %s)", app, strings.Join(c.p.GetSpec().GetApps(), ", "))
		}
		return c, nil
	}
	switch len(matching) {
	case 0:
		return nil, nil
	case 1:
		return matching[0], nil
	}
	var names []string
	for _, c := range matching {
		names = append(names, fmt.Sprintf("%s (%s)", c.p.GetName(), c.file))
	}
	return nil, refuse("", "app %q matches policies %s: choose one with spec.policy", app, strings.Join(names, " and "))
}

func (c *compiled) matches(app string) bool {
	for _, p := range c.p.GetSpec().GetApps() {
		if ok, _ := path.Match(p, app); ok {
			return true
		}
	}
	return false
}

// breakGlass reports whether the policy lets critical rollouts break glass.
func (c *compiled) breakGlass() bool {
	ps := c.p.GetSpec()
	return ps.BreakGlass == nil || ps.GetBreakGlass()
}

// apply merges the policy into out, a copy the caller owns.
func (c *compiled) apply(out *cutoverv1.RolloutSpec) error {
	// Restrictions are judged on the spec with its defaults (a gate's
	// window, failure limit and severity), as the engine will run it; the
	// result keeps what the operator wrote.
	probe := proto.Clone(out).(*cutoverv1.RolloutSpec)
	spec.Default(probe)
	if !c.breakGlass() && probe.GetUrgency() == spec.UrgencyCritical && probe.GetBreakGlassReason() != "" {
		return refuse(c.p.GetName(), "spec.breakGlassReason: break-glass is not allowed (breakGlass: false): remove it, and the rollout waits for its window")
	}
	if err := c.applyWindow(out, probe); err != nil {
		return err
	}
	if err := c.applyApproval(out); err != nil {
		return err
	}
	if err := c.applyChecks(out); err != nil {
		return err
	}
	out.Policy = c.p.GetName()
	return nil
}

// applyWindow sets the effective deployment window.
func (c *compiled) applyWindow(out, probe *cutoverv1.RolloutSpec) error {
	ps := c.p.GetSpec()
	if len(c.windows) == 0 {
		c.addClosures(out)
		return nil
	}
	if out.GetWindow() != nil {
		return refuse(c.p.GetName(), "spec.window: the policy's windows say when this app may move: remove spec.window")
	}
	var allow []*cutoverv1.WindowSpan
	var refusals []string
	admitted, anyTime := 0, false
	for _, r := range c.windows {
		if why := r.refusals(probe); len(why) > 0 {
			refusals = append(refusals, fmt.Sprintf("window %s: %s", r.w.GetName(), strings.Join(why, ", ")))
			continue
		}
		admitted++
		anyTime = anyTime || len(r.w.GetAllow()) == 0
		for _, sp := range r.w.GetAllow() {
			allow = append(allow, proto.Clone(sp).(*cutoverv1.WindowSpan))
		}
	}
	if admitted == 0 {
		return refuse(c.p.GetName(), "no window admits this rollout: %s", strings.Join(refusals, "; "))
	}
	if anyTime {
		allow = nil // a window without spans is open at any time
	}
	out.Window = &cutoverv1.DeploymentWindow{
		TimeZone: ps.GetTimeZone(),
		Allow:    allow,
		Freezes:  cloneAll(ps.GetFreezes()),
		Holidays: slices.Clone(c.holidays),
	}
	return nil
}

// addClosures adds the policy's freezes and holidays to the spec's own
// window (a policy without windows). A window in another time zone gets
// them as freezes at the policy's local midnights, so a holiday is the
// policy's local day wherever the spec's window is.
func (c *compiled) addClosures(out *cutoverv1.RolloutSpec) {
	ps := c.p.GetSpec()
	if len(ps.GetFreezes()) == 0 && len(c.holidays) == 0 {
		return
	}
	w := out.GetWindow()
	if w == nil {
		out.Window = &cutoverv1.DeploymentWindow{TimeZone: ps.GetTimeZone(), Freezes: cloneAll(ps.GetFreezes()), Holidays: slices.Clone(c.holidays)}
		return
	}
	if zone(w.GetTimeZone()) == zone(ps.GetTimeZone()) {
		w.Freezes = append(w.Freezes, cloneAll(ps.GetFreezes())...)
		for _, h := range c.holidays {
			if !slices.Contains(w.GetHolidays(), h) {
				w.Holidays = append(w.Holidays, h)
			}
		}
		return
	}
	loc, err := time.LoadLocation(zone(ps.GetTimeZone()))
	if err != nil {
		loc = time.UTC // Load checked the zone; unreachable
	}
	for _, f := range ps.GetFreezes() {
		w.Freezes = append(w.Freezes, &cutoverv1.FreezePeriod{Start: instant(f.GetStart(), loc), End: instant(f.GetEnd(), loc), Reason: f.GetReason()})
	}
	for _, h := range c.holidays {
		d, err := time.ParseInLocation(time.DateOnly, h, loc)
		if err != nil {
			continue // Load checked every date; unreachable
		}
		w.Freezes = append(w.Freezes, &cutoverv1.FreezePeriod{
			Start:  d.Format(time.RFC3339),
			End:    time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc).Format(time.RFC3339),
			Reason: fmt.Sprintf("holiday %s (policy %s)", h, c.p.GetName()),
		})
	}
}

func zone(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// instant turns a freeze bound given as a date into the RFC 3339 instant
// of its local midnight in loc; RFC 3339 bounds stay as they are.
func instant(s string, loc *time.Location) string {
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return d.Format(time.RFC3339)
	}
	return s
}

// refusals lists why a window does not admit a spec (with its defaults);
// none when it does.
func (r rule) refusals(s *cutoverv1.RolloutSpec) []string {
	w := r.w
	var why []string
	if len(w.GetUrgencies()) > 0 {
		u := s.GetUrgency()
		if u == "" {
			u = spec.UrgencyMedium
		}
		if !slices.Contains(w.GetUrgencies(), u) {
			why = append(why, fmt.Sprintf("urgency %s not allowed (spec.urgency; allowed: %s)", u, strings.Join(w.GetUrgencies(), ", ")))
		}
	}
	if len(w.GetAllowedStrategies()) > 0 {
		if st := rollout.StrategyName(s); !slices.Contains(w.GetAllowedStrategies(), st) {
			why = append(why, fmt.Sprintf("strategy %s not allowed (spec.strategy; allowed: %s)", st, strings.Join(w.GetAllowedStrategies(), ", ")))
		}
	}
	if w.GetRequireShadowFirst() {
		if msg := shadowFirst(s); msg != "" {
			why = append(why, msg)
		}
	}
	if r.maxLatency > 0 && !hasLatencyGate(s, r.maxLatency) {
		why = append(why, fmt.Sprintf("no critical latency gate (%s) with condition \"<= stable + X\" or \"<= X\", X at most %s (spec.gates)",
			strings.Join(latencyMetrics, ", "), r.maxLatency))
	}
	if r.rollbackLimit > 0 {
		why = append(why, rollbackWithin(s, r.rollbackLimit)...)
	}
	return why
}

// shadowFirst says why a spec's first traffic step is not a shadow step;
// "" when it is.
func shadowFirst(s *cutoverv1.RolloutSpec) string {
	canary := s.GetStrategy().GetCanary()
	if canary == nil {
		return fmt.Sprintf("shadow first needs a canary, not %s (spec.strategy)", rollout.StrategyName(s))
	}
	for i, st := range canary.GetSteps() {
		switch st.GetStep().(type) {
		case *cutoverv1.CanaryStep_Shadow:
			return ""
		case *cutoverv1.CanaryStep_SetWeight:
			return fmt.Sprintf("the first traffic step must be a shadow step, not setWeight (spec.strategy.canary.steps[%d])", i)
		case *cutoverv1.CanaryStep_SetHeaderRoute: // matching live requests reach the new build
			return fmt.Sprintf("the first traffic step must be a shadow step, not setHeaderRoute (spec.strategy.canary.steps[%d])", i)
		}
	}
	return "no shadow step before traffic moves (spec.strategy.canary.steps)"
}

// hasLatencyGate reports whether a critical gate bounds a latency
// percentile's increase over stable by at most limit: "<= stable + X" or
// the stricter absolute "<= X" (the new revision's latency is at most X,
// so at most X above stable's), with X <= limit. A factor of stable
// ("<= 1.1x stable") bounds nothing in microseconds and does not count.
func hasLatencyGate(s *cutoverv1.RolloutSpec, limit time.Duration) bool {
	limitMicros := float64(limit) / float64(time.Microsecond) // gate conditions are in µs
	for _, g := range s.GetGates() {
		if g.GetSeverity() != spec.SeverityCritical || g.GetJudge() != nil || !slices.Contains(latencyMetrics, g.GetMetric()) {
			continue
		}
		cond, err := gate.Parse(g.GetMetric(), g.GetCondition())
		if err != nil {
			continue // validation refuses it anyway
		}
		if cond.Less && cond.Factor == 0 && cond.Value <= limitMicros {
			return true
		}
	}
	return false
}

// rollbackWithin says why a spec may not act on a breach within limit:
// it has no critical gate, or one whose window times failure limit (the
// time from a breach to the abort) exceeds it.
func rollbackWithin(s *cutoverv1.RolloutSpec, limit time.Duration) []string {
	var why []string
	critical := 0
	for i, g := range s.GetGates() {
		if g.GetSeverity() != spec.SeverityCritical {
			continue
		}
		critical++
		w := gate.DefaultWindow
		if d, err := time.ParseDuration(g.GetWindow()); err == nil && d > 0 {
			w = d
		}
		n := max(g.GetFailureLimit(), gate.DefaultFailureLimit)
		if t := w * time.Duration(n); t > limit {
			why = append(why, fmt.Sprintf("gate %s acts after %s (window %s × failureLimit %d), over the rollback time limit %s (spec.gates[%d])",
				g.GetName(), t, w, n, limit, i))
		}
	}
	if critical == 0 {
		why = append(why, fmt.Sprintf("no critical gate to roll back within %s (spec.gates)", limit))
	}
	return why
}

// applyApproval raises the spec's approval to the policy's.
func (c *compiled) applyApproval(out *cutoverv1.RolloutSpec) error {
	pa := c.p.GetSpec().GetApproval()
	if pa == nil {
		return nil
	}
	sa := out.GetApproval()
	if sa == nil {
		out.Approval = proto.Clone(pa).(*cutoverv1.ApprovalStep)
		return nil
	}
	allowed := spec.ApprovalRoles(pa)
	for i, r := range sa.GetRoles() {
		if !slices.Contains(allowed, r) {
			return refuse(c.p.GetName(), "spec.approval.roles[%d]: role %s may not approve under this policy (allowed: %s)", i, r, strings.Join(allowed, ", "))
		}
	}
	sa.Required = max(sa.GetRequired(), pa.GetRequired(), 1)
	if len(sa.GetRoles()) == 0 {
		sa.Roles = slices.Clone(pa.GetRoles())
	}
	if sa.GetTimeout() == "" {
		sa.Timeout = pa.GetTimeout()
	}
	return nil
}

// applyChecks puts the policy's pre-flight checks and hooks before the
// spec's own. A spec's check or hook may not take a name the policy's
// use in the same phase: names identify results.
func (c *compiled) applyChecks(out *cutoverv1.RolloutSpec) error {
	ps := c.p.GetSpec()
	if pp := ps.GetPreflight(); pp != nil {
		own := out.GetPreflight()
		checks, err := c.prepend("spec.preflight.checks", pp.GetChecks(), own.GetChecks())
		if err != nil {
			return err
		}
		out.Preflight = &cutoverv1.Preflight{Checks: checks, RequirePinned: pp.GetRequirePinned() || own.GetRequirePinned()}
	}
	ph := ps.GetHooks()
	if ph == nil {
		return nil
	}
	own := out.GetHooks()
	merged := &cutoverv1.Hooks{}
	for _, phase := range []struct {
		name        string
		policy, own []*cutoverv1.Hook
		dst         *[]*cutoverv1.Hook
	}{
		{"preRollout", ph.GetPreRollout(), own.GetPreRollout(), &merged.PreRollout},
		{"preTrafficShift", ph.GetPreTrafficShift(), own.GetPreTrafficShift(), &merged.PreTrafficShift},
		{"postPromotion", ph.GetPostPromotion(), own.GetPostPromotion(), &merged.PostPromotion},
		{"onAbort", ph.GetOnAbort(), own.GetOnAbort(), &merged.OnAbort},
	} {
		hooks, err := c.prepend("spec.hooks."+phase.name, phase.policy, phase.own)
		if err != nil {
			return err
		}
		*phase.dst = hooks
	}
	out.Hooks = merged
	return nil
}

func (c *compiled) prepend(path string, policy, own []*cutoverv1.Hook) ([]*cutoverv1.Hook, error) {
	for i, h := range own {
		if slices.ContainsFunc(policy, func(p *cutoverv1.Hook) bool { return p.GetName() == h.GetName() }) {
			return nil, refuse(c.p.GetName(), "%s[%d].name: %q is the name of one of the policy's hooks there: rename it", path, i, h.GetName())
		}
	}
	return append(cloneAll(policy), own...), nil
}

func cloneAll[M proto.Message](ms []M) []M {
	if ms == nil {
		return nil
	}
	out := make([]M, len(ms))
	for i, m := range ms {
		out[i] = proto.Clone(m).(M)
	}
	return out
}
