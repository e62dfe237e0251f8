package controller_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/histogram"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// sample is one 100 ms sample of a revision: n requests, errs errors, all
// at latency.
func sample(rev string, seq uint64, at time.Time, n, errs int64, latency time.Duration) *cutoverv1.Sample {
	return &cutoverv1.Sample{App: app, Revision: rev, Seq: seq, EndTime: timestamppb.New(at), IntervalMicros: 100000,
		Requests: n, Errors: errs, LatencyBuckets: []uint32{uint32(histogram.Index(uint64(latency.Microseconds())))}, LatencyCounts: []uint64{uint64(n)}}
}

// canaryAt20 applies v1, then a canary of v2 at 20% guarded by gate, with
// eu-1 in force.
func canaryAt20(t *testing.T, gate *cutoverv1.Gate) (func(*cutoverv1.SampleBatch), func() *cutoverv1.Rollout) {
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", [][]string{{"eu-1"}})})
	c.Observe(t.Context(), "eu-1", converged(1))
	eventually(t, "v1 healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	sp := newSpec("v2", [][]string{{"eu-1"}}, setWeight(20), pause(""))
	sp.Gates = []*cutoverv1.Gate{gate}
	do(t, c, rollout.Apply{Name: app, Spec: sp})
	c.Observe(t.Context(), "eu-1", converged(progress(current(t, c), "eu-1").GetDesiredGeneration()))
	return func(b *cutoverv1.SampleBatch) { c.Samples(t.Context(), "eu-1", b) }, func() *cutoverv1.Rollout { return current(t, c) }
}

// failureLimit consecutive failures are needed; a pass in between resets
// the count; below minSamples nothing is decided.
func TestGateFailureLimitAndMinSamples(t *testing.T) {
	t0 := time.Now()
	send, get := canaryAt20(t, &cutoverv1.Gate{Name: "errors", Metric: "errorRate", Condition: "<= 0.01",
		Window: "100ms", MinSamples: 50, FailureLimit: 2, Severity: "critical"})
	batch := func(i int, n, canaryErrs int64) {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		send(&cutoverv1.SampleBatch{Samples: []*cutoverv1.Sample{
			sample("v1", uint64(2*i), at, 400, 0, time.Millisecond),
			sample("v2", uint64(2*i+1), at, n, canaryErrs, time.Millisecond),
		}})
	}
	phase := func() cutoverv1.RolloutPhase { return get().GetStatus().GetPhase() }
	batch(1, 10, 10) // all errors, but 10 < minSamples: inconclusive
	batch(2, 100, 50)
	batch(3, 100, 0) // a pass resets the count
	batch(4, 100, 50)
	time.Sleep(50 * time.Millisecond)
	if p := phase(); p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED {
		t.Fatalf("aborted before two consecutive failures: %s", get().GetStatus().GetMessage())
	}
	batch(5, 100, 50)
	eventually(t, "the abort", func() bool { return phase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED })
	if msg := get().GetStatus().GetMessage(); !containsAll(msg, "gate errors", "errorRate 0.5", "threshold 0.01", "over 100 requests") {
		t.Errorf("abort message %q lacks the evidence", msg)
	}
}

// A warning gate pauses instead, with its evidence.
func TestWarningGatePauses(t *testing.T) {
	t0 := time.Now()
	send, get := canaryAt20(t, &cutoverv1.Gate{Name: "slow", Metric: "latencyP99", Condition: "<= stable + 5ms",
		Window: "1s", MinSamples: 10, FailureLimit: 1, Severity: "warning"})
	send(&cutoverv1.SampleBatch{Samples: []*cutoverv1.Sample{
		sample("v1", 1, t0, 100, 0, time.Millisecond),
		sample("v2", 2, t0, 100, 0, 20*time.Millisecond),
	}})
	eventually(t, "the pause", func() bool {
		st := get().GetStatus()
		return st.GetPauseReason() == cutoverv1.PauseReason_PAUSE_REASON_OPERATOR
	})
	if msg := get().GetStatus().GetMessage(); !containsAll(msg, "paused: gate slow", "latencyP99") {
		t.Errorf("pause message %q", msg)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
