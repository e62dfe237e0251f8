package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// tolerance for a measured traffic share over 400 requests: more than four
// standard deviations at a 50% split.
const tolerance = 0.11

// Given v1 stable in two regions, when a canary v1->v2 is applied with the
// CLI, each step's weight is what the proxies actually serve, wave by wave,
// and the rollout ends with every request served by v2.
func TestCanaryMovesTrafficStepByStepAcrossWaves(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)

	manifest := f.app("v2", "setWeight: 20", "pause: {}", "setWeight: 60", "pause: {}").Manifest()
	out, stderr, code, err := f.env.CLI(ctx, manifest, "apply", "-f", "-")
	if err != nil || code != 0 {
		t.Fatalf("cutover apply: code %d err %v\n%s%s", code, err, out, stderr)
	}
	if !strings.Contains(out, "rollout/demo configured") {
		t.Errorf("cutover apply printed %q", out)
	}
	// A script waits on the rollout with --watch: it must exit 0 at Healthy.
	watch, err := f.env.StartCLI(ctx, "", "get", "rollout", "demo", "--watch")
	if err != nil {
		t.Fatal(err)
	}

	for wave, cluster := range []string{"us-east", "eu-west"} {
		other := []string{"eu-west", "us-east"}[wave]
		otherVersion := []string{"v1", "v2"}[wave] // the other wave: not started yet, or done

		f.wait(ctx, "at 20%", harness.AtStep(int32(wave), 1))
		f.expectShare(ctx, cluster, "v2", 0.20, tolerance)
		f.expectShare(ctx, other, otherVersion, 1, 0)
		f.promote(ctx)

		f.wait(ctx, "at 60%", harness.AtStep(int32(wave), 3))
		f.expectShare(ctx, cluster, "v2", 0.60, tolerance)
		f.expectShare(ctx, other, otherVersion, 1, 0)
		f.promote(ctx)
	}

	r := f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED {
			t.Errorf("%s: phase %s, want promoted", cp.GetCluster(), cp.GetPhase())
		}
	}
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
	wout, werr, wcode, err := watch()
	if err != nil || wcode != 0 || !strings.Contains(wout, "demo Healthy") ||
		!strings.Contains(wout, "us-east Progressing 60%") || !strings.Contains(wout, "eu-west Promoted 100%") {
		t.Errorf("cutover get rollout --watch: exit %d err %v\nstdout:\n%s\nstderr: %s", wcode, err, wout, werr)
	}
	// Promotion stopped v1's processes: only v2's remain.
	if got := f.processes("v1"); len(got) != 0 {
		t.Errorf("v1 processes still running after promotion: %v", got)
	}
	if got := f.processes("v2"); len(got) != 4 {
		t.Errorf("%d v2 processes, want 2 per region: %v", len(got), got)
	}
}

// Given a canary at 50% in the first wave and v2 already promoted nowhere
// else, abort returns 100% of traffic to v1 in every cluster it touched.
func TestAbortReturnsAllTrafficToStable(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	if _, err := f.env.Apply(ctx, f.app("v2", "setWeight: 50", "pause: {}").Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "at 50%", harness.AtStep(0, 1))
	f.expectShare(ctx, "us-east", "v2", 0.5, tolerance)

	watch, err := f.env.StartCLI(ctx, "", "get", "rollout", "demo", "--watch")
	if err != nil {
		t.Fatal(err)
	}
	// Abort through REST, as an automation would.
	code, body, err := f.env.HTTP(ctx, "POST", "/v1/rollouts/demo:abort", `{"reason":"e2e"}`)
	if err != nil || code != 200 {
		t.Fatalf("POST :abort: %d %v %s", code, err, body)
	}
	f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if _, werr, wcode, err := watch(); err != nil || wcode != 1 || werr != "error: rollout demo aborted: aborted: e2e\n" {
		t.Errorf("cutover get rollout --watch after abort: exit %d err %v stderr %q, want exit 1 and the reason", wcode, err, werr)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
	if got := f.processes("v2"); len(got) != 0 {
		t.Errorf("v2 processes still running after abort: %v", got)
	}
}

// Given a rollout paused at a canary step, when an agent is killed (SIGKILL)
// and started again, it adopts its app processes instead of starting
// duplicates, and the rollout then continues to the end.
func TestAgentRestartAdoptsProcessesAndRolloutContinues(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	if _, err := f.env.Apply(ctx, f.app("v2", "setWeight: 30", "pause: {}").Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "at 30%", harness.AtStep(0, 1))
	before := f.processes("")
	if len(before) != 6 { // us-east: v1 x2, v2 x2; eu-west: v1 x2
		t.Fatalf("%d app processes before the restart, want 6: %v", len(before), before)
	}

	f.env.Agents["us-east"].Kill()
	if _, err := f.env.StartAgent(ctx, "us-east", "us-east"); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "settled after restart", harness.AtStep(0, 1))
	// The proxy lives in the agent: it serves again once the restarted
	// agent has re-checked the adopted instances and routed to them.
	err := harness.Poll(ctx, 10*time.Millisecond, "us-east's proxy serving again", func() (bool, error) {
		return harness.Hit(ctx, f.client, harness.URL(f.listen["us-east"])) != "error", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.expectShare(ctx, "us-east", "v2", 0.3, tolerance)
	if after := f.processes(""); !slices.Equal(before, after) {
		t.Errorf("app processes changed across the agent restart:\nbefore %v\nafter  %v", before, after)
	}

	f.promote(ctx)
	f.wait(ctx, "eu-west at 30%", harness.AtStep(1, 1))
	f.promote(ctx)
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
}

// processes lists, sorted, the pids of this test's demo-app processes,
// optionally only those of one version. They are found by the marker in
// their environment, so other tests' processes never count.
func (f *twoRegions) processes(version string) []int {
	f.t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		f.t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !strings.Contains(string(env), "CUTOVER_TEST_ID="+f.id+"\x00") {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !isRunning(e.Name()) {
			continue
		}
		if version == "" || strings.Contains(string(cmdline), "\x00--version\x00"+version+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func isRunning(pid string) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}
