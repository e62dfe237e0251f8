package e2e

import (
	"strings"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// A revision that never becomes ready misses the progress deadline and the
// rollout aborts by itself: no traffic ever reached it, and it is stopped.
func TestRevisionThatNeverGetsReadyAbortsAtTheDeadline(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	app := f.app("v2", "setWeight: 20", "pause: {}")
	app.ExtraArgs = []string{"--ready-delay", "1h"}
	app.ProgressDeadline = "2s"
	if _, err := f.env.Apply(ctx, app.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0) // v2 is not ready: no traffic moves
	r := f.wait(ctx, "aborted by the deadline", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if !strings.Contains(r.GetStatus().GetMessage(), "progress deadline 2s exceeded") {
		t.Errorf("abort message %q does not name the deadline", r.GetStatus().GetMessage())
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	if got := f.processes("v2"); len(got) != 0 {
		t.Errorf("v2 processes still running after the abort: %v", got)
	}
}
