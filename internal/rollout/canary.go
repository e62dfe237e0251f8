package rollout

import (
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// canary shifts a growing share of traffic to the new revision, step by
// step, optionally with a header route and its own instance count.
type canary struct{}

func (canary) Steps(s *cutoverv1.RolloutSpec) []*cutoverv1.CanaryStep {
	return s.GetStrategy().GetCanary().GetSteps()
}

// Shift: during a shadow step the new revision is the SHADOW, with the
// mirror share and no weight; otherwise the CANARY at its weight. Either
// way it is the same revision with the same instances, so the agent keeps
// them running when a setWeight ends the shadow.
func (canary) Shift(_ *cutoverv1.RolloutSpec, cp *cutoverv1.ClusterProgress, stable, next *cutoverv1.Revision, d *cutoverv1.DesiredApp) {
	t, w := cutoverv1.Track_TRACK_CANARY, cp.GetCanaryWeight()
	if pct := cp.GetMirrorPercent(); pct > 0 {
		t, w, d.MirrorPercent = cutoverv1.Track_TRACK_SHADOW, 0, pct
	}
	c := track(t, next, w)
	c.Instances = cp.GetCanaryInstances()
	d.Revisions = []*cutoverv1.DesiredRevision{track(cutoverv1.Track_TRACK_STABLE, stable, 100-w), c}
	if h := cp.GetHeaderRoute(); h != nil {
		d.HeaderRoutes = []*cutoverv1.TrackRoute{{Match: h, Track: t}}
	}
}

func (canary) KeepWarm(*cutoverv1.RolloutSpec) time.Duration { return 0 }

func (canary) Failure(*cutoverv1.RolloutSpec, []*cutoverv1.ClusterProgress) string { return "" }
