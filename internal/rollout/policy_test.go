package rollout_test

import (
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// A wave that never reports the step in force fails at the progress
// deadline: by default the rollout aborts back to stable.
func TestProgressDeadlineAborts(t *testing.T) {
	waves := [][]string{{"eu-1"}, {"us-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	sp := newSpec(t, "v2", waves, setWeight(20), pause(""))
	sp.ProgressDeadline = "30s"
	res := s.step(apply(sp))
	if want := s.now.Add(30 * time.Second); !res.WakeAt.Equal(want) {
		t.Fatalf("wake at %v, want the deadline %v", res.WakeAt, want)
	}
	s.step(observed("eu-1", s.progress("eu-1").GetDesiredGeneration(), false)) // not in force yet
	s.now = s.now.Add(29 * time.Second)
	s.step(rollout.Tick{})
	if p := showPhase(s.r.GetStatus()); p != "progressing" {
		t.Fatalf("before the deadline: %s", p)
	}
	s.now = s.now.Add(time.Second)
	s.step(rollout.Tick{})
	if p := showPhase(s.r.GetStatus()); p != "aborted" {
		t.Fatalf("at the deadline: %s, want aborted", p)
	}
	s.wants("eu-1", "stable:v1=100")
	if got := timeline(s.r); got != "STARTED@0.0 CHECKS_PASSED@0.0 WAVE_STARTED@0.0 FAILED@0.0 ABORTED@0.0" {
		t.Errorf("timeline %s", got)
	}
}

// With failurePolicy hold the rollout pauses where it is; resume gives the
// step a fresh deadline.
func TestProgressDeadlineHolds(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	sp := newSpec(t, "v2", waves, setWeight(20), pause(""))
	sp.ProgressDeadline = "30s"
	sp.Targets.FailurePolicy = "hold"
	s.step(apply(sp))
	s.now = s.now.Add(30 * time.Second)
	s.step(rollout.Tick{})
	if p := showPhase(s.r.GetStatus()); p != "paused(failure)" {
		t.Fatalf("at the deadline: %s, want paused(failure)", p)
	}
	s.wants("eu-1", "stable:v1=80 canary:v2=20") // traffic stays where it is
	s.step(rollout.Resume{Actor: "op"})
	res := s.converge("eu-1")
	if p := showPhase(s.r.GetStatus()); p != "paused(step)" {
		t.Fatalf("after resume and convergence: %s", p)
	}
	if !res.WakeAt.IsZero() {
		t.Errorf("wake at %v while paused", res.WakeAt)
	}
}

// A wave with a bake waits that long after its promotion before the next
// wave starts; a promote ends the bake early.
func TestWaveBake(t *testing.T) {
	waves := [][]string{{"eu-1"}, {"us-1"}, {"ap-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	sp := newSpec(t, "v2", waves, setWeight(50))
	sp.Targets.Waves[0].Bake = "1m"
	sp.Targets.Waves[1].Bake = "1m"
	s.step(apply(sp))
	s.converge("eu-1")
	res := s.converge("eu-1") // promoted
	st := s.r.GetStatus()
	if st.GetCurrentWave() != 0 || st.GetBakeUntil() == nil || !res.WakeAt.Equal(s.now.Add(time.Minute)) {
		t.Fatalf("after wave 1: wave %d bake %v wake %v", st.GetCurrentWave(), st.GetBakeUntil(), res.WakeAt)
	}
	s.wants("us-1", "stable:v1=100")
	s.now = s.now.Add(time.Minute)
	s.step(rollout.Tick{})
	if s.r.GetStatus().GetCurrentWave() != 1 {
		t.Fatalf("after the bake: wave %d", s.r.GetStatus().GetCurrentWave())
	}
	s.wants("us-1", "stable:v1=50 canary:v2=50")
	s.converge("us-1")
	s.converge("us-1")
	s.step(rollout.Promote{Actor: "op"}) // skip the second bake
	if s.r.GetStatus().GetCurrentWave() != 2 || s.r.GetStatus().GetBakeUntil() != nil {
		t.Fatalf("promote during a bake: wave %d bake %v", s.r.GetStatus().GetCurrentWave(), s.r.GetStatus().GetBakeUntil())
	}
	s.converge("ap-1")
	s.converge("ap-1")
	if p := showPhase(s.r.GetStatus()); p != "healthy" {
		t.Fatalf("end: %s", p)
	}
	var promoted int
	for _, e := range s.r.GetStatus().GetTimeline() {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_PROMOTED {
			promoted++
		}
	}
	if promoted != 3 {
		t.Errorf("%d WAVE_PROMOTED entries, want 3", promoted)
	}
}
