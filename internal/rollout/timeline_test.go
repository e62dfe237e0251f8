package rollout_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// timeline renders a rollout's timeline as "TYPE@wave.step" entries.
func timeline(r *cutoverv1.Rollout) string {
	var out []string
	for _, e := range r.GetStatus().GetTimeline() {
		t := strings.TrimPrefix(e.GetType().String(), "TIMELINE_EVENT_TYPE_")
		if e.GetActor() != "" {
			t += "(" + e.GetActor() + ")"
		}
		out = append(out, fmt.Sprintf("%s@%d.%d", t, e.GetWave(), e.GetStep()))
	}
	return strings.Join(out, " ")
}

// A canary over two waves records every step of every wave exactly once,
// who promoted, and ends with HEALTHY.
func TestTimelineRecordsEveryStepOnce(t *testing.T) {
	waves := [][]string{{"eu-1"}, {"us-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(rollout.Apply{Name: app, Spec: newSpec(t, "v2", waves, setWeight(20), pause(""), pause("5s")), Actor: "alice"})
	for i, c := range []string{"eu-1", "us-1"} {
		s.converge(c)                                        // 20% in force
		s.step(rollout.Promote{Actor: "bob"})                // past the indefinite pause
		s.now = s.now.Add(5 * time.Second)                   // the timed pause runs out
		s.step(rollout.Tick{})                               //
		s.converge(c)                                        // wave promoted
		if i == 0 && s.r.GetStatus().GetCurrentWave() != 1 { // next wave started
			t.Fatalf("after wave 1: wave %d", s.r.GetStatus().GetCurrentWave())
		}
	}
	want := "STARTED(alice)@0.0 CHECKS_PASSED@0.0 WAVE_STARTED@0.0 STEP_COMPLETED@0.0 PROMOTED(bob)@0.1 STEP_COMPLETED@0.1 STEP_COMPLETED@0.2 " +
		"WAVE_PROMOTED@0.3 WAVE_STARTED@1.0 STEP_COMPLETED@1.0 PROMOTED(bob)@1.1 STEP_COMPLETED@1.1 STEP_COMPLETED@1.2 " +
		"WAVE_PROMOTED@1.3 HEALTHY@1.3"
	if got := timeline(s.r); got != want {
		t.Errorf("timeline:\n got %s\nwant %s", got, want)
	}
	if s.r.GetAppliedBy() != "alice" {
		t.Errorf("applied by %q, want alice", s.r.GetAppliedBy())
	}
}

// Retry restarts an aborted rollout from its first step as a new rollout;
// anything else cannot be retried.
func TestRetryRestartsAnAbortedRollout(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	if _, err := s.try(rollout.Retry{Actor: "carol"}); !errors.Is(err, rollout.ErrNotAborted) {
		t.Fatalf("retry of a healthy rollout: %v, want ErrNotAborted", err)
	}
	s.step(apply(newSpec(t, "v2", waves, setWeight(30), pause(""))))
	s.converge("eu-1")
	s.step(rollout.Abort{Reason: "bad", Actor: "dave"})
	number := s.r.GetStatus().GetRolloutNumber()
	s.converge("eu-1")

	s.step(rollout.Retry{Actor: "carol"})
	st := s.r.GetStatus()
	if st.GetRolloutNumber() != number+1 || st.GetCurrentStep() != 0 || st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING {
		t.Fatalf("after retry: rollout #%d step %d phase %s; want #%d step 0 Progressing",
			st.GetRolloutNumber(), st.GetCurrentStep(), rollout.PhaseName(st.GetPhase()), number+1)
	}
	if d := rollout.Desired(s.r, s.progress("eu-1")); showRevisions(d) != "stable:v1=70 canary:v2=30" {
		t.Errorf("after retry eu-1 wants %s, want the first step again", showRevisions(d))
	}
	if got := timeline(s.r); got != "STARTED(carol)@0.0 CHECKS_PASSED@0.0 WAVE_STARTED@0.0" {
		t.Errorf("timeline after retry: %s", got)
	}
}

// Archive ends a rollout still in progress as Superseded, with a timeline
// entry, and leaves a finished one as it was.
func TestArchive(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	healthy := s.r
	if got := rollout.Archive(healthy, t0.Add(time.Hour)); got.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY ||
		len(got.GetStatus().GetTimeline()) != len(healthy.GetStatus().GetTimeline()) {
		t.Errorf("archived healthy rollout changed: %s, %s", rollout.PhaseName(got.GetStatus().GetPhase()), timeline(got))
	}
	s.step(apply(newSpec(t, "v2", waves, setWeight(30), pause(""))))
	live := s.r
	got := rollout.Archive(live, t0.Add(time.Hour))
	if got.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED || !rollout.Terminal(got.GetStatus().GetPhase()) ||
		!strings.HasSuffix(timeline(got), "SUPERSEDED@0.0") || got.GetStatus().GetEndTime() == nil {
		t.Errorf("archived live rollout: %s, %s", rollout.PhaseName(got.GetStatus().GetPhase()), timeline(got))
	}
	if live.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED {
		t.Error("Archive modified its input")
	}
}
