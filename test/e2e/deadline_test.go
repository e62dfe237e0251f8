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

// Under failurePolicy hold the same failure pauses the rollout instead,
// traffic unchanged; `cutover get rollout --watch` exits 1 so a waiting
// script does not hang, and `cutover abort` then rolls back.
func TestFailureHoldStopsAndHolds(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	app := f.app("v2", "setWeight: 20", "pause: {}")
	app.ExtraArgs = []string{"--ready-delay", "1h"}
	app.ProgressDeadline = "2s"
	app.FailurePolicy = "hold"
	if _, err := f.env.Apply(ctx, app.Manifest()); err != nil {
		t.Fatal(err)
	}
	_, werr, wcode, err := f.env.CLI(ctx, "", "get", "rollout", "demo", "--watch")
	if err != nil || wcode != 1 || !strings.Contains(werr, "rollout demo failed: held after a failure: progress deadline 2s exceeded") {
		t.Errorf("cutover get rollout --watch: exit %d %v, stderr %q", wcode, err, werr)
	}
	r, err := f.env.Get(ctx, "demo")
	if err != nil || r.GetStatus().GetPauseReason() != cutoverv1.PauseReason_PAUSE_REASON_FAILURE {
		t.Fatalf("after the deadline: %v %v", r.GetStatus(), err)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.cli(ctx, "abort", "demo")
	f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if got := f.processes("v2"); len(got) != 0 {
		t.Errorf("v2 processes still running after the abort: %v", got)
	}
}
