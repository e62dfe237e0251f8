package rollout

import (
	"fmt"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// rolling replaces the old revision's instances in batches; traffic follows
// the instances. The agent replaces surge-first, so capacity never drops.
type rolling struct{}

// Steps: one setCanaryScale per batch, with the pause between batches.
func (rolling) Steps(s *cutoverv1.RolloutSpec) []*cutoverv1.CanaryStep {
	r := s.GetStrategy().GetRolling()
	total := int(max(s.GetRevision().GetInstances(), 1))
	batch := spec.BatchSize(r, total)
	if s.GetKubernetes().GetDelegateRolling() {
		batch = total // one step: the Deployment's own rolling update paces it
	}
	var steps []*cutoverv1.CanaryStep
	for k := batch; ; k += batch {
		k = min(k, total)
		steps = append(steps, step(&cutoverv1.CanaryStep_SetCanaryScale{SetCanaryScale: &cutoverv1.SetCanaryScale{Instances: int32(k)}}))
		if k == total {
			return steps
		}
		if d := r.GetPauseBetweenBatches(); d != "" {
			steps = append(steps, step(&cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: d}}))
		}
	}
}

// Shift with k new instances: the old revision keeps its other instances,
// and each ready instance gets an equal share of traffic.
func (rolling) Shift(s *cutoverv1.RolloutSpec, cp *cutoverv1.ClusterProgress, stable, next *cutoverv1.Revision, d *cutoverv1.DesiredApp) {
	d.MaxUnavailable = int32(spec.MaxUnavailable(s.GetStrategy().GetRolling(), int(max(stable.GetInstances(), 1))))
	k := cp.GetCanaryInstances()
	if k <= 0 {
		d.Revisions = []*cutoverv1.DesiredRevision{track(cutoverv1.Track_TRACK_STABLE, stable, 100)}
		return
	}
	c := track(cutoverv1.Track_TRACK_CANARY, next, RollingWeight(stable, k))
	c.Instances = k
	old := max(stable.GetInstances(), 1) - k
	if old <= 0 {
		d.Revisions = []*cutoverv1.DesiredRevision{c}
		return
	}
	st := track(cutoverv1.Track_TRACK_STABLE, stable, 100-c.GetWeight())
	st.Instances = old
	d.Revisions = []*cutoverv1.DesiredRevision{st, c}
}

// RollingWeight is the new revision's share of traffic with k new instances
// beside what is left of stable: 100k/(k+old), rounded.
func RollingWeight(stable *cutoverv1.Revision, k int32) int32 {
	old := max(max(stable.GetInstances(), 1)-k, 0)
	if k <= 0 {
		return 0
	}
	return (200*k + k + old) / (2 * (k + old))
}

func (rolling) KeepWarm(*cutoverv1.RolloutSpec) time.Duration { return 0 }

// Failure: new instances that failed readiness at least failureThreshold
// times in one cluster (beyond those a resume forgave).
func (rolling) Failure(s *cutoverv1.RolloutSpec, wave []*cutoverv1.ClusterProgress) string {
	threshold := max(s.GetStrategy().GetRolling().GetFailureThreshold(), 1)
	name := s.GetRevision().GetName()
	for _, cp := range wave {
		if n := newFailures(cp, name); n >= threshold {
			return fmt.Sprintf("%d new instances of %s failed in %s (failure threshold %d)", n, name, cp.GetCluster(), threshold)
		}
	}
	return ""
}
