package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// policyYAML is a policy for the demo app with an approval of required.
func policyYAML(required int) string {
	return fmt.Sprintf(`apiVersion: cutover.dev/v1
kind: Policy
metadata: {name: platform}
spec:
  apps: ["dem*"]
  approval: {required: %d}
`, required)
}

// The server applies the policy in its --policy file to the app's
// rollouts, shows it in a dry run, and on SIGHUP puts the file's new
// content in force, keeping the old policies when the file is broken.
func TestPolicyAppliesAndReloadsOnSIGHUP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(policyYAML(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newTwoRegionsWith(t, []string{"--policy", file})
	ctx := f.ctx()
	manifest := f.app("v1", "setWeight: 50").Manifest()
	required := func() int32 {
		t.Helper()
		resp, err := f.env.Rollouts.ApplyRollout(ctx, &cutoverv1.ApplyRolloutRequest{Manifest: manifest, DryRun: true})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if p := resp.GetRollout().GetSpec().GetPolicy(); p != "platform" {
			t.Errorf("dry run under policy %q, want platform", p)
		}
		return resp.GetRollout().GetSpec().GetApproval().GetRequired()
	}
	if n := required(); n != 1 {
		t.Fatalf("approvals required %d, want 1", n)
	}
	if _, err := f.env.Get(ctx, "demo"); err == nil {
		t.Fatal("a dry run stored the rollout")
	}
	hup := func(content, want string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(f.env.Server.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if err := harness.Poll(ctx, 20*time.Millisecond, "the server's log: "+want, func() (bool, error) {
			b, err := os.ReadFile(f.env.Server.Log)
			return strings.Contains(string(b), want), err
		}); err != nil {
			t.Fatal(err)
		}
	}
	hup(policyYAML(2), `msg="policies reloaded" policies=[platform]`)
	if n := required(); n != 2 {
		t.Errorf("after the reload: approvals required %d, want 2", n)
	}
	hup("kind: Policy\nspec: {apps: [\"[\"]}\n", `msg="reload policies: keeping the policies in force"`)
	if n := required(); n != 2 {
		t.Errorf("after a broken reload: approvals required %d, want still 2", n)
	}
	// A real apply is held for the policy's two approvals.
	if _, err := f.env.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "waiting for approval", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL))
	if !strings.Contains(r.GetStatus().GetMessage(), "0 of 2") {
		t.Errorf("message %q", r.GetStatus().GetMessage())
	}
}
