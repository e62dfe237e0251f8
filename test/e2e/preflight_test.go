package e2e

import (
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// results lists a rollout's check results of one phase as
// "name@cluster=passed: message" lines.
func results(r *cutoverv1.Rollout, phase string) []*cutoverv1.CheckResult {
	var out []*cutoverv1.CheckResult
	for _, run := range r.GetStatus().GetChecks() {
		if run.GetPhase() == phase {
			out = append(out, run.GetResults()...)
		}
	}
	return out
}

// neverServed fails the test when a revision ever had traffic or ready
// instances in any cluster, as the agents reported it.
func neverServed(t *testing.T, r *cutoverv1.Rollout, rev string) {
	t.Helper()
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING {
			t.Errorf("%s is %s, want untouched", cp.GetCluster(), cp.GetPhase())
		}
		for _, o := range cp.GetObservedRevisions() {
			if o.GetRevision() == rev && (o.GetWeight() > 0 || o.GetInstancesReady() > 0) {
				t.Errorf("%s runs %s at %d%% with %d ready instances", cp.GetCluster(), rev, o.GetWeight(), o.GetInstancesReady())
			}
		}
	}
}

// A binary whose SHA-256 is not the one the spec pins fails every agent's
// dry run: the rollout aborts before any traffic moves, naming the binary
// and both digests, and the checks are kept in history.
func TestPinnedDigestMismatchMovesNoTraffic(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	a := f.app("v2", "setWeight: 50", "pause: {}")
	a.Sha256 = strings.Repeat("0", 64)
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted by the pre-flight", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	msg := r.GetStatus().GetMessage()
	if !strings.Contains(msg, "pre-flight failed: pinned in us-east") || !strings.Contains(msg, "pins "+strings.Repeat("0", 64)) {
		t.Errorf("abort message %q", msg)
	}
	neverServed(t, r, "v2")
	var pinned int
	for _, c := range results(r, "preflight") {
		if c.GetName() == "pinned" {
			pinned++
			if c.GetPassed() || !strings.Contains(c.GetMessage(), "cutover-demoapp has sha256 ") {
				t.Errorf("%s: %v", c.GetCluster(), c)
			}
		}
	}
	if pinned != 2 {
		t.Errorf("%d pinned results, want one per cluster: %v", pinned, results(r, "preflight"))
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	hist, err := f.env.Rollouts.ListRolloutHistory(ctx, &cutoverv1.ListRolloutHistoryRequest{Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if got := hist.GetRollouts()[0]; len(results(got, "preflight")) == 0 {
		t.Error("history has no pre-flight results")
	}
}

// A rollout that targets a cluster whose agent is gone never moves
// traffic anywhere, and says which agent; once it is back, a retry runs.
func TestPreflightNeedsEveryAgentConnected(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	if err := f.env.Agents["eu-west"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := harness.Poll(ctx, 20*time.Millisecond, "eu-west disconnected", func() (bool, error) {
		cs, err := f.env.Clusters.ListClusters(ctx, &cutoverv1.ListClustersRequest{})
		if err != nil {
			return false, err
		}
		for _, c := range cs.GetClusters() {
			if c.GetName() == "eu-west" {
				return c.GetStatus() == cutoverv1.ClusterStatus_CLUSTER_STATUS_DISCONNECTED, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Apply(ctx, f.app("v2", "setWeight: 50").Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted by the pre-flight", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "agent connected in eu-west: the cluster's agent is not connected") {
		t.Errorf("abort message %q", msg)
	}
	neverServed(t, r, "v2")
	f.expectShare(ctx, "us-east", "v1", 1, 0)

	if _, err := f.env.StartAgent(ctx, "eu-west", "eu-west"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Rollouts.RetryRollout(ctx, &cutoverv1.RetryRolloutRequest{Name: "demo"}); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "healthy after the retry", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
}

// Capacity depends on the strategy: with room for 3 instances per agent
// and 2 of v1 running, a blue-green (a full second set) fails the
// pre-flight and moves nothing, while a rolling update one instance at a
// time fits and completes.
func TestPreflightCapacityForTheStrategy(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	for _, r := range regions {
		if err := f.env.Agents[r.Cluster].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := f.env.StartAgentWith(ctx, r.Cluster, r.Region, "--runtime", "local", "--max-instances", "3"); err != nil {
			t.Fatal(err)
		}
	}
	f.deploy(ctx, "v1")
	bg, _ := f.blueGreen("v2", 0, 0)
	if _, err := f.env.Apply(ctx, bg.Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted by the pre-flight", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "capacity in us-east: ") || !strings.Contains(msg, "2 running + 2 more") {
		t.Errorf("abort message %q", msg)
	}
	neverServed(t, r, "v2")

	rolling := f.app("v3")
	rolling.Rolling = &harness.Rolling{BatchSize: "1"}
	if _, err := f.env.Apply(ctx, rolling.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "v3 healthy", func(r *cutoverv1.Rollout) bool {
		return r.GetSpec().GetRevision().GetName() == "v3" && r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	f.expectShare(ctx, "eu-west", "v3", 1, 0)
}
