package rollout_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

func shadowStep(pct int32, d string) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Shadow{Shadow: &cutoverv1.ShadowStep{MirrorPercent: pct, Duration: d}}}
}

// mirrors renders a cluster's desired state with its mirror share, e.g.
// "stable:v1=100 shadow:v2=0 mirror 100".
func (s *sim) mirrors(cluster string) string {
	s.t.Helper()
	d := rollout.Desired(s.r, s.progress(cluster))
	return fmt.Sprintf("%s mirror %d", showRevisions(d), d.GetMirrorPercent())
}

// The seed's trading flow in one wave of two clusters: shadow 100% for
// 60 s, counted from when the mirror is in force in the whole wave, then
// 1 → 5 → 25 → 100% on the CANARY track without mirroring, the same
// revision (and so the same instances) throughout.
func TestShadowStepThenWeights(t *testing.T) {
	waves := [][]string{{"eu-1", "us-1"}, {"ap-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	v2 := newSpec(t, "v2", waves, shadowStep(100, "60s"), setWeight(1), setWeight(5), setWeight(25), setWeight(100))
	v2.Gates = []*cutoverv1.Gate{{Name: "p99", Metric: "latencyP99", Condition: "<= stable + 50us"}}
	start := s.now
	res := s.step(apply(v2))

	for _, c := range []string{"eu-1", "us-1"} {
		if got := s.mirrors(c); got != "stable:v1=100 shadow:v2=0 mirror 100" {
			t.Fatalf("shadow step: %s wants %s", c, got)
		}
		if cp := s.progress(c); cp.GetMirrorPercent() != 100 || cp.GetCanaryWeight() != 0 {
			t.Errorf("%s progress: mirror %d weight %d", c, cp.GetMirrorPercent(), cp.GetCanaryWeight())
		}
		// The agent's local guard judges the shadow with the rollout's gates.
		if d := rollout.Desired(s.r, s.progress(c)); len(d.GetGuardGates()) != 1 || d.GetStrategy() != "canary" {
			t.Errorf("%s: guard gates %v, strategy %q", c, d.GetGuardGates(), d.GetStrategy())
		}
	}
	if got := s.mirrors("ap-1"); got != "stable:v1=100 mirror 0" {
		t.Errorf("the next wave is touched: %s", got)
	}
	if want := start.Add(24 * time.Hour); !res.WakeAt.Equal(want) {
		t.Errorf("bringing the shadow up: wake at %v, want the progress deadline %v", res.WakeAt, want)
	}

	// Bringing the shadow up takes time; the hold starts once the last
	// cluster of the wave has the mirror in force.
	s.now = start.Add(5 * time.Second)
	s.converge("eu-1")
	if p := showPhase(s.r.GetStatus()); p != "progressing" || s.r.GetStatus().GetCurrentStep() != 0 {
		t.Fatalf("half the wave in force: %s at step %d", p, s.r.GetStatus().GetCurrentStep())
	}
	s.now = start.Add(10 * time.Second)
	res = s.converge("us-1")
	inForce := s.now
	if want := inForce.Add(time.Minute); !res.WakeAt.Equal(want) {
		t.Errorf("shadow in force: wake at %v, want %v", res.WakeAt, want)
	}
	// A report that changes nothing does not restart the hold.
	s.now = inForce.Add(30 * time.Second)
	s.converge("eu-1")
	s.now = inForce.Add(59 * time.Second)
	res = s.step(rollout.Tick{})
	if s.r.GetStatus().GetCurrentStep() != 0 || !res.WakeAt.Equal(inForce.Add(time.Minute)) {
		t.Fatalf("59 s into the hold: step %d, wake at %v", s.r.GetStatus().GetCurrentStep(), res.WakeAt)
	}
	shadowRev := rollout.Desired(s.r, s.progress("eu-1")).GetRevisions()[1]

	s.now = inForce.Add(time.Minute)
	s.step(rollout.Tick{})
	for _, w := range []int32{1, 5, 25} {
		if st := s.r.GetStatus(); st.GetCurrentStep() != stepOf(w) {
			t.Fatalf("at %d%%: step %d", w, st.GetCurrentStep())
		}
		for _, c := range []string{"eu-1", "us-1"} {
			want := fmt.Sprintf("stable:v1=%d canary:v2=%d mirror 0", 100-w, w)
			if got := s.mirrors(c); got != want {
				t.Fatalf("%s wants %s, want %s", c, got, want)
			}
			if cp := s.progress(c); cp.GetMirrorPercent() != 0 || cp.GetCanaryWeight() != w {
				t.Errorf("%s progress: mirror %d weight %d", c, cp.GetMirrorPercent(), cp.GetCanaryWeight())
			}
		}
		canary := rollout.Desired(s.r, s.progress("eu-1")).GetRevisions()[1]
		if !proto.Equal(canary.GetRevision(), shadowRev.GetRevision()) || canary.GetInstances() != shadowRev.GetInstances() {
			t.Errorf("the canary at %d%% is %v, the shadow was %v: the agent would restart it", w, canary, shadowRev)
		}
		s.converge("eu-1", "us-1")
	}
	s.wants("eu-1", "stable:v1=0 canary:v2=100")
	s.converge("eu-1", "us-1") // 100% in force: the wave is promoted
	s.wants("eu-1", "stable:v2=100")
	s.converge("eu-1", "us-1")
	if got := s.mirrors("ap-1"); got != "stable:v1=100 shadow:v2=0 mirror 100" {
		t.Errorf("the next wave starts with the shadow: %s", got)
	}

	var completed []string
	for _, e := range s.r.GetStatus().GetTimeline() {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED && e.GetWave() == 0 {
			completed = append(completed, e.GetMessage())
		}
	}
	if got := fmt.Sprint(completed); got != "[shadow 100% for 60s setWeight 1 setWeight 5 setWeight 25 setWeight 100]" {
		t.Errorf("wave 0 steps completed: %s", got)
	}
}

// stepOf is the index of setWeight w in TestShadowStepThenWeights.
func stepOf(w int32) int32 {
	return map[int32]int32{1: 1, 5: 2, 25: 3, 100: 4}[w]
}

// Without a duration the shadow holds until a promote, Paused with reason
// step, like a pause without one; the steps in between keep the mirror.
func TestShadowStepWithoutDurationWaitsForPromote(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(newSpec(t, "v2", waves, shadowStep(20, ""), pause("10s"), setWeight(10))))
	res := s.converge("eu-1")
	if p := showPhase(s.r.GetStatus()); p != "paused(step)" || !res.WakeAt.IsZero() {
		t.Fatalf("shadow in force: %s, wake at %v; want paused(step) and no wake-up", p, res.WakeAt)
	}
	s.now = s.now.Add(time.Hour)
	s.step(rollout.Tick{})
	if p := showPhase(s.r.GetStatus()); p != "paused(step)" {
		t.Fatalf("an hour later: %s", p)
	}
	s.step(rollout.Promote{})
	if got := s.mirrors("eu-1"); got != "stable:v1=100 shadow:v2=0 mirror 20" || s.r.GetStatus().GetCurrentStep() != 1 {
		t.Fatalf("pausing after the shadow: step %d, eu-1 wants %s", s.r.GetStatus().GetCurrentStep(), got)
	}
	s.now = s.now.Add(10 * time.Second)
	s.step(rollout.Tick{})
	if got := s.mirrors("eu-1"); got != "stable:v1=90 canary:v2=10 mirror 0" {
		t.Errorf("after the pause: eu-1 wants %s", got)
	}
}

// An abort during the shadow returns the wave to stable alone: no shadow,
// no mirror, and at no point any weight on the new revision.
func TestAbortDuringShadowReturnsToStable(t *testing.T) {
	waves := [][]string{{"eu-1", "us-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(newSpec(t, "v2", waves, shadowStep(100, "60s"), setWeight(1))))
	s.converge("eu-1", "us-1")
	s.now = s.now.Add(20 * time.Second)
	res := s.step(rollout.Abort{Reason: "gate p99 failed", Actor: "gate p99"})
	if p := showPhase(s.r.GetStatus()); p != "aborted" {
		t.Fatalf("after the abort: %s", p)
	}
	for _, c := range []string{"eu-1", "us-1"} {
		if got := s.mirrors(c); got != "stable:v1=100 mirror 0" {
			t.Errorf("%s wants %s after the abort", c, got)
		}
		if cp := s.progress(c); cp.GetMirrorPercent() != 0 || cp.GetCanaryWeight() != 0 {
			t.Errorf("%s progress after the abort: mirror %d weight %d", c, cp.GetMirrorPercent(), cp.GetCanaryWeight())
		}
		if d := res.Desired[c]; d == nil || d.GetMirrorPercent() != 0 {
			t.Errorf("%s was not sent its stable state: %v", c, d)
		}
	}
}

// The duration is time with the mirror in force: a cluster that loses it
// (an instance died) starts the hold afresh once it is back, and one that
// never gets it in force fails at the progress deadline.
func TestShadowStepHoldNeedsTheMirrorInForce(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	v2 := newSpec(t, "v2", waves, shadowStep(50, "60s"), setWeight(1))
	v2.ProgressDeadline = "30s"
	s.step(apply(v2))
	gen := s.progress("eu-1").GetDesiredGeneration()
	start := s.now
	s.converge("eu-1")
	s.now = start.Add(40 * time.Second)
	s.step(observed("eu-1", gen, false)) // the shadow lost an instance
	s.now = start.Add(50 * time.Second)
	res := s.step(observed("eu-1", gen, true))
	if want := s.now.Add(time.Minute); !res.WakeAt.Equal(want) {
		t.Fatalf("back in force: wake at %v, want %v", res.WakeAt, want)
	}
	s.now = start.Add(109 * time.Second)
	s.step(rollout.Tick{})
	if s.r.GetStatus().GetCurrentStep() != 0 {
		t.Fatalf("the hold did not start afresh")
	}
	s.now = start.Add(110 * time.Second)
	s.step(rollout.Tick{})
	if got := s.mirrors("eu-1"); got != "stable:v1=99 canary:v2=1 mirror 0" {
		t.Errorf("after the hold: %s", got)
	}

	// One cluster in force does not put off the deadline of another.
	two := [][]string{{"eu-1", "us-1"}}
	never := deployed(t, newSpec(t, "v1", two, setWeight(50)))
	v2 = newSpec(t, "v2", two, shadowStep(50, "60s"), setWeight(1))
	v2.ProgressDeadline = "30s"
	never.step(apply(v2))
	start = never.now
	never.now = start.Add(20 * time.Second)
	never.converge("eu-1")
	never.now = start.Add(30 * time.Second)
	never.step(rollout.Tick{})
	if p := showPhase(never.r.GetStatus()); p != "aborted" {
		t.Errorf("a shadow never in force in us-1: %s after its progress deadline (%s)", p, never.r.GetStatus().GetMessage())
	}
}

func TestDescribeShadowStep(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(newSpec(t, "v2", waves, shadowStep(20, ""), setWeight(10))))
	s.converge("eu-1")
	if msg := s.r.GetStatus().GetMessage(); msg != "shadowing 20%: waiting for promote" {
		t.Errorf("message %q", msg)
	}
	s.step(rollout.Promote{})
	tl := s.r.GetStatus().GetTimeline()
	for _, e := range tl {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED && e.GetStep() == 0 {
			if e.GetMessage() != "shadow 20% until promoted" {
				t.Errorf("step 0 completed as %q", e.GetMessage())
			}
			return
		}
	}
	t.Errorf("no step 0 in %v", tl)
}
