package rollout

import (
	"fmt"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// blueGreen runs the new revision beside the active one, reachable only on
// the preview address, and switches all traffic at once when the wave is
// promoted; the old revision stays warm for the scale-down delay.
type blueGreen struct{}

// Steps: bring up the preview (weight 0: no live traffic), optionally
// analyse it, then wait autoPromotionSeconds or for a promote.
func (blueGreen) Steps(s *cutoverv1.RolloutSpec) []*cutoverv1.CanaryStep {
	bg := s.GetStrategy().GetBlueGreen()
	wait := &cutoverv1.PauseStep{}
	if n := bg.GetAutoPromotionSeconds(); n > 0 {
		wait.Duration = (time.Duration(n) * time.Second).String()
	}
	steps := []*cutoverv1.CanaryStep{step(&cutoverv1.CanaryStep_SetWeight{SetWeight: 0})}
	if a := bg.GetPrePromotionAnalysis(); a != nil {
		steps = append(steps, step(&cutoverv1.CanaryStep_Analysis{Analysis: a}))
	}
	return append(steps, step(&cutoverv1.CanaryStep_Pause{Pause: wait}))
}

func (blueGreen) Shift(s *cutoverv1.RolloutSpec, cp *cutoverv1.ClusterProgress, stable, next *cutoverv1.Revision, d *cutoverv1.DesiredApp) {
	d.PreviewListen = spec.PreviewListenOf(s, cp.GetCluster())
	d.Revisions = []*cutoverv1.DesiredRevision{
		track(cutoverv1.Track_TRACK_STABLE, stable, 100),
		track(cutoverv1.Track_TRACK_PREVIEW, next, 0),
	}
	d.SmokeChecks = s.GetStrategy().GetBlueGreen().GetSmokeChecks()
}

func (blueGreen) KeepWarm(s *cutoverv1.RolloutSpec) time.Duration {
	return time.Duration(s.GetStrategy().GetBlueGreen().GetScaleDownDelaySeconds()) * time.Second
}

// Failure: a smoke check of the new revision failed in a cluster.
func (blueGreen) Failure(s *cutoverv1.RolloutSpec, wave []*cutoverv1.ClusterProgress) string {
	for _, cp := range wave {
		for _, o := range cp.GetObservedRevisions() {
			if o.GetRevision() == s.GetRevision().GetName() && o.GetSmoke() != "" && o.GetSmoke() != spec.SmokePassed {
				return fmt.Sprintf("smoke check of %s failed in %s: %s", o.GetRevision(), cp.GetCluster(), o.GetSmoke())
			}
		}
	}
	return ""
}
