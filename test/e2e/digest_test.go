package e2e

import (
	"strings"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// A revision whose binary does not have the SHA-256 its spec pins never
// starts, so no traffic moves to it, and the rollout says why: the agents'
// error names the binary and both digests, and the step fails at its
// deadline.
func TestPinnedDigestMismatchMovesNoTraffic(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	a := f.app("v2", "setWeight: 50", "pause: {}")
	a.ProgressDeadline = "3s"
	manifest := strings.Replace(a.Manifest(), "    command: ", "    sha256: \""+strings.Repeat("0", 64)+"\"\n    command: ", 1)
	if _, err := f.env.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "the agent's error", func(r *cutoverv1.Rollout) bool {
		for _, cp := range r.GetStatus().GetClusters() {
			if strings.Contains(cp.GetAgentError(), "spec.revision.sha256 pins 0000") {
				return true
			}
		}
		return false
	})
	for _, cp := range r.GetStatus().GetClusters() {
		for _, o := range cp.GetObservedRevisions() {
			if o.GetRevision() == "v2" && (o.GetWeight() > 0 || o.GetInstancesReady() > 0) {
				t.Errorf("%s runs v2 at %d%% with %d ready instances", cp.GetCluster(), o.GetWeight(), o.GetInstancesReady())
			}
		}
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	r = f.wait(ctx, "aborted at the deadline", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "progress deadline") {
		t.Errorf("abort message %q", msg)
	}
}
