package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// Given a canary at 50% under an errorRate gate, when the control plane is
// gone (SIGKILL) and the canary turns bad, the agent's local guard routes
// all traffic back to stable by itself; when the control plane returns, the
// rollout is aborted with the guard's evidence instead of flapping back.
func TestLocalGuardRoutesToStableWhileTheControlPlaneIsDown(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	bad := filepath.Join(t.TempDir(), "v2-bad")
	a := f.app("v2", "setWeight: 50", "pause: {}")
	a.ExtraArgs = []string{"--error-file", bad}
	a.Gates = []string{"name: errors, metric: errorRate, condition: '<= 0.05', window: 1s, minSamples: 20"}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "at 50%", harness.AtStep(0, 1))
	stop := f.hammer(ctx, "us-east")
	defer stop()

	f.env.Server.Kill()
	if err := os.WriteFile(bad, nil, 0o600); err != nil { // v2 answers only errors from now on
		t.Fatal(err)
	}
	if err := harness.Poll(ctx, 100*time.Millisecond, "us-east back on v1 alone", func() (bool, error) {
		counts := harness.Sample(ctx, f.client, harness.URL(f.listen["us-east"]), 100)
		return counts["v1"] == 100, nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := f.env.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted after the guard", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "local guard in us-east: gate errors") {
		t.Errorf("abort message %q does not carry the guard's evidence", msg)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
}
