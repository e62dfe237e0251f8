package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// Given v1 stable, a canary of v2 is aborted, retried to the end, then
// undone back to v1: history lists every rollout with its outcome and who
// did it, each timeline holds every step exactly once, and the proxies
// serve what the last rollout says.
func TestAbortRetryUndoAndHistory(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	if _, err := f.env.Apply(ctx, f.app("v2", "setWeight: 50", "pause: {}").Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "at 50%", harness.AtStep(0, 1))
	f.cli(ctx, "abort", "demo", "--reason", "looked wrong")
	f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	f.expectShare(ctx, "us-east", "v1", 1, 0)

	f.cli(ctx, "retry", "demo")
	for wave := range int32(2) {
		f.wait(ctx, "retried, at 50%", harness.AtStep(wave, 1))
		f.promote(ctx)
	}
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	f.expectShare(ctx, "eu-west", "v2", 1, 0)

	out := f.cli(ctx, "undo", "demo")
	if !strings.Contains(out, "rollout/demo rolling back") {
		t.Errorf("cutover undo printed %q", out)
	}
	for wave := range int32(2) {
		f.wait(ctx, "undo at 50%", harness.AtStep(wave, 1))
		f.expectShare(ctx, []string{"us-east", "eu-west"}[wave], "v1", 0.5, tolerance)
		f.promote(ctx)
	}
	f.wait(ctx, "undone", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)

	var hist struct {
		Rollouts []struct {
			AppliedBy string `json:"appliedBy"`
			Spec      struct {
				Revision struct{ Name string }
			}
			Status struct {
				Phase         string
				RolloutNumber string `json:"rolloutNumber"`
				Timeline      []struct {
					Type    string
					Wave    int
					Step    int
					Actor   string
					Message string
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(f.cli(ctx, "history", "demo", "-o", "json")), &hist); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range hist.Rollouts {
		got = append(got, r.Status.RolloutNumber+":"+r.Spec.Revision.Name+":"+r.Status.Phase)
		if !strings.HasPrefix(r.AppliedBy, "anonymous@127.0.0.1") {
			t.Errorf("rollout %s applied by %q, want the caller's address", r.Status.RolloutNumber, r.AppliedBy)
		}
		seen := map[[2]int]bool{}
		for _, e := range r.Status.Timeline {
			if e.Type == "TIMELINE_EVENT_TYPE_STEP_COMPLETED" {
				k := [2]int{e.Wave, e.Step}
				if seen[k] {
					t.Errorf("rollout %s: step %d of wave %d recorded twice", r.Status.RolloutNumber, e.Step, e.Wave)
				}
				seen[k] = true
			}
		}
	}
	want := "4:v1:ROLLOUT_PHASE_HEALTHY 3:v2:ROLLOUT_PHASE_HEALTHY 2:v2:ROLLOUT_PHASE_ABORTED 1:v1:ROLLOUT_PHASE_HEALTHY"
	if strings.Join(got, " ") != want {
		t.Errorf("history = %v\nwant     %s", got, want)
	}
	timeline := f.cli(ctx, "history", "demo", "2")
	for _, s := range []string{"Aborted", "looked wrong", "anonymous@127.0.0.1"} {
		if !strings.Contains(timeline, s) {
			t.Errorf("cutover history demo 2 lacks %q:\n%s", s, timeline)
		}
	}
	if _, stderr, code, _ := f.env.CLI(ctx, "", "retry", "demo"); code != 1 || !strings.Contains(stderr, "not aborted") {
		t.Errorf("retry of a healthy rollout: exit %d, %q", code, stderr)
	}
}

// cli runs the CLI and fails the test unless it exits 0.
func (f *twoRegions) cli(ctx context.Context, args ...string) string {
	f.t.Helper()
	out, stderr, code, err := f.env.CLI(ctx, "", args...)
	if err != nil || code != 0 {
		f.t.Fatalf("cutover %s: exit %d %v: %s", strings.Join(args, " "), code, err, stderr)
	}
	return out
}
