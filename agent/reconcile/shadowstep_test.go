package reconcile_test

import (
	"slices"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// A canary's shadow step then its first weight: the new revision moves
// from the SHADOW track (mirrored copies, no weight) to the CANARY track
// with the same processes, so nothing restarts when real traffic arrives.
func TestShadowThenCanaryKeepsTheInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start()
	listen := freeListen(t)
	v1, v2 := e.rev("v1", 1), e.rev("v2", 2)

	a.apply(desired("web", listen, 1, stable(v1, 100)))
	a.waitConverged("web", 1)
	v1pids := e.pids()

	// Given v2 shadowing 100% of requests.
	shadow := desired("web", listen, 2, stable(v1, 100),
		&cutoverv1.DesiredRevision{Track: cutoverv1.Track_TRACK_SHADOW, Revision: v2})
	shadow.MirrorPercent, shadow.Strategy = 100, "canary"
	a.apply(shadow)
	a.waitConverged("web", 2)
	if got := e.sample(listen, 50); got["v1"] != 50 {
		t.Errorf("while shadowing clients got %v, want v1 only", got)
	}
	o := a.waitObserved("web", "mirrored copies counted", func(o *cutoverv1.ObservedApp) bool {
		for _, r := range o.GetRevisions() {
			if r.GetRevision() == "v2" && r.GetTrack() == cutoverv1.Track_TRACK_SHADOW && r.GetRequests() > 0 {
				return true
			}
		}
		return false
	})
	if o.GetError() != "" {
		t.Errorf("shadowing: error %q", o.GetError())
	}
	shadowPIDs := slices.DeleteFunc(e.pids(), func(p int) bool { return slices.Contains(v1pids, p) })
	if len(shadowPIDs) != 2 {
		t.Fatalf("shadow processes %v, want 2", shadowPIDs)
	}

	// When the canary step gives it 5%.
	c := desired("web", listen, 3, stable(v1, 95), canary(v2, 5))
	c.Strategy = "canary"
	a.apply(c)
	o = a.waitConverged("web", 3)
	assertRevisions(t, o,
		observedRev("v1", cutoverv1.Track_TRACK_STABLE, 1, 1, 95),
		observedRev("v2", cutoverv1.Track_TRACK_CANARY, 2, 2, 5))
	if got := slices.DeleteFunc(e.pids(), func(p int) bool { return slices.Contains(v1pids, p) }); !slices.Equal(got, shadowPIDs) {
		t.Errorf("canary processes %v, want the shadow's %v, untouched", got, shadowPIDs)
	}
	if got := e.sample(listen, 400); got["v2"] == 0 || got["v1"]+got["v2"] != 400 {
		t.Errorf("at 5%% clients got %v, want v1 and some v2", got)
	}
}
