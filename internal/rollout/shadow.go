package rollout

import (
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// shadow runs the new revision beside stable and copies a share of live
// requests to it; clients only ever get stable's answers. Promoting the
// wave makes the new revision stable.
type shadow struct{}

// Steps: bring up the shadow, then shadow for the duration or until a
// promote.
func (shadow) Steps(s *cutoverv1.RolloutSpec) []*cutoverv1.CanaryStep {
	return []*cutoverv1.CanaryStep{
		step(&cutoverv1.CanaryStep_SetWeight{SetWeight: 0}),
		step(&cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: s.GetStrategy().GetShadow().GetDuration()}}),
	}
}

func (shadow) Shift(s *cutoverv1.RolloutSpec, _ *cutoverv1.ClusterProgress, stable, next *cutoverv1.Revision, d *cutoverv1.DesiredApp) {
	d.MirrorPercent = s.GetStrategy().GetShadow().GetMirrorPercent()
	d.Revisions = []*cutoverv1.DesiredRevision{
		track(cutoverv1.Track_TRACK_STABLE, stable, 100),
		track(cutoverv1.Track_TRACK_SHADOW, next, 0),
	}
}

func (shadow) KeepWarm(*cutoverv1.RolloutSpec) time.Duration { return 0 }

func (shadow) Failure(*cutoverv1.RolloutSpec, []*cutoverv1.ClusterProgress) string { return "" }
