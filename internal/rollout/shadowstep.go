package rollout

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// A canary's shadow step ("shadow first, then 1/5/25/100%") runs the new
// revision on the SHADOW track: it gets a copy of mirror_percent of live
// requests and no weight, stable keeps answering every client, and the
// gates judge the copies' samples as the new revision's. The step holds
// once the mirror is in force in the whole wave: for its duration, or until
// a promote when it has none. The mirroring lasts until a setWeight (which
// puts the new revision on the CANARY track, where the agent keeps the same
// instances), the wave's promotion or an abort; steps in between (pause,
// analysis, approval) keep it as it is.

// shadowStep runs a shadow step in the wave and reports whether it is
// complete.
func (m *machine) shadowStep(wave []*cutoverv1.ClusterProgress, s *cutoverv1.ShadowStep) bool {
	st := m.st()
	pct := s.GetMirrorPercent()
	for _, cp := range wave {
		m.setShadow(cp, pct)
	}
	// The step's clock restarts whenever a report puts the mirror in force
	// in the whole wave or loses it there: the hold is time with the mirror
	// in force (as a pause after a setWeight is), and getting it back after
	// a relapse (a shadow instance died) has a full progress deadline.
	if m.waveFlipped(wave) {
		st.StepStartTime = timestamppb.New(m.now)
	}
	if !converged(wave) {
		return m.waiting(fmt.Sprintf("waiting for the shadow (%d%% mirrored) to be in force in wave %s", pct, m.waveName()))
	}
	d := spec.ShadowDuration(s)
	if d == 0 {
		st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED
		st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_STEP
		st.Message = fmt.Sprintf("shadowing %d%%: waiting for promote", pct)
		return false
	}
	if m.now.Before(st.GetStepStartTime().AsTime().Add(d)) {
		st.Message = fmt.Sprintf("shadowing %d%% for %s", pct, d)
		return false
	}
	return true
}

// waveFlipped reports whether this step's report changed whether the
// wave as a whole is in force: its cluster is in the wave and every other
// one is in force.
func (m *machine) waveFlipped(wave []*cutoverv1.ClusterProgress) bool {
	if !slices.ContainsFunc(wave, func(cp *cutoverv1.ClusterProgress) bool { return cp.GetCluster() == m.flipped }) {
		return false
	}
	others := slices.DeleteFunc(slices.Clone(wave), func(cp *cutoverv1.ClusterProgress) bool { return cp.GetCluster() == m.flipped })
	return converged(others)
}

// setShadow puts the new revision on the SHADOW track of a cluster with a
// mirror share and no weight.
func (m *machine) setShadow(cp *cutoverv1.ClusterProgress, pct int32) {
	if cp.GetPhase() == cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING && cp.GetCanaryWeight() == 0 && cp.GetMirrorPercent() == pct {
		return
	}
	before := Desired(m.r, cp)
	cp.Phase, cp.CanaryWeight, cp.MirrorPercent = cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, 0, pct
	m.refresh(cp, before)
}

// shadowWakeAt is when a shadow step wants a Tick: at the end of its hold
// once the mirror is in force, at the progress deadline before.
func (m *machine) shadowWakeAt(s *cutoverv1.ShadowStep) time.Time {
	st := m.st()
	start := st.GetStepStartTime().AsTime()
	if !converged(m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup())) {
		return start.Add(spec.ProgressDeadline(m.r.GetSpec()))
	}
	if d := spec.ShadowDuration(s); d > 0 {
		return start.Add(d)
	}
	return time.Time{}
}

// describeShadow reads e.g. "shadow 100% for 60s".
func describeShadow(s *cutoverv1.ShadowStep) string {
	if d := s.GetDuration(); d != "" {
		return fmt.Sprintf("shadow %d%% for %s", s.GetMirrorPercent(), d)
	}
	return fmt.Sprintf("shadow %d%% until promoted", s.GetMirrorPercent())
}
