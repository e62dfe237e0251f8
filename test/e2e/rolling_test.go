package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// deployWith deploys rev with n instances per cluster.
func (f *twoRegions) deployWith(ctx context.Context, rev string, n int) {
	f.t.Helper()
	a := f.app(rev, "setWeight: 50")
	a.Instances = n
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		f.t.Fatalf("apply %s: %v", rev, err)
	}
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
}

// startRecorder sends steady load to both regions until the test ends and
// returns the recorder and a function that stops it.
func (f *twoRegions) startRecorder(ctx context.Context) (*recorder, func()) {
	rec := newRecorder(f)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range []string{"us-east", "eu-west"} {
		wg.Add(1)
		go func() { defer wg.Done(); rec.run(ctx, c) }()
	}
	return rec, func() { cancel(); wg.Wait() }
}

// capacity records, from the agents' reports, the fewest ready instances a
// cluster had while the rollout ran.
func (f *twoRegions) capacity(ctx context.Context, cluster string) (fewest func() int32, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	least := int32(1 << 30)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r, err := f.env.Get(ctx, "demo")
			if err == nil {
				for _, cp := range r.GetStatus().GetClusters() {
					if cp.GetCluster() != cluster {
						continue
					}
					var ready int32
					for _, o := range cp.GetObservedRevisions() {
						ready += o.GetInstancesReady()
					}
					mu.Lock()
					least = min(least, ready)
					mu.Unlock()
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() int32 { mu.Lock(); defer mu.Unlock(); return least }, func() { cancel(); <-done }
}

// Given v1 with four instances per region, a rolling update in batches of
// two replaces half the instances, pauses (traffic follows the instances:
// half to v2), then the rest; capacity never drops below four ready
// instances, and no request fails along the way.
func TestRollingReplacesInBatches(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deployWith(ctx, "v1", 4)
	rec, stop := f.startRecorder(ctx)
	least, stopWatch := f.capacity(ctx, "us-east")

	a := f.app("v2")
	a.Instances = 4
	a.ExtraArgs = []string{"--ready-delay", "300ms"} // replacements take a moment
	a.Rolling = &harness.Rolling{BatchSize: "2", Pause: "1h"}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "first batch in us-east", func(r *cutoverv1.Rollout) bool {
		st := r.GetStatus()
		return st.GetCurrentWave() == 0 && st.GetCurrentStep() == 1 && harness.Settled(r)
	})
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetCluster() == "us-east" && (cp.GetCanaryWeight() != 50 || cp.GetCanaryInstances() != 2) {
			t.Errorf("us-east status after the first batch: weight %d, %d new instances; want 50 and 2", cp.GetCanaryWeight(), cp.GetCanaryInstances())
		}
	}
	f.expectShare(ctx, "us-east", "v2", 0.5, tolerance)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
	if v1, v2 := len(f.processes("v1")), len(f.processes("v2")); v1 != 6 || v2 != 2 {
		t.Errorf("after the first batch: %d v1 and %d v2 processes, want 6 (2 in us-east, 4 in eu-west) and 2", v1, v2)
	}
	for wave := range int32(2) {
		f.wait(ctx, "between batches", harness.AtStepSettled(wave, 1))
		f.promote(ctx) // past the pause between batches: the last batch
	}
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	stopWatch()
	stop()
	if got := least(); got < 4 {
		t.Errorf("us-east had only %d ready instances during the rolling update, want never fewer than 4", got)
	}
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
	if v1, v2 := len(f.processes("v1")), len(f.processes("v2")); v1 != 0 || v2 != 8 {
		t.Errorf("at the end: %d v1 and %d v2 processes, want 0 and 8", v1, v2)
	}
	rec.check(t, time0, 20)
}

// A rolling update whose second batch never becomes ready reaches the
// failure threshold: the rollout aborts and the instance the first batch
// replaced rolls back, while clients never see a failure.
func TestRollingBatchThatFailsReadinessRollsBack(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deployWith(ctx, "v1", 3)
	ready := filepath.Join(t.TempDir(), "v2-ready")
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, stop := f.startRecorder(ctx)

	a := f.app("v2")
	a.Instances = 3
	a.ExtraArgs = []string{"--ready-file", ready}
	a.ReadyTimeout = "1s"
	a.Rolling = &harness.Rolling{BatchSize: "1", Pause: "1h", FailureThreshold: 1}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "first batch replaced", harness.AtStepSettled(0, 1))
	if v1, v2 := len(f.processes("v1")), len(f.processes("v2")); v1 != 5 || v2 != 1 {
		t.Fatalf("after the first batch: %d v1 and %d v2 processes, want 5 and 1", v1, v2)
	}
	if err := os.Remove(ready); err != nil { // from now on new v2 instances never get ready
		t.Fatal(err)
	}
	f.promote(ctx)
	r := f.wait(ctx, "rolled back", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	stop()
	if msg := r.GetStatus().GetMessage(); !containsAll(msg, "failed in us-east", "failure threshold 1") {
		t.Errorf("abort message %q does not say which instances failed where", msg)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	if v1, v2 := len(f.processes("v1")), len(f.processes("v2")); v1 != 6 || v2 != 0 {
		t.Errorf("after the roll back: %d v1 and %d v2 processes, want 6 (3 per region) and 0", v1, v2)
	}
	rec.check(t, time0, 20)
}

// maxUnavailable lets that many old instances stop before their
// replacements are ready: capacity dips by at most that much, never more.
func TestRollingMaxUnavailable(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deployWith(ctx, "v1", 4)
	least, stopWatch := f.capacity(ctx, "us-east")
	a := f.app("v2")
	a.Instances = 4
	a.ExtraArgs = []string{"--ready-delay", "500ms"}
	a.Rolling = &harness.Rolling{BatchSize: "2", MaxUnavailable: "1"}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	stopWatch()
	if got := least(); got != 3 {
		t.Errorf("fewest ready instances in us-east: %d, want 3 (4 less maxUnavailable 1)", got)
	}
	f.expectShare(ctx, "us-east", "v2", 1, 0)
}
