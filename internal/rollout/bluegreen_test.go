package rollout_test

import (
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

func blueGreenSpec(t *testing.T, rev string, waves [][]string, autoSeconds int32) *cutoverv1.RolloutSpec {
	t.Helper()
	s := newSpec(t, rev, waves, setWeight(100))
	s.Strategy = &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_BlueGreen{BlueGreen: &cutoverv1.BlueGreenStrategy{
		PreviewListen:         ":9090",
		AutoPromotionSeconds:  autoSeconds,
		ScaleDownDelaySeconds: 30,
	}}}
	return s
}

func (s *sim) wants(cluster, want string) {
	s.t.Helper()
	d := rollout.Desired(s.r, s.progress(cluster))
	got := showRevisions(d)
	if d.GetPreviewListen() != "" {
		got += " preview@" + d.GetPreviewListen()
	}
	if got != want {
		s.t.Errorf("%s wants %s, want %s", cluster, got, want)
	}
}

// Blue-green: preview beside the active revision, switch on promote with the
// old one kept warm, the next wave after the switch, scale-down after the
// delay even once Healthy.
func TestBlueGreenPreviewSwitchAndScaleDown(t *testing.T) {
	waves := [][]string{{"eu-1"}, {"us-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(blueGreenSpec(t, "v2", waves, 0)))
	s.wants("eu-1", "stable:v1=100 preview:v2=0 preview@:9090")
	s.wants("us-1", "stable:v1=100")
	if p := showPhase(s.r.GetStatus()); p != "progressing" {
		t.Fatalf("before the preview is ready: %s", p)
	}
	s.converge("eu-1")
	if p := showPhase(s.r.GetStatus()); p != "paused(step)" {
		t.Fatalf("preview ready: %s, want paused awaiting promote", p)
	}

	s.step(rollout.Promote{})
	s.wants("eu-1", "stable:v2=100 previous:v1=0")
	res := s.converge("eu-1")
	if want := s.now.Add(30 * time.Second); !res.WakeAt.Equal(want) {
		t.Errorf("wake at %v, want the scale-down at %v", res.WakeAt, want)
	}
	s.wants("us-1", "stable:v1=100 preview:v2=0 preview@:9090")
	s.converge("us-1")
	s.step(rollout.Promote{})
	s.converge("us-1")
	if p := showPhase(s.r.GetStatus()); p != "healthy" {
		t.Fatalf("after both switches: %s", p)
	}
	s.wants("us-1", "stable:v2=100 previous:v1=0")

	gen := s.progress("eu-1").GetDesiredGeneration()
	s.now = s.now.Add(30 * time.Second)
	res = s.step(rollout.Tick{})
	s.wants("eu-1", "stable:v2=100")
	s.wants("us-1", "stable:v2=100")
	if s.progress("eu-1").GetDesiredGeneration() != gen+1 || res.Desired["eu-1"] == nil {
		t.Errorf("scale-down did not send a new generation to eu-1")
	}
	if p := showPhase(s.r.GetStatus()); p != "healthy" || !res.WakeAt.IsZero() {
		t.Errorf("after scale-down: %s, wake %v", p, res.WakeAt)
	}
}

// An abort after a wave switched goes back to the warm old revision there
// and withdraws the preview elsewhere.
func TestBlueGreenAbortAfterSwitch(t *testing.T) {
	waves := [][]string{{"eu-1"}, {"us-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(blueGreenSpec(t, "v2", waves, 0)))
	s.converge("eu-1")
	s.step(rollout.Promote{})
	s.converge("eu-1")
	s.converge("us-1")
	s.step(rollout.Abort{Reason: "errors after the switch"})
	s.wants("eu-1", "stable:v1=100")
	s.wants("us-1", "stable:v1=100")
	if cp := s.progress("eu-1"); cp.GetPreviousRevision() != nil || cp.GetScaleDownTime() != nil {
		t.Errorf("eu-1 still keeps %v warm after the switch back", cp.GetPreviousRevision().GetName())
	}
}

// autoPromotionSeconds switches without a promote once the preview has been
// ready that long.
func TestBlueGreenAutoPromotion(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(blueGreenSpec(t, "v2", waves, 5)))
	res := s.converge("eu-1")
	if want := s.now.Add(5 * time.Second); !res.WakeAt.Equal(want) {
		t.Fatalf("wake at %v, want %v", res.WakeAt, want)
	}
	s.now = s.now.Add(4 * time.Second)
	s.step(rollout.Tick{})
	s.wants("eu-1", "stable:v1=100 preview:v2=0 preview@:9090")
	s.now = s.now.Add(time.Second)
	s.step(rollout.Tick{})
	s.wants("eu-1", "stable:v2=100 previous:v1=0")
}

func headerRoute(header, value string) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_SetHeaderRoute{SetHeaderRoute: &cutoverv1.HeaderRoute{Header: header, Value: value}}}
}

// A header route is part of a cluster's desired state from its step until
// the wave is promoted, and gone after an abort.
func TestHeaderRouteLivesUntilPromotionOrAbort(t *testing.T) {
	waves := [][]string{{"eu-1"}, {"us-1"}}
	s := deployed(t, newSpec(t, "v1", waves, setWeight(50)))
	s.step(apply(newSpec(t, "v2", waves, headerRoute("X-Canary", "always"), pause(""), setWeight(20), pause(""))))
	routes := func(c string) int { return len(rollout.Desired(s.r, s.progress(c)).GetHeaderRoutes()) }
	s.converge("eu-1") // canary at 0% up
	s.converge("eu-1") // header route in force
	if d := rollout.Desired(s.r, s.progress("eu-1")); len(d.GetHeaderRoutes()) != 1 ||
		d.GetHeaderRoutes()[0].GetTrack() != cutoverv1.Track_TRACK_CANARY || d.GetHeaderRoutes()[0].GetMatch().GetValue() != "always" {
		t.Fatalf("eu-1 header routes %v, want X-Canary: always to the canary", d.GetHeaderRoutes())
	}
	if p := showPhase(s.r.GetStatus()); p != "paused(step)" {
		t.Fatalf("after the header route step: %s", p)
	}
	s.step(rollout.Promote{})
	s.converge("eu-1")
	if routes("eu-1") != 1 {
		t.Error("the header route was dropped by a weight step")
	}
	s.step(rollout.Promote{})
	s.converge("eu-1")
	if routes("eu-1") != 0 {
		t.Error("a promoted cluster still routes by header")
	}
	s.converge("us-1")
	s.converge("us-1")
	if routes("us-1") != 1 {
		t.Fatal("wave 2 has no header route at its header route step")
	}
	s.step(rollout.Abort{})
	if routes("us-1") != 0 || routes("eu-1") != 0 {
		t.Error("an aborted rollout still routes by header")
	}
}
