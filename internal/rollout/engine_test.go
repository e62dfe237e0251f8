package rollout_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
)

// move is one event of a scenario and what the rollout must look like after it.
type move struct {
	// at is the clock, as an offset from t0; zero keeps the previous time.
	at time.Duration
	// ev is the event; when nil, the clusters in converge report the
	// generation they were sent as converged, one Observe each.
	ev       rollout.Event
	converge []string
	want     want
}

type want struct {
	phase string // as showPhase renders it, e.g. "paused(step)"
	wave  int32
	step  int32
	// clusters maps every target to show's rendering of it.
	clusters map[string]string
	// sent lists the clusters in Result.Desired.
	sent []string
	// wake is Result.WakeAt as an offset from t0; zero for none.
	wake time.Duration
	// same expects Changed to be false.
	same bool
}

// play runs moves on s and checks each expectation.
func play(t *testing.T, s *sim, moves []move) {
	t.Helper()
	for i, m := range moves {
		if at := t0.Add(m.at); m.at != 0 && at.After(s.now) {
			s.now = at
		}
		var res rollout.Result
		what := "converge " + strings.Join(m.converge, ",")
		if m.ev != nil {
			res, what = s.step(m.ev), describe(m.ev)
		} else {
			res = s.converge(m.converge...)
		}
		st := s.r.GetStatus()
		w := m.want
		if got := showPhase(st); got != w.phase {
			t.Errorf("move %d (%s): phase %s, want %s (message %q)", i, what, got, w.phase, st.GetMessage())
		}
		if st.GetCurrentWave() != w.wave || st.GetCurrentStep() != w.step {
			t.Errorf("move %d (%s): at wave %d step %d, want wave %d step %d",
				i, what, st.GetCurrentWave(), st.GetCurrentStep(), w.wave, w.step)
		}
		if len(w.clusters) != len(st.GetClusters()) {
			t.Errorf("move %d (%s): %d clusters, want %d", i, what, len(st.GetClusters()), len(w.clusters))
		}
		for _, cp := range st.GetClusters() {
			if got := show(s.r, cp); got != w.clusters[cp.GetCluster()] {
				t.Errorf("move %d (%s): %s is %q, want %q", i, what, cp.GetCluster(), got, w.clusters[cp.GetCluster()])
			}
		}
		if got := sentTo(res); !slices.Equal(got, w.sent) {
			t.Errorf("move %d (%s): desired states sent to %v, want %v", i, what, got, w.sent)
		}
		wake := deadlineWake(res.Rollout)
		if w.wake != 0 {
			wake = t0.Add(w.wake)
		}
		if !res.WakeAt.Equal(wake) {
			t.Errorf("move %d (%s): wake at %v, want %v", i, what, res.WakeAt, wake)
		}
		if res.Changed == w.same {
			t.Errorf("move %d (%s): Changed %t, want %t", i, what, res.Changed, !w.same)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// twoWaves is the layout of most scenarios: one canary region, then the rest.
var twoWaves = [][]string{{"eu-1"}, {"us-1", "ap-1"}}

func canarySteps() []*cutoverv1.CanaryStep {
	return []*cutoverv1.CanaryStep{setWeight(20), pause(""), setWeight(60), pause("5s")}
}

func TestFirstDeploySkipsCanaryStepsAndPromotesWaveByWave(t *testing.T) {
	s := newSim(t)
	play(t, s, []move{
		{ev: apply(newSpec(t, "v1", twoWaves, canarySteps()...)), want: want{
			phase: "progressing", wave: 0, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g1 stable:v1=100",
				"us-1": "pending g0 none",
				"ap-1": "pending g0 none",
			},
			sent: []string{"eu-1"},
		}},
		{at: time.Second, ev: observed("eu-1", 1, false), want: want{
			phase: "progressing", wave: 0, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g1 stable:v1=100",
				"us-1": "pending g0 none",
				"ap-1": "pending g0 none",
			},
		}},
		{converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 1, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g1 stable:v1=100",
				"us-1": "promoted g1 stable:v1=100",
				"ap-1": "promoted g1 stable:v1=100",
			},
			sent: []string{"ap-1", "us-1"},
		}},
		{converge: []string{"us-1"}, want: want{
			phase: "progressing", wave: 1, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g1 stable:v1=100",
				"us-1": "promoted g1 stable:v1=100",
				"ap-1": "promoted g1 stable:v1=100",
			},
		}},
		{at: 2 * time.Second, converge: []string{"ap-1"}, want: want{
			phase: "healthy", wave: 1, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g1 stable:v1=100",
				"us-1": "promoted g1 stable:v1=100",
				"ap-1": "promoted g1 stable:v1=100",
			},
		}},
	})
	st := s.r.GetStatus()
	if got := st.GetEndTime().AsTime(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("end time %v, want %v", got, t0.Add(2*time.Second))
	}
	if st.GetRolloutNumber() != 1 {
		t.Errorf("rollout number %d, want 1", st.GetRolloutNumber())
	}
}

func TestCanaryMovesStepByStepThenWaveByWave(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
	pending := "pending g1 stable:v1=100"
	play(t, s, []move{
		{at: time.Minute, ev: apply(newSpec(t, "v2", twoWaves, canarySteps()...)), want: want{
			phase: "progressing", wave: 0, step: 0,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
			sent:     []string{"eu-1"},
		}},
		{ev: rollout.Tick{}, want: want{
			phase: "progressing", wave: 0, step: 0, same: true,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
		}},
		// A report of the previous generation, however converged, is stale.
		{ev: observed("eu-1", 1, true), want: want{
			phase: "progressing", wave: 0, step: 0, same: true,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
		}},
		// The right generation, not yet in force.
		{ev: observed("eu-1", 2, false), want: want{
			phase: "progressing", wave: 0, step: 0,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
		}},
		{converge: []string{"eu-1"}, want: want{
			phase: "paused(step)", wave: 0, step: 1,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
		}},
		{at: time.Hour, ev: rollout.Tick{}, want: want{
			phase: "paused(step)", wave: 0, step: 1, same: true,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
		}},
		{ev: rollout.Promote{}, want: want{
			phase: "progressing", wave: 0, step: 2,
			clusters: map[string]string{"eu-1": "progressing g3 stable:v1=40 canary:v2=60", "us-1": pending, "ap-1": pending},
			sent:     []string{"eu-1"},
		}},
		{at: 2 * time.Hour, converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 0, step: 3, wake: 2*time.Hour + 5*time.Second,
			clusters: map[string]string{"eu-1": "progressing g3 stable:v1=40 canary:v2=60", "us-1": pending, "ap-1": pending},
		}},
		{at: 2*time.Hour + 5*time.Second - time.Millisecond, ev: rollout.Tick{}, want: want{
			phase: "progressing", wave: 0, step: 3, wake: 2*time.Hour + 5*time.Second, same: true,
			clusters: map[string]string{"eu-1": "progressing g3 stable:v1=40 canary:v2=60", "us-1": pending, "ap-1": pending},
		}},
		{at: 2*time.Hour + 5*time.Second, ev: rollout.Tick{}, want: want{
			phase: "progressing", wave: 0, step: 4,
			clusters: map[string]string{"eu-1": "promoted g4 stable:v2=100", "us-1": pending, "ap-1": pending},
			sent:     []string{"eu-1"},
		}},
		// Wave 2 starts only once wave 1's promotion is in force.
		{converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 1, step: 0,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "progressing g2 stable:v1=80 canary:v2=20",
				"ap-1": "progressing g2 stable:v1=80 canary:v2=20",
			},
			sent: []string{"ap-1", "us-1"},
		}},
		// Every cluster of the wave must be in force.
		{converge: []string{"us-1"}, want: want{
			phase: "progressing", wave: 1, step: 0,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "progressing g2 stable:v1=80 canary:v2=20",
				"ap-1": "progressing g2 stable:v1=80 canary:v2=20",
			},
		}},
		{converge: []string{"ap-1"}, want: want{
			phase: "paused(step)", wave: 1, step: 1,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "progressing g2 stable:v1=80 canary:v2=20",
				"ap-1": "progressing g2 stable:v1=80 canary:v2=20",
			},
		}},
		{ev: rollout.Promote{}, want: want{
			phase: "progressing", wave: 1, step: 2,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "progressing g3 stable:v1=40 canary:v2=60",
				"ap-1": "progressing g3 stable:v1=40 canary:v2=60",
			},
			sent: []string{"ap-1", "us-1"},
		}},
		{at: 3 * time.Hour, converge: []string{"us-1", "ap-1"}, want: want{
			phase: "progressing", wave: 1, step: 3, wake: 3*time.Hour + 5*time.Second,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "progressing g3 stable:v1=40 canary:v2=60",
				"ap-1": "progressing g3 stable:v1=40 canary:v2=60",
			},
		}},
		{at: 3*time.Hour + 6*time.Second, ev: rollout.Tick{}, want: want{
			phase: "progressing", wave: 1, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "promoted g4 stable:v2=100",
				"ap-1": "promoted g4 stable:v2=100",
			},
			sent: []string{"ap-1", "us-1"},
		}},
		{converge: []string{"us-1", "ap-1"}, want: want{
			phase: "healthy", wave: 1, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g4 stable:v2=100",
				"us-1": "promoted g4 stable:v2=100",
				"ap-1": "promoted g4 stable:v2=100",
			},
		}},
	})
	st := s.r.GetStatus()
	if st.GetRolloutNumber() != 2 {
		t.Errorf("rollout number %d, want 2", st.GetRolloutNumber())
	}
	if !st.GetStartTime().AsTime().Equal(t0.Add(time.Minute)) || !s.r.GetCreateTime().AsTime().Equal(t0) {
		t.Errorf("start %v create %v, want the second apply and the first", st.GetStartTime().AsTime(), s.r.GetCreateTime().AsTime())
	}
}

func TestAbortReturnsTouchedClustersToTheirStableRevision(t *testing.T) {
	threeWaves := [][]string{{"eu-1"}, {"us-1"}, {"ap-1"}}
	s := deployed(t, newSpec(t, "v1", threeWaves, setWeight(50)))
	play(t, s, []move{
		{ev: apply(newSpec(t, "v2", threeWaves, setWeight(50))), want: want{
			phase: "progressing", wave: 0, step: 0,
			clusters: map[string]string{
				"eu-1": "progressing g2 stable:v1=50 canary:v2=50",
				"us-1": "pending g1 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
			sent: []string{"eu-1"},
		}},
		{converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 0, step: 1,
			clusters: map[string]string{
				"eu-1": "promoted g3 stable:v2=100",
				"us-1": "pending g1 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
			sent: []string{"eu-1"},
		}},
		{converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 1, step: 0,
			clusters: map[string]string{
				"eu-1": "promoted g3 stable:v2=100",
				"us-1": "progressing g2 stable:v1=50 canary:v2=50",
				"ap-1": "pending g1 stable:v1=100",
			},
			sent: []string{"us-1"},
		}},
		{at: time.Minute, ev: rollout.Abort{Reason: "error rate 4%"}, want: want{
			phase: "aborted", wave: 1, step: 0,
			clusters: map[string]string{
				"eu-1": "aborted g4 stable:v1=100",
				"us-1": "aborted g3 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
			sent: []string{"eu-1", "us-1"},
		}},
		{at: 2 * time.Minute, ev: rollout.Abort{Reason: "again"}, want: want{
			phase: "aborted", wave: 1, step: 0, same: true,
			clusters: map[string]string{
				"eu-1": "aborted g4 stable:v1=100",
				"us-1": "aborted g3 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
		}},
		// Agents still report; nothing moves.
		{converge: []string{"eu-1", "us-1"}, want: want{
			phase: "aborted", wave: 1, step: 0,
			clusters: map[string]string{
				"eu-1": "aborted g4 stable:v1=100",
				"us-1": "aborted g3 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
		}},
	})
	st := s.r.GetStatus()
	if st.GetMessage() != "aborted: error rate 4%" || !st.GetEndTime().AsTime().Equal(t0.Add(time.Minute)) {
		t.Errorf("message %q end %v, want the first abort's reason and time", st.GetMessage(), st.GetEndTime().AsTime())
	}
}

func TestAbortOfAFirstDeployRemovesTheApp(t *testing.T) {
	s := newSim(t)
	play(t, s, []move{
		{ev: apply(newSpec(t, "v1", twoWaves, canarySteps()...)), want: want{
			phase: "progressing", wave: 0, step: 4,
			clusters: map[string]string{"eu-1": "promoted g1 stable:v1=100", "us-1": "pending g0 none", "ap-1": "pending g0 none"},
			sent:     []string{"eu-1"},
		}},
		{ev: rollout.Abort{}, want: want{
			phase: "aborted", wave: 0, step: 4,
			clusters: map[string]string{"eu-1": "aborted g2 none", "us-1": "pending g0 none", "ap-1": "pending g0 none"},
			sent:     []string{"eu-1"},
		}},
	})
	if got := s.r.GetStatus().GetMessage(); got != "aborted" {
		t.Errorf("message %q, want %q", got, "aborted")
	}
}

func TestOperatorPauseAndResume(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
	pending := "pending g1 stable:v1=100"
	at20 := map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending}
	at60 := map[string]string{"eu-1": "progressing g3 stable:v1=40 canary:v2=60", "us-1": pending, "ap-1": pending}
	play(t, s, []move{
		{ev: apply(newSpec(t, "v2", twoWaves, canarySteps()...)), want: want{
			phase: "progressing", wave: 0, step: 0, clusters: at20, sent: []string{"eu-1"},
		}},
		{ev: rollout.Pause{}, want: want{phase: "paused(operator)", wave: 0, step: 0, clusters: at20}},
		// The weight comes into force, but a paused rollout holds its step.
		{converge: []string{"eu-1"}, want: want{phase: "paused(operator)", wave: 0, step: 0, clusters: at20}},
		{ev: rollout.Pause{}, want: want{phase: "paused(operator)", wave: 0, step: 0, clusters: at20, same: true}},
		{ev: rollout.Resume{}, want: want{phase: "paused(step)", wave: 0, step: 1, clusters: at20}},
		// Resume lifts only an operator's pause, not a step's.
		{ev: rollout.Resume{}, want: want{phase: "paused(step)", wave: 0, step: 1, clusters: at20, same: true}},
		{ev: rollout.Pause{}, want: want{phase: "paused(operator)", wave: 0, step: 1, clusters: at20}},
		{ev: rollout.Resume{}, want: want{phase: "paused(step)", wave: 0, step: 1, clusters: at20}},
		{ev: rollout.Promote{}, want: want{phase: "progressing", wave: 0, step: 2, clusters: at60, sent: []string{"eu-1"}}},
		{at: 10 * time.Second, converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 0, step: 3, clusters: at60, wake: 15 * time.Second,
		}},
		{at: 12 * time.Second, ev: rollout.Pause{}, want: want{phase: "paused(operator)", wave: 0, step: 3, clusters: at60}},
		{at: 20 * time.Second, ev: rollout.Tick{}, want: want{phase: "paused(operator)", wave: 0, step: 3, clusters: at60, same: true}},
		// The pause ran out while held: resuming moves on at once.
		{ev: rollout.Resume{}, want: want{
			phase: "progressing", wave: 0, step: 4,
			clusters: map[string]string{"eu-1": "promoted g4 stable:v2=100", "us-1": pending, "ap-1": pending},
			sent:     []string{"eu-1"},
		}},
	})
}

func TestPauseStepHeldByAnOperatorIsPromotedByPromote(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
	s.step(apply(newSpec(t, "v2", twoWaves, canarySteps()...)))
	s.converge("eu-1")
	s.step(rollout.Pause{})
	res := s.step(rollout.Promote{})
	st := s.r.GetStatus()
	if got := showPhase(st); got != "progressing" || st.GetCurrentStep() != 2 {
		t.Fatalf("after promote: %s at step %d, want progressing at step 2", got, st.GetCurrentStep())
	}
	if got := sentTo(res); !slices.Equal(got, []string{"eu-1"}) {
		t.Errorf("sent to %v, want [eu-1]", got)
	}
}

func TestPromoteFullSkipsEveryRemainingStepAndWave(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
	play(t, s, []move{
		{ev: apply(newSpec(t, "v2", twoWaves, canarySteps()...)), want: want{
			phase: "progressing", wave: 0, step: 0, sent: []string{"eu-1"},
			clusters: map[string]string{
				"eu-1": "progressing g2 stable:v1=80 canary:v2=20",
				"us-1": "pending g1 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
		}},
		{ev: rollout.Promote{Full: true}, want: want{
			phase: "progressing", wave: 0, step: 4, sent: []string{"eu-1"},
			clusters: map[string]string{
				"eu-1": "promoted g3 stable:v2=100",
				"us-1": "pending g1 stable:v1=100",
				"ap-1": "pending g1 stable:v1=100",
			},
		}},
		// The next wave goes straight to the new revision: one generation,
		// no canary weight in between.
		{converge: []string{"eu-1"}, want: want{
			phase: "progressing", wave: 1, step: 4, sent: []string{"ap-1", "us-1"},
			clusters: map[string]string{
				"eu-1": "promoted g3 stable:v2=100",
				"us-1": "promoted g2 stable:v2=100",
				"ap-1": "promoted g2 stable:v2=100",
			},
		}},
		{converge: []string{"us-1", "ap-1"}, want: want{
			phase: "healthy", wave: 1, step: 4,
			clusters: map[string]string{
				"eu-1": "promoted g3 stable:v2=100",
				"us-1": "promoted g2 stable:v2=100",
				"ap-1": "promoted g2 stable:v2=100",
			},
		}},
	})
}

func TestPromoteFullLiftsAPause(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
	s.step(apply(newSpec(t, "v2", twoWaves, canarySteps()...)))
	s.converge("eu-1")
	s.step(rollout.Pause{})
	s.step(rollout.Promote{Full: true})
	if got := show(s.r, s.progress("eu-1")); got != "promoted g3 stable:v2=100" {
		t.Fatalf("eu-1 is %q after a full promote, want promoted g3 stable:v2=100", got)
	}
	if got := showPhase(s.r.GetStatus()); got != "progressing" {
		t.Fatalf("phase %s after a full promote, want progressing", got)
	}
}

func TestStepErrors(t *testing.T) {
	healthy := func(t *testing.T) *sim { return deployed(t, newSpec(t, "v1", twoWaves, setWeight(50))) }
	aborted := func(t *testing.T) *sim {
		s := healthy(t)
		s.step(apply(newSpec(t, "v2", twoWaves, setWeight(50))))
		s.step(rollout.Abort{})
		return s
	}
	progressing := func(t *testing.T) *sim {
		s := healthy(t)
		s.step(apply(newSpec(t, "v2", twoWaves, setWeight(50))))
		return s
	}
	none := func(t *testing.T) *sim { return newSim(t) }

	tests := []struct {
		name  string
		setup func(*testing.T) *sim
		ev    rollout.Event
		want  error
	}{
		{"promote without a rollout", none, rollout.Promote{}, rollout.ErrNoRollout},
		{"full promote without a rollout", none, rollout.Promote{Full: true}, rollout.ErrNoRollout},
		{"abort without a rollout", none, rollout.Abort{}, rollout.ErrNoRollout},
		{"pause without a rollout", none, rollout.Pause{}, rollout.ErrNoRollout},
		{"resume without a rollout", none, rollout.Resume{}, rollout.ErrNoRollout},
		{"tick without a rollout", none, rollout.Tick{}, rollout.ErrNoRollout},
		{"observe without a rollout", none, observed("eu-1", 1, true), rollout.ErrNoRollout},
		{"promote a healthy rollout", healthy, rollout.Promote{}, rollout.ErrTerminal},
		{"full promote a healthy rollout", healthy, rollout.Promote{Full: true}, rollout.ErrTerminal},
		{"pause a healthy rollout", healthy, rollout.Pause{}, rollout.ErrTerminal},
		{"resume a healthy rollout", healthy, rollout.Resume{}, rollout.ErrTerminal},
		{"abort a healthy rollout", healthy, rollout.Abort{}, rollout.ErrTerminal},
		{"promote an aborted rollout", aborted, rollout.Promote{}, rollout.ErrTerminal},
		{"pause an aborted rollout", aborted, rollout.Pause{}, rollout.ErrTerminal},
		{"resume an aborted rollout", aborted, rollout.Resume{}, rollout.ErrTerminal},
		{"observe from a non-target", progressing, observed("eu-9", 2, true), rollout.ErrUnknownCluster},
		{"observe from a non-target of a healthy rollout", healthy, observed("eu-9", 1, true), rollout.ErrUnknownCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			before := proto.Clone(s.r)
			res, err := s.try(tt.ev)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if res.Rollout != nil || res.Changed || res.Desired != nil {
				t.Errorf("a failed step returned %+v", res)
			}
			if s.r != nil && !proto.Equal(s.r, before) {
				t.Errorf("a failed step changed the rollout")
			}
		})
	}
}

func TestReapplyingTheSameSpecChangesNothing(t *testing.T) {
	sp := newSpec(t, "v2", twoWaves, canarySteps()...)
	tests := []struct {
		name  string
		setup func(*testing.T) *sim
		wake  time.Duration
	}{
		{"in a timed pause", func(t *testing.T) *sim {
			s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
			s.step(apply(sp))
			s.converge("eu-1")
			s.step(rollout.Promote{})
			s.now = t0.Add(time.Minute)
			s.converge("eu-1")
			return s
		}, time.Minute + 5*time.Second},
		{"paused by a step", func(t *testing.T) *sim {
			s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
			s.step(apply(sp))
			s.converge("eu-1")
			return s
		}, 0},
		{"healthy", func(t *testing.T) *sim { return deployed(t, sp) }, 0},
		{"aborted", func(t *testing.T) *sim {
			s := deployed(t, newSpec(t, "v1", twoWaves, canarySteps()...))
			s.step(apply(sp))
			s.step(rollout.Abort{})
			return s
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			s.now = s.now.Add(2 * time.Second)
			before := proto.Clone(s.r)
			// An equal spec, not the same pointer, as an API call would bring.
			res := s.step(apply(proto.Clone(sp).(*cutoverv1.RolloutSpec)))
			if res.Changed || len(res.Desired) != 0 {
				t.Errorf("Changed %t, desired states for %v; want no change", res.Changed, sentTo(res))
			}
			if !proto.Equal(res.Rollout, before) {
				t.Errorf("the rollout changed:\n got %v\nwant %v", res.Rollout, before)
			}
			wake := deadlineWake(res.Rollout)
			if tt.wake != 0 {
				wake = t0.Add(tt.wake)
			}
			if !res.WakeAt.Equal(wake) {
				t.Errorf("wake at %v, want %v", res.WakeAt, wake)
			}
		})
	}
}

func TestApplyingANewRevisionSupersedesTheRolloutInProgress(t *testing.T) {
	steps := []*cutoverv1.CanaryStep{setWeight(20), pause("")}
	// inWave2 has v2 promoted in wave 1 and at 20% in wave 2.
	inWave2 := func(t *testing.T) *sim {
		s := deployed(t, newSpec(t, "v1", twoWaves, steps...))
		s.step(apply(newSpec(t, "v2", twoWaves, steps...)))
		s.converge("eu-1")
		s.step(rollout.Promote{})
		s.converge("eu-1")
		if got := show(s.r, s.progress("us-1")); got != "progressing g2 stable:v1=80 canary:v2=20" {
			t.Fatalf("setup: us-1 is %q", got)
		}
		return s
	}
	// inWave1 has v2 at 20% in wave 1.
	inWave1 := func(t *testing.T) *sim {
		s := deployed(t, newSpec(t, "v1", twoWaves, steps...))
		s.step(apply(newSpec(t, "v2", twoWaves, steps...)))
		return s
	}
	tests := []struct {
		name  string
		setup func(*testing.T) *sim
		waves [][]string
		want  map[string]string
		sent  []string
	}{{
		name: "promoted wave keeps the superseded revision as its stable one", setup: inWave2, waves: twoWaves,
		want: map[string]string{
			"eu-1": "progressing g4 stable:v2=80 canary:v3=20",
			"us-1": "pending g3 stable:v1=100",
			"ap-1": "pending g3 stable:v1=100",
		},
		sent: []string{"ap-1", "eu-1", "us-1"},
	}, {
		// Withdrawn to its stable while the new revision's pre-flight runs.
		name: "canary in progress restarts from the revision it was replacing", setup: inWave1, waves: twoWaves,
		want: map[string]string{
			"eu-1": "progressing g4 stable:v1=80 canary:v3=20",
			"us-1": "pending g1 stable:v1=100",
			"ap-1": "pending g1 stable:v1=100",
		},
		sent: []string{"eu-1"},
	}, {
		name: "canary moved to a later wave is withdrawn", setup: inWave1,
		waves: [][]string{{"us-1"}, {"eu-1", "ap-1"}},
		want: map[string]string{
			"us-1": "progressing g2 stable:v1=80 canary:v3=20",
			"eu-1": "pending g3 stable:v1=100",
			"ap-1": "pending g1 stable:v1=100",
		},
		sent: []string{"eu-1", "us-1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			s.now = t0.Add(time.Hour)
			play(t, s, []move{{ev: apply(newSpec(t, "v3", tt.waves, steps...)), want: want{
				phase: "progressing", wave: 0, step: 0, clusters: tt.want, sent: tt.sent,
			}}})
			st := s.r.GetStatus()
			if st.GetRolloutNumber() != 3 {
				t.Errorf("rollout number %d, want 3", st.GetRolloutNumber())
			}
			if !st.GetStartTime().AsTime().Equal(s.now) || !s.r.GetCreateTime().AsTime().Equal(t0) {
				t.Errorf("start %v create %v, want the new apply and the first", st.GetStartTime().AsTime(), s.r.GetCreateTime().AsTime())
			}
		})
	}
}

func TestSupersedingAfterAnAbortStartsFromTheOldStable(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(50)))
	s.step(apply(newSpec(t, "v2", twoWaves, setWeight(50))))
	s.step(rollout.Abort{})
	play(t, s, []move{{ev: apply(newSpec(t, "v3", twoWaves, setWeight(50))), want: want{
		phase: "progressing", wave: 0, step: 0, sent: []string{"eu-1"},
		clusters: map[string]string{
			"eu-1": "progressing g4 stable:v1=50 canary:v3=50",
			"us-1": "pending g1 stable:v1=100",
			"ap-1": "pending g1 stable:v1=100",
		},
	}}})
}

func TestClusterNewToTheAppJoinsACanaryAtTheNewRevision(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", [][]string{{"eu-1"}, {"us-1"}}, setWeight(20)))
	grown := [][]string{{"eu-1", "eu-2"}, {"us-1"}}
	play(t, s, []move{
		{ev: apply(newSpec(t, "v2", grown, setWeight(20), pause(""))), want: want{
			phase: "progressing", wave: 0, step: 0, sent: []string{"eu-1", "eu-2"},
			clusters: map[string]string{
				"eu-1": "progressing g2 stable:v1=80 canary:v2=20",
				"eu-2": "progressing g1 stable:v2=100",
				"us-1": "pending g1 stable:v1=100",
			},
		}},
		// Superseded, the newcomer's stable revision is the one it serves;
		// eu-1's canary of v2 is withdrawn while v3's pre-flight runs.
		{ev: apply(newSpec(t, "v3", grown, setWeight(20), pause(""))), want: want{
			phase: "progressing", wave: 0, step: 0, sent: []string{"eu-1", "eu-2"},
			clusters: map[string]string{
				"eu-1": "progressing g4 stable:v1=80 canary:v3=20",
				"eu-2": "progressing g2 stable:v2=80 canary:v3=20",
				"us-1": "pending g1 stable:v1=100",
			},
		}},
	})
}

func TestDesired(t *testing.T) {
	sp := newSpec(t, "v2", twoWaves, setWeight(30))
	sp.Endpoint.ListenOverrides = map[string]string{"us-1": "127.0.0.1:9090"}
	r := &cutoverv1.Rollout{Name: app, Spec: sp}
	tests := []struct {
		name string
		cp   *cutoverv1.ClusterProgress
		want string
	}{
		{"pending serves its stable", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING, StableRevision: revision("v1"), CanaryWeight: 30, DesiredGeneration: 4}, ":8080 g4 stable:v1=100"},
		{"pending without a stable runs nothing", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING}, ":8080 g0 none"},
		{"progressing splits by weight", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, StableRevision: revision("v1"), CanaryWeight: 30, DesiredGeneration: 5}, ":8080 g5 stable:v1=70 canary:v2=30"},
		{"progressing at 100 keeps the stable at 0", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, StableRevision: revision("v1"), CanaryWeight: 100}, ":8080 g0 stable:v1=0 canary:v2=100"},
		{"progressing without a stable serves the new revision", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, CanaryWeight: 30}, ":8080 g0 stable:v2=100"},
		{"promoted serves the new revision", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED, StableRevision: revision("v1"), CanaryWeight: 100}, ":8080 g0 stable:v2=100"},
		{"aborted serves its stable", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_ABORTED, StableRevision: revision("v1")}, ":8080 g0 stable:v1=100"},
		{"aborted first deploy runs nothing", &cutoverv1.ClusterProgress{Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_ABORTED}, ":8080 g0 none"},
		{"listen override", &cutoverv1.ClusterProgress{Cluster: "us-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED}, "127.0.0.1:9090 g0 stable:v2=100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := rollout.Desired(r, tt.cp)
			got := fmt.Sprintf("%s g%d %s", d.GetListen(), d.GetGeneration(), showRevisions(d))
			if got != tt.want {
				t.Errorf("Desired = %q, want %q", got, tt.want)
			}
			if d.GetApp() != app {
				t.Errorf("app %q, want %q", d.GetApp(), app)
			}
			for _, dr := range d.GetRevisions() {
				want := tt.cp.GetStableRevision()
				if dr.GetRevision().GetName() == "v2" {
					want = sp.GetRevision()
				}
				if !proto.Equal(dr.GetRevision(), want) {
					t.Errorf("revision %v, want the whole revision %v", dr.GetRevision(), want)
				}
			}
		})
	}
}

func TestPhaseHelpers(t *testing.T) {
	tests := []struct {
		phase    cutoverv1.RolloutPhase
		name     string
		terminal bool
	}{
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_UNSPECIFIED, "Unspecified", false},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING, "Progressing", false},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED, "Paused", false},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY, "Healthy", true},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED, "Aborted", true},
	}
	for _, tt := range tests {
		if got := rollout.PhaseName(tt.phase); got != tt.name {
			t.Errorf("PhaseName(%v) = %q, want %q", tt.phase, got, tt.name)
		}
		if got := rollout.Terminal(tt.phase); got != tt.terminal {
			t.Errorf("Terminal(%v) = %t, want %t", tt.phase, got, tt.terminal)
		}
	}
}

// A cluster changed twice in one step keeps its generation when the second
// change undoes the first: the agent has nothing new to do.
func TestAChangeUndoneWithinAStepIsNoChange(t *testing.T) {
	t.Run("steps edited while a canary is in force", func(t *testing.T) {
		s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20), pause("")))
		s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20), pause(""))))
		s.converge("eu-1")
		pending := "pending g1 stable:v1=100"
		play(t, s, []move{{at: time.Minute, ev: apply(newSpec(t, "v2", twoWaves, setWeight(20), pause("10s"))), want: want{
			// Still in force, so the 20% step completes at once.
			phase: "progressing", wave: 0, step: 1, wake: time.Minute + 10*time.Second,
			clusters: map[string]string{"eu-1": "progressing g2 stable:v1=80 canary:v2=20", "us-1": pending, "ap-1": pending},
		}}})
	})
	t.Run("the revision every cluster serves, re-applied with other steps", func(t *testing.T) {
		// Nothing to shift: no canary of a revision beside itself, nothing
		// sent, and a full promote completes at once.
		s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
		pending := "pending g1 stable:v1=100"
		play(t, s, []move{
			{ev: apply(newSpec(t, "v1", twoWaves, pause(""))), want: want{
				phase: "paused(step)", wave: 0, step: 0,
				clusters: map[string]string{"eu-1": "progressing g1 stable:v1=100", "us-1": pending, "ap-1": pending},
			}},
			{ev: rollout.Promote{Full: true}, want: want{
				phase: "healthy", wave: 1, step: 1,
				clusters: map[string]string{
					"eu-1": "promoted g1 stable:v1=100",
					"us-1": "promoted g1 stable:v1=100",
					"ap-1": "promoted g1 stable:v1=100",
				},
			}},
		})
	})
}

// deadlineWake is the wake-up a rollout asks for while it waits for its wave
// to converge: the step's progress deadline. Zero when it does not wait so.
func deadlineWake(r *cutoverv1.Rollout) time.Time {
	st := r.GetStatus()
	if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING || st.GetBakeUntil() != nil {
		return time.Time{}
	}
	if steps := rollout.Steps(r.GetSpec()); int(st.GetCurrentStep()) < len(steps) && steps[st.GetCurrentStep()].GetPause() != nil {
		return time.Time{}
	}
	return st.GetStepStartTime().AsTime().Add(spec.ProgressDeadline(r.GetSpec()))
}
