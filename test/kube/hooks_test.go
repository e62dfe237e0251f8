package kube_test

import (
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// Command hooks on the kubernetes runtime: the agent runs them next to the
// cluster with the app's Service as ENDPOINT; a post-promotion hook that
// fails aborts the rollout and the stable Deployment takes every replica
// back.
func TestCommandHooksOnKubernetes(t *testing.T) {
	k := newKEnv(t)
	if err := k.Agents[clusterName].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	k.startAgent("--allow-command-hooks")
	const ns = "hooks"
	createNamespace(t, ns)
	k.apply(canaryManifest("shop", ns, "v1", 2, "", "setWeight: 50"))
	k.waitRollout("shop", "v1 deployed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))

	k.apply(canaryManifest("shop", ns, "v2", 2, "", "setWeight: 50") + `  hooks:
    preTrafficShift:
      - {name: where, command: {command: sh, args: ["-c", "echo endpoint=$ENDPOINT cluster=$CUTOVER_CLUSTER phase=$CUTOVER_PHASE"]}}
    postPromotion:
      - {name: verify, command: {command: sh, args: ["-c", "echo reconciliation failed >&2; exit 4"]}}
`)
	r := k.waitRollout("shop", "aborted by the post-promotion hook", func(r *cutoverv1.Rollout) bool {
		return r.GetSpec().GetRevision().GetName() == "v2" && r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "post-promotion hooks failed: verify in "+clusterName+": exit code 4") {
		t.Errorf("abort message %q", msg)
	}
	var where, verify []*cutoverv1.CheckResult
	for _, run := range r.GetStatus().GetChecks() {
		for _, c := range run.GetResults() {
			switch c.GetName() {
			case "where":
				where = append(where, c)
			case "verify":
				verify = append(verify, c)
			}
		}
	}
	if len(where) == 0 {
		t.Fatal("the pre-traffic-shift hook never ran")
	}
	for _, c := range where {
		if !c.GetPassed() || !strings.Contains(c.GetOutput(), "cluster="+clusterName+" phase=preTrafficShift") ||
			strings.Contains(c.GetOutput(), "endpoint= ") {
			t.Errorf("pre-traffic-shift hook: %v", c)
		}
	}
	if len(verify) != 1 || !strings.Contains(verify[0].GetOutput(), "reconciliation failed") {
		t.Errorf("post-promotion hook: %v", verify)
	}
	waitReplicas(t, ns, "shop", "v1", 2)
}
