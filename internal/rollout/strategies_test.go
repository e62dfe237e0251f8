package rollout_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

func withStrategy(sp *cutoverv1.RolloutSpec, s *cutoverv1.Strategy) *cutoverv1.RolloutSpec {
	sp.Strategy = s
	return sp
}

// instances renders a desired state with instance counts.
func (s *sim) instances(cluster string) string {
	s.t.Helper()
	d := rollout.Desired(s.r, s.progress(cluster))
	out := showRevisions(d)
	for _, dr := range d.GetRevisions() {
		if n := dr.GetInstances(); n > 0 {
			out += " " + dr.GetRevision().GetName() + "x" + string(rune('0'+n))
		}
	}
	return out
}

// Rolling over 4 instances in batches of 2: the new revision grows by a
// batch per step, the old one shrinks, traffic follows the instances.
func TestRollingBatches(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	v1 := newSpec(t, "v1", waves, setWeight(50))
	v1.Revision.Instances = 4
	s := deployed(t, v1)
	v2 := withStrategy(newSpec(t, "v2", waves, setWeight(50)), &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{
		Rolling: &cutoverv1.RollingStrategy{BatchSize: "50%", FailureThreshold: 1}}})
	v2.Revision.Instances = 4
	s.step(apply(v2))
	if got, want := s.instances("eu-1"), "stable:v1=50 canary:v2=50 v1x2 v2x2"; got != want {
		t.Fatalf("batch 1: %s, want %s", got, want)
	}
	s.converge("eu-1")
	if got, want := s.instances("eu-1"), "canary:v2=100 v2x4"; got != want {
		t.Fatalf("batch 2: %s, want %s", got, want)
	}
	s.converge("eu-1")
	s.converge("eu-1")
	if p := showPhase(s.r.GetStatus()); p != "healthy" {
		t.Fatalf("end: %s", p)
	}
	if got := s.instances("eu-1"); got != "stable:v2=100" {
		t.Errorf("promoted: %s", got)
	}
}

// New instances failing readiness as often as failureThreshold fail the
// rollout, which rolls back to the old revision at full strength.
func TestRollingFailureThresholdRollsBack(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	v1 := newSpec(t, "v1", waves, setWeight(50))
	v1.Revision.Instances = 3
	s := deployed(t, v1)
	v2 := withStrategy(newSpec(t, "v2", waves, setWeight(50)), &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{
		Rolling: &cutoverv1.RollingStrategy{BatchSize: "1", FailureThreshold: 2}}})
	v2.Revision.Instances = 3
	s.step(apply(v2))
	report := func(failed int32) {
		s.step(rollout.Observe{Cluster: "eu-1", App: &cutoverv1.ObservedApp{App: app,
			ObservedGeneration: s.progress("eu-1").GetDesiredGeneration(),
			Revisions:          []*cutoverv1.ObservedRevision{{Revision: "v2", InstancesFailed: failed}}}})
	}
	report(1)
	if p := showPhase(s.r.GetStatus()); p != "progressing" {
		t.Fatalf("one failure under a threshold of 2: %s", p)
	}
	report(2)
	if p := showPhase(s.r.GetStatus()); p != "aborted" {
		t.Fatalf("two failures: %s, want aborted", p)
	}
	if got := s.instances("eu-1"); got != "stable:v1=100" {
		t.Errorf("after the reverse roll eu-1 wants %s", got)
	}
}

// Shadow: the new revision runs beside stable with a mirror share, gets no
// traffic, and becomes stable on promote.
func TestShadow(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(withStrategy(newSpec(t, "v2", waves, setWeight(50)), &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Shadow{
		Shadow: &cutoverv1.ShadowStrategy{MirrorPercent: 20}}})))
	d := rollout.Desired(s.r, s.progress("eu-1"))
	if got := showRevisions(d); got != "stable:v1=100 shadow:v2=0" || d.GetMirrorPercent() != 20 {
		t.Fatalf("shadowing: %s mirror %d", got, d.GetMirrorPercent())
	}
	s.converge("eu-1")
	if p := showPhase(s.r.GetStatus()); p != "paused(step)" {
		t.Fatalf("shadow up: %s, want waiting for promote", p)
	}
	s.step(rollout.Promote{})
	s.converge("eu-1")
	s.wants("eu-1", "stable:v2=100")
	if p := showPhase(s.r.GetStatus()); p != "healthy" {
		t.Errorf("end: %s", p)
	}
}

// maxParallel 1 moves the clusters of a wave one at a time through every
// step; each group's steps are recorded once.
func TestMaxParallelGroups(t *testing.T) {
	waves := [][]string{{"eu-1", "us-1", "ap-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	sp := newSpec(t, "v2", waves, setWeight(30), pause("1s"))
	sp.Targets.Waves[0].MaxParallel = 2
	s.step(apply(sp))
	s.wants("eu-1", "stable:v1=70 canary:v2=30")
	s.wants("us-1", "stable:v1=70 canary:v2=30")
	s.wants("ap-1", "stable:v1=100")
	s.converge("eu-1", "us-1")
	s.now = s.now.Add(time.Second)
	s.step(rollout.Tick{})
	s.converge("eu-1", "us-1") // group 1 promoted
	if g := s.r.GetStatus().GetCurrentGroup(); g != 1 {
		t.Fatalf("after group 1: group %d", g)
	}
	s.wants("eu-1", "stable:v2=100")
	s.wants("ap-1", "stable:v1=70 canary:v2=30")
	s.converge("ap-1")
	s.now = s.now.Add(time.Second)
	s.step(rollout.Tick{})
	s.converge("ap-1")
	if p := showPhase(s.r.GetStatus()); p != "healthy" {
		t.Fatalf("end: %s", p)
	}
}

// setCanaryScale sets the new revision's instance count apart from its
// weight.
func TestSetCanaryScale(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	scale := &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_SetCanaryScale{SetCanaryScale: &cutoverv1.SetCanaryScale{Instances: 1}}}
	s.step(apply(newSpec(t, "v2", waves, scale, setWeight(10), pause(""))))
	if got, want := s.instances("eu-1"), "stable:v1=100 canary:v2=0 v2x1"; got != want {
		t.Fatalf("after setCanaryScale: %s, want %s", got, want)
	}
	s.converge("eu-1")
	if got, want := s.instances("eu-1"), "stable:v1=90 canary:v2=10 v2x1"; got != want {
		t.Fatalf("after setWeight: %s, want %s", got, want)
	}
}

// An analysis step holds the weight for its window (no gates yet: it then
// passes); a blue-green's pre-promotion analysis runs before the switch can
// happen.
func TestAnalysisSteps(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	analysis := &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Analysis{Analysis: &cutoverv1.AnalysisStep{Window: "10s"}}}
	s.step(apply(newSpec(t, "v2", waves, setWeight(20), analysis, setWeight(60))))
	res := s.converge("eu-1")
	if want := s.now.Add(10 * time.Second); !res.WakeAt.Equal(want) || s.r.GetStatus().GetCurrentStep() != 1 {
		t.Fatalf("in analysis: step %d wake %v, want step 1 wake %v", s.r.GetStatus().GetCurrentStep(), res.WakeAt, want)
	}
	s.now = s.now.Add(9 * time.Second)
	s.step(rollout.Tick{})
	s.wants("eu-1", "stable:v1=80 canary:v2=20")
	s.now = s.now.Add(time.Second)
	s.step(rollout.Tick{})
	s.wants("eu-1", "stable:v1=40 canary:v2=60")

	bg := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	sp := blueGreenSpec(t, "v2", waves, 0)
	sp.GetStrategy().GetBlueGreen().PrePromotionAnalysis = &cutoverv1.AnalysisStep{Window: "5s"}
	bg.step(apply(sp))
	bg.converge("eu-1")
	if p := showPhase(bg.r.GetStatus()); p != "progressing" {
		t.Fatalf("preview ready, analysis running: %s", p)
	}
	bg.now = bg.now.Add(5 * time.Second)
	bg.step(rollout.Tick{})
	if p := showPhase(bg.r.GetStatus()); p != "paused(step)" {
		t.Fatalf("analysis passed: %s, want waiting for promote", p)
	}
}

// Under failurePolicy hold a rolling failure pauses; resume forgives the
// failures seen so far, and only new ones fail the rollout again.
func TestRollingHoldAndResumeForgivesCountedFailures(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	v1 := newSpec(t, "v1", waves, setWeight(50))
	v1.Revision.Instances = 2
	s := deployed(t, v1)
	v2 := withStrategy(newSpec(t, "v2", waves, setWeight(50)), &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{
		Rolling: &cutoverv1.RollingStrategy{BatchSize: "1", FailureThreshold: 1}}})
	v2.Revision.Instances = 2
	v2.Targets.FailurePolicy = "hold"
	s.step(apply(v2))
	report := func(failed int32) {
		s.step(rollout.Observe{Cluster: "eu-1", App: &cutoverv1.ObservedApp{App: app,
			ObservedGeneration: s.progress("eu-1").GetDesiredGeneration(),
			Revisions:          []*cutoverv1.ObservedRevision{{Revision: "v2", InstancesFailed: failed}}}})
	}
	report(1)
	if p := showPhase(s.r.GetStatus()); p != "paused(failure)" {
		t.Fatalf("after a failure under hold: %s", p)
	}
	s.step(rollout.Resume{Actor: "op"})
	report(1) // the same failure, already forgiven
	if p := showPhase(s.r.GetStatus()); p != "progressing" {
		t.Fatalf("after resume with no new failure: %s", p)
	}
	report(2)
	if p := showPhase(s.r.GetStatus()); p != "paused(failure)" {
		t.Fatalf("after a new failure: %s", p)
	}
}

// Delegated rolling (spec.kubernetes.delegateRolling) is one batch of every
// instance: the Deployment's own rolling update paces the replacement.
func TestRollingDelegatedIsOneBatch(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	v1 := newSpec(t, "v1", waves, setWeight(50))
	v1.Revision.Instances = 4
	s := deployed(t, v1)
	v2 := withStrategy(newSpec(t, "v2", waves, setWeight(50)), &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{
		Rolling: &cutoverv1.RollingStrategy{BatchSize: "1", FailureThreshold: 1}}})
	v2.Revision.Instances = 4
	v2.Kubernetes = &cutoverv1.KubernetesSpec{DelegateRolling: true}
	s.step(apply(v2))
	if got, want := s.instances("eu-1"), "canary:v2=100 v2x4"; got != want {
		t.Fatalf("batch: %s, want %s", got, want)
	}
	d := rollout.Desired(s.r, s.progress("eu-1"))
	if d.GetStrategy() != "rolling" || !d.GetKubernetes().GetDelegateRolling() {
		t.Errorf("desired state carries strategy %q and kubernetes %v", d.GetStrategy(), d.GetKubernetes())
	}
}

// A failed smoke check of the preview aborts a blue-green rollout: the
// cluster goes back to serving the old revision only.
func TestBlueGreenSmokeFailureAborts(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	v2 := withStrategy(newSpec(t, "v2", waves, setWeight(50)), &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_BlueGreen{
		BlueGreen: &cutoverv1.BlueGreenStrategy{PreviewListen: "127.0.0.1:9", SmokeChecks: []*cutoverv1.SmokeCheck{{Url: "http://{{preview}}/"}}}}})
	s.step(apply(v2))
	d := rollout.Desired(s.r, s.progress("eu-1"))
	if len(d.GetSmokeChecks()) != 1 || showRevisions(d) != "stable:v1=100 preview:v2=0" {
		t.Fatalf("preview desired: %s with %d smoke checks", showRevisions(d), len(d.GetSmokeChecks()))
	}
	cp := s.progress("eu-1")
	s.step(rollout.Observe{Cluster: "eu-1", App: &cutoverv1.ObservedApp{
		App: app, ObservedGeneration: cp.GetDesiredGeneration(),
		Revisions: []*cutoverv1.ObservedRevision{{Revision: "v2", Track: cutoverv1.Track_TRACK_PREVIEW, Smoke: "health: status 503, want 2xx"}},
	}})
	if p := showPhase(s.r.GetStatus()); p != "aborted" {
		t.Fatalf("after a failed smoke check: %s (%s)", p, s.r.GetStatus().GetMessage())
	}
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=100" {
		t.Errorf("aborted: %s", got)
	}
}

// A deployment window (weekdays outside New York market hours): applied
// while closed, the rollout waits with traffic untouched and wakes when it
// opens; the window closing mid-rollout holds it at the next step
// boundary (traffic stays at the canary's weight), and the next window,
// after the change to daylight-saving time, moves it on.
func TestDeploymentWindow(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	v2 := newSpec(t, "v2", waves, setWeight(20), pause("1h"), setWeight(50), pause(""))
	v2.Window = &cutoverv1.DeploymentWindow{TimeZone: "America/New_York",
		Allow: []*cutoverv1.WindowSpan{{Days: []string{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "16:00", End: "09:30"}}}
	utc := func(v string) time.Time {
		tt, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	s.now = utc("2026-03-06T20:00:00Z") // Friday 15:00 EST: market hours
	res := s.step(apply(v2))
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW {
		t.Fatalf("applied outside the window: %s (%s)", rollout.PhaseName(p), s.r.GetStatus().GetMessage())
	}
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=100" {
		t.Errorf("waiting for the window, eu-1 is asked for %s", got)
	}
	if !res.WakeAt.Equal(utc("2026-03-06T21:00:00Z")) {
		t.Errorf("wakes at %s, want the window's opening", res.WakeAt.UTC())
	}
	if msg := s.r.GetStatus().GetMessage(); !strings.Contains(msg, "opens Fri 2026-03-06 16:00 EST") {
		t.Errorf("message %q does not say when the window opens", msg)
	}

	s.now = utc("2026-03-06T21:00:00Z")
	s.step(rollout.Tick{})
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=80 canary:v2=20" {
		t.Fatalf("window open: %s (%s)", got, s.r.GetStatus().GetMessage())
	}
	s.converge("eu-1")

	// The 1h pause ends on Saturday morning, after the window closed.
	s.now = utc("2026-03-07T14:40:00Z") // Saturday 09:40 EST
	res = s.step(rollout.Tick{})
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW {
		t.Fatalf("window closed at the step boundary: %s", rollout.PhaseName(p))
	}
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=80 canary:v2=20" {
		t.Errorf("waiting mid-rollout moved traffic: %s", got)
	}
	if !res.WakeAt.Equal(utc("2026-03-09T20:00:00Z")) { // Monday 16:00 EDT
		t.Errorf("wakes at %s, want Monday 16:00 EDT", res.WakeAt.UTC())
	}
	// An operator pause and resume while waiting do not sneak past it.
	s.step(rollout.Pause{Actor: "ops"})
	s.step(rollout.Resume{Actor: "ops"})
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW {
		t.Fatalf("after pause and resume while closed: %s", rollout.PhaseName(p))
	}

	s.now = utc("2026-03-09T20:00:00Z")
	s.step(rollout.Tick{})
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=50 canary:v2=50" {
		t.Fatalf("next window: %s (%s)", got, s.r.GetStatus().GetMessage())
	}
	var closed, opened int
	for _, e := range s.r.GetStatus().GetTimeline() {
		switch e.GetType() {
		case cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WINDOW_CLOSED:
			closed++
		case cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WINDOW_OPENED:
			opened++
		}
	}
	if closed != 3 || opened != 2 {
		t.Errorf("timeline has %d window waits and %d openings, want 3 and 2", closed, opened)
	}
}

func approvalStep(n int32) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Approval{Approval: &cutoverv1.ApprovalStep{Required: n}}}
}

// An approval step needs distinct people other than the author, with an
// approver role; a rejection aborts; an approval that times out aborts.
func TestApprovalStepFourEyes(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	v2 := newSpec(t, "v2", waves, setWeight(20), approvalStep(2), setWeight(100))
	s.step(rollout.Apply{Name: app, Spec: v2, Actor: "alice"})
	s.converge("eu-1")
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		t.Fatalf("at the approval step: %s", rollout.PhaseName(p))
	}
	approver := []string{"approver"}
	for _, tt := range []struct {
		ev   rollout.Approve
		want string
	}{
		{rollout.Approve{Actor: "alice", Roles: []string{"admin"}}, "alice applied this rollout and cannot approve it"},
		{rollout.Approve{Actor: "dave", Roles: []string{"deployer"}}, "approves with role approver or admin, has deployer"},
	} {
		if _, err := s.try(tt.ev); !errors.Is(err, rollout.ErrApprovalRefused) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.ev.Actor, err, tt.want)
		}
	}
	s.step(rollout.Approve{Actor: "bob", Roles: approver, Comment: "looks fine"})
	if _, err := s.try(rollout.Approve{Actor: "bob", Roles: approver}); !errors.Is(err, rollout.ErrApprovalRefused) {
		t.Errorf("bob approving twice: %v", err)
	}
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		t.Fatalf("one of two approvals: %s", rollout.PhaseName(p))
	}
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=80 canary:v2=20" {
		t.Errorf("waiting for approval moved traffic: %s", got)
	}
	s.step(rollout.Approve{Actor: "carol", Roles: []string{"admin"}})
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=0 canary:v2=100" {
		t.Errorf("after two approvals: %s (%s)", got, s.r.GetStatus().GetMessage())
	}
	if n := len(s.r.GetStatus().GetApprovals()); n != 2 {
		t.Errorf("%d approvals recorded, want 2", n)
	}

	// A rejection aborts.
	s2 := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s2.step(rollout.Apply{Name: app, Spec: newSpec(t, "v2", waves, setWeight(20), approvalStep(1)), Actor: "alice"})
	s2.converge("eu-1")
	s2.step(rollout.Reject{Actor: "bob", Comment: "not during the audit"})
	if p := s2.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !strings.Contains(s2.r.GetStatus().GetMessage(), "rejected by bob: not during the audit") {
		t.Errorf("after a rejection: %s %q", rollout.PhaseName(p), s2.r.GetStatus().GetMessage())
	}

	// No decision within the timeout aborts.
	s3 := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	timed := newSpec(t, "v2", waves, setWeight(20), &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Approval{Approval: &cutoverv1.ApprovalStep{Timeout: "1h"}}})
	s3.step(rollout.Apply{Name: app, Spec: timed, Actor: "alice"})
	res := s3.converge("eu-1")
	if !res.WakeAt.Equal(s3.now.Add(time.Hour)) {
		t.Errorf("waiting for approval wakes at %s, want the timeout", res.WakeAt)
	}
	s3.now = s3.now.Add(time.Hour)
	s3.step(rollout.Tick{})
	if p := s3.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !strings.Contains(s3.r.GetStatus().GetMessage(), "no decision within 1h0m0s") {
		t.Errorf("after the approval timeout: %s %q", rollout.PhaseName(p), s3.r.GetStatus().GetMessage())
	}
}

// Break-glass: a critical fix outside its window runs only with a reason
// and two distinct approvers; one approval keeps it blocked, and the
// author's own approval is refused.
func TestBreakGlass(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	fix := newSpec(t, "v2", waves, setWeight(50))
	fix.Window = &cutoverv1.DeploymentWindow{TimeZone: "America/New_York",
		Allow: []*cutoverv1.WindowSpan{{Days: []string{"Sat"}, Start: "10:00", End: "11:00"}}}
	fix.Urgency, fix.BreakGlassReason = "critical", "INC-4711: order router drops FIX messages"
	s.now = time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC) // a Wednesday: closed
	s.step(rollout.Apply{Name: app, Spec: fix, Actor: "alice"})
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL ||
		!strings.Contains(s.r.GetStatus().GetMessage(), "break-glass") || !strings.Contains(s.r.GetStatus().GetMessage(), "INC-4711") {
		t.Fatalf("critical fix outside the window: %s %q", rollout.PhaseName(p), s.r.GetStatus().GetMessage())
	}
	if _, err := s.try(rollout.Approve{Actor: "alice", Roles: []string{"admin"}}); !errors.Is(err, rollout.ErrApprovalRefused) {
		t.Errorf("the author's own approval: %v", err)
	}
	s.step(rollout.Approve{Actor: "bob", Roles: []string{"approver"}})
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		t.Fatalf("one approval: %s", rollout.PhaseName(p))
	}
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=100" {
		t.Errorf("one approval moved traffic: %s", got)
	}
	s.step(rollout.Approve{Actor: "carol", Roles: []string{"approver"}})
	if got := showRevisions(rollout.Desired(s.r, s.progress("eu-1"))); got != "stable:v1=50 canary:v2=50" {
		t.Fatalf("two approvals: %s (%s)", got, s.r.GetStatus().GetMessage())
	}
	s.converge("eu-1")
	s.converge("eu-1")
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY {
		t.Errorf("a break-glass fix with two approvals ends %s (%s)", rollout.PhaseName(p), s.r.GetStatus().GetMessage())
	}
	// Without a reason, a critical rollout waits for its window like any.
	s2 := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	noReason := newSpec(t, "v2", waves, setWeight(50))
	noReason.Window, noReason.Urgency = fix.Window, "critical"
	s2.now = s.now
	s2.step(rollout.Apply{Name: app, Spec: noReason, Actor: "alice"})
	if p := s2.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW {
		t.Errorf("critical without a reason: %s", rollout.PhaseName(p))
	}
}
