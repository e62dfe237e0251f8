package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// hammer sends requests to a cluster's proxy from several goroutines until
// ctx ends (bounded by the test's deadline), so gates get enough samples.
func (f *twoRegions) hammer(ctx context.Context, cluster string) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := harness.NewClient()
			for ctx.Err() == nil {
				harness.Hit(ctx, client, harness.URL(f.listen[cluster]))
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// gated is a canary of v2 at 50% for a while, then promoted, guarded by
// gate; extra are the demo app's flags for v2.
func (f *twoRegions) gated(ctx context.Context, gates []string, extra ...string) *cutoverv1.Rollout {
	f.t.Helper()
	f.deploy(ctx, "v1")
	stop := f.hammer(ctx, "us-east")
	defer stop()
	a := f.app("v2", "setWeight: 50", "pause: {duration: 4s}")
	a.ExtraArgs = append(a.ExtraArgs, extra...)
	a.Gates = gates
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		f.t.Fatal(err)
	}
	return f.wait(ctx, "finished", func(r *cutoverv1.Rollout) bool {
		p := r.GetStatus().GetPhase()
		return (p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY ||
			r.GetStatus().GetCurrentWave() == 1) && harness.Settled(r)
	})
}

// A canary answering 5% errors is aborted by an errorRate gate, with the
// evidence in its timeline, and all traffic goes back to v1.
func TestGateAbortsACanaryWithErrors(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	r := f.gated(ctx, []string{"name: errors, metric: errorRate, condition: '<= 0.01', window: 1s, minSamples: 100"}, "--error-rate", "0.05")
	if r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED {
		t.Fatalf("a canary with 5%% errors ended %s", r.GetStatus().GetPhase())
	}
	if msg := r.GetStatus().GetMessage(); !containsAll(msg, "gate errors", "errorRate", "failed in us-east", "threshold 0.01") {
		t.Errorf("abort message lacks the evidence: %q", msg)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
}

// A canary 10 ms slower than stable fails a "<= 1.1x stable" p99 gate.
func TestGateAbortsASlowerCanary(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	r := f.gated(ctx, []string{"name: latency, metric: latencyP99, condition: '<= 1.1x stable', window: 1s, minSamples: 50"}, "--latency", "10ms")
	if r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !strings.Contains(r.GetStatus().GetMessage(), "latencyP99") {
		t.Fatalf("a canary +10ms ended %s: %s", r.GetStatus().GetPhase(), r.GetStatus().GetMessage())
	}
}

// A healthy canary, with the same noise as stable, passes the same gates
// (threshold and judge) and moves on to the next wave.
func TestGatePassesAHealthyCanary(t *testing.T) {
	f := newTwoRegions(t)
	f.args = []string{"--jitter", "300us"} // v1 and v2 alike
	ctx := f.ctx()
	start := time.Now()
	r := f.gated(ctx, []string{
		"name: errors, metric: errorRate, condition: '<= 0.01', window: 1s, minSamples: 100",
		// Fresh processes are slower at first: the comparisons wait 1 s
		// after each traffic shift (warmup), and the judge asks for a
		// minimum effect of 0.15, as docs/spec.md advises.
		"name: judge, metric: latency, judge: {confidence: 0.99, minEffect: 0.15}, window: 1s, minSamples: 50, warmup: 1s",
		"name: p99, metric: latencyP99, condition: '<= 1.5x stable', window: 2s, minSamples: 200, failureLimit: 3, warmup: 1s",
		"name: throughput, metric: throughput, condition: '>= 0.8x stable', window: 2s, minSamples: 200, failureLimit: 3, warmup: 1s",
	})
	if r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || r.GetStatus().GetCurrentWave() != 1 {
		t.Fatalf("a healthy canary ended %s at wave %d: %s", r.GetStatus().GetPhase(), r.GetStatus().GetCurrentWave(), r.GetStatus().GetMessage())
	}
	if time.Since(start) < 4*time.Second {
		t.Errorf("wave 1 finished before its 4 s pause")
	}
}

// The statistical judge: a canary whose latency distribution is clearly
// slower than stable's (Mann-Whitney U at 99% confidence) is aborted.
func TestJudgeAbortsASlowerCanary(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	r := f.gated(ctx, []string{"name: judge, metric: latency, judge: {confidence: 0.99, minEffect: 0.1}, window: 1s, minSamples: 50"}, "--latency", "5ms")
	if r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !strings.Contains(r.GetStatus().GetMessage(), "Mann-Whitney") {
		t.Fatalf("a canary +5ms under the judge ended %s: %s", r.GetStatus().GetPhase(), r.GetStatus().GetMessage())
	}
}
