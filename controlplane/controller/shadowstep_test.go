package controller_test

import (
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// During a canary's shadow step the gates judge the new revision's
// mirrored copies (samples on the SHADOW track) against stable: a shadow
// within the relative threshold passes, one beyond it aborts the rollout
// before any traffic moved.
func TestGatesJudgeAShadowStep(t *testing.T) {
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", [][]string{{"eu-1"}})})
	c.Observe(t.Context(), "eu-1", converged(1))
	eventually(t, "v1 healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	sp := newSpec("v2", [][]string{{"eu-1"}},
		&cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Shadow{Shadow: &cutoverv1.ShadowStep{MirrorPercent: 100}}}, setWeight(1))
	sp.Gates = []*cutoverv1.Gate{{Name: "p99", Metric: "latencyP99", Condition: "<= stable + 2000us",
		Window: "1s", MinSamples: 50, FailureLimit: 2, Severity: "critical"}}
	do(t, c, rollout.Apply{Name: app, Spec: sp})
	c.Observe(t.Context(), "eu-1", converged(progress(current(t, c), "eu-1").GetDesiredGeneration()))
	eventually(t, "the shadow in force", func() bool {
		return current(t, c).GetStatus().GetPauseReason() == cutoverv1.PauseReason_PAUSE_REASON_STEP
	})

	t0 := time.Now()
	batch := func(i int, shadowLatency time.Duration) {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		shadow := sample("v2", uint64(2*i+1), at, 100, 0, shadowLatency)
		shadow.Track, shadow.Weight = cutoverv1.Track_TRACK_SHADOW, 100
		stable := sample("v1", uint64(2*i), at, 100, 0, time.Millisecond)
		stable.Track, stable.Weight = cutoverv1.Track_TRACK_STABLE, 100
		c.Samples(t.Context(), "eu-1", &cutoverv1.SampleBatch{Samples: []*cutoverv1.Sample{stable, shadow}})
	}
	for i := range 3 {
		batch(i, 2*time.Millisecond) // +1 ms: within the gate
	}
	time.Sleep(50 * time.Millisecond)
	if r := current(t, c); r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED {
		t.Fatalf("a shadow within the gate ended %s: %s", r.GetStatus().GetPhase(), r.GetStatus().GetMessage())
	}
	for i := 3; i < 20; i++ {
		batch(i, 10*time.Millisecond) // +9 ms
	}
	eventually(t, "the abort", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})
	r := current(t, c)
	if msg := r.GetStatus().GetMessage(); !containsAll(msg, "gate p99", "latencyP99", "failed in eu-1") {
		t.Errorf("abort message %q lacks the evidence", msg)
	}
	if cp := progress(r, "eu-1"); cp.GetCanaryWeight() != 0 || cp.GetMirrorPercent() != 0 {
		t.Errorf("after the abort eu-1 has weight %d, mirror %d", cp.GetCanaryWeight(), cp.GetMirrorPercent())
	}
	if r.GetStatus().GetCurrentStep() != 0 {
		t.Errorf("aborted at step %d, want during the shadow (step 0)", r.GetStatus().GetCurrentStep())
	}
}
