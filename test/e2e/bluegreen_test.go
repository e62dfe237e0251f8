package e2e

import (
	"context"
	"slices"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// blueGreen is the demo app at rev with a blue-green strategy whose preview
// addresses are fresh loopback ports.
func (f *twoRegions) blueGreen(rev string, auto, scaleDown int) (harness.App, map[string]string) {
	f.t.Helper()
	preview := map[string]string{}
	for c := range f.listen {
		addr, err := harness.FreeAddr()
		if err != nil {
			f.t.Fatal(err)
		}
		preview[c] = addr
	}
	a := f.app(rev)
	a.BlueGreen = &harness.BlueGreen{Preview: preview, AutoPromotion: auto, ScaleDownSeconds: scaleDown}
	return a, preview
}

// Given v1 stable, a blue-green of v2 serves v2 only on the preview address
// until promoted, then switches the first wave at once while v1 stays warm;
// an abort after that switch sends everything back to the very same v1
// processes (no cold start) and stops v2.
func TestBlueGreenSwitchAndAbortAfterSwitch(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	v1 := f.processes("v1")

	app, preview := f.blueGreen("v2", 0, 300)
	if _, err := f.env.Apply(ctx, app.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "preview ready in us-east", harness.AtStep(0, 1))
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectPreview(ctx, preview["us-east"], "v2")
	f.expectShare(ctx, "eu-west", "v1", 1, 0)

	f.promote(ctx)
	f.wait(ctx, "us-east switched, preview ready in eu-west", harness.AtStep(1, 1))
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
	f.expectPreview(ctx, preview["eu-west"], "v2")
	if got := f.processes("v1"); !slices.Equal(got, v1) {
		t.Errorf("v1 processes changed at the switch (want them kept warm): before %v after %v", v1, got)
	}

	f.cli(ctx, "abort", "demo", "--reason", "errors after the switch")
	f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
	if got := f.processes("v1"); !slices.Equal(got, v1) {
		t.Errorf("the switch back started new v1 processes: before %v after %v", v1, got)
	}
	if got := f.processes("v2"); len(got) != 0 {
		t.Errorf("v2 processes still running after the abort: %v", got)
	}
}

// With autoPromotionSeconds the switch needs no promote, and the old
// revision is stopped once scaleDownDelaySeconds have passed, even though
// the rollout is already Healthy.
func TestBlueGreenAutoPromotionAndScaleDown(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	app, _ := f.blueGreen("v2", 1, 1)
	if _, err := f.env.Apply(ctx, app.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
	f.wait(ctx, "old revision scaled down", func(r *cutoverv1.Rollout) bool {
		for _, cp := range r.GetStatus().GetClusters() {
			if cp.GetPreviousRevision() != nil {
				return false
			}
		}
		return harness.Settled(r)
	})
	if got := f.processes("v1"); len(got) != 0 {
		t.Errorf("v1 processes still running after the scale-down delay: %v", got)
	}
}

// expectPreview asserts that every request to a preview address is served
// by version.
func (f *twoRegions) expectPreview(ctx context.Context, addr, version string) {
	f.t.Helper()
	counts := harness.Sample(ctx, f.client, harness.URL(addr), 100)
	if counts[version] != 100 {
		f.t.Errorf("preview %s: %v, want all 100 requests served by %s", addr, counts, version)
	}
}

// Within the scale-down delay, undoing a blue-green switches straight back
// to the warm processes of the previous revision: no preview wait, no
// promote, no cold start.
func TestBlueGreenUndoSwitchesBackToWarmProcesses(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	v1 := f.processes("v1")
	app, _ := f.blueGreen("v2", 1, 300)
	if _, err := f.env.Apply(ctx, app.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "healthy on v2", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	f.expectShare(ctx, "eu-west", "v2", 1, 0)

	f.cli(ctx, "undo", "demo")
	r := f.wait(ctx, "back on v1", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	if r.GetSpec().GetRevision().GetName() != "v1" {
		t.Fatalf("after undo the rollout is at %s", r.GetSpec().GetRevision().GetName())
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
	if got := f.processes("v1"); !slices.Equal(got, v1) {
		t.Errorf("undo started new v1 processes instead of the warm ones: before %v after %v", v1, got)
	}
}
