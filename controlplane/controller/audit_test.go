package controller_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/controlplane/controller"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/store"
)

// auditLines reads the whole trail as "action actor [cluster]: before ->
// after" lines and checks its chain.
func auditLines(t *testing.T, db *store.Bolt) []string {
	t.Helper()
	if n, err := db.VerifyAudit(t.Context()); err != nil {
		t.Fatalf("VerifyAudit after %d records: %v", n, err)
	}
	recs, _, err := db.ListAudit(t.Context(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		l := r.GetAction() + " " + r.GetActor()
		if r.GetCluster() != "" {
			l += " [" + r.GetCluster() + "]"
		}
		if r.GetTarget() != "rollout/"+app || r.GetApp() != app || r.GetTime() == nil {
			t.Errorf("record %d: target %q app %q time %v", r.GetSeq(), r.GetTarget(), r.GetApp(), r.GetTime())
		}
		out = append(out, l+": "+r.GetBefore()+" -> "+r.GetAfter())
	}
	return out
}

// settle reports the rollout's current desired generation in force in eu-1.
func settle(t *testing.T, c *controller.Controller) {
	t.Helper()
	gen := progress(current(t, c), "eu-1").GetDesiredGeneration()
	c.Observe(t.Context(), "eu-1", converged(gen))
	eventually(t, "eu-1 converged", func() bool { return progress(current(t, c), "eu-1").GetConverged() })
}

func expectLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit trail:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Every operator action and every decision of the engine leaves one record,
// by whom, with where the rollout stood before and after.
func TestEveryTimelineEventIsAudited(t *testing.T) {
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	one := [][]string{{"eu-1"}}
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", one), Actor: "alice"})
	settle(t, c)
	eventually(t, "v1 healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v2", one, setWeight(50), pause("")), Actor: "alice"})
	settle(t, c)
	do(t, c, rollout.Pause{Actor: "bob"})
	do(t, c, rollout.Resume{Actor: "bob"})
	do(t, c, rollout.Promote{Actor: "bob"})
	settle(t, c)
	eventually(t, "v2 healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v3", one, setWeight(50), pause("")), Actor: "carol"})
	settle(t, c)
	do(t, c, rollout.Abort{Actor: "carol", Reason: "looks wrong"})
	do(t, c, rollout.Retry{Actor: "dave"})
	settle(t, c)
	if _, err := c.Undo(t.Context(), app, "", "erin"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the undo's pre-flight", func() bool { return len(rollout.PendingChecks(current(t, c))) == 0 })

	expectLines(t, auditLines(t, db), []string{
		"rollout.apply alice:  -> checking v1",
		"checks.passed cutover: checking v1 -> progressing v1 wave 1 step 1",
		"wave.started cutover: checking v1 -> progressing v1 wave 1 step 1",
		"wave.promoted cutover: progressing v1 wave 1 step 1 -> healthy v1",
		"rollout.healthy cutover: progressing v1 wave 1 step 1 -> healthy v1",
		"rollout.apply alice: healthy v1 -> checking v2",
		"checks.passed cutover: checking v2 -> progressing v2 wave 1 step 1",
		"wave.started cutover: checking v2 -> progressing v2 wave 1 step 1",
		"step.completed cutover: progressing v2 wave 1 step 1 -> paused v2 wave 1 step 2",
		"rollout.pause bob: paused v2 wave 1 step 2 -> paused v2 wave 1 step 2",
		"rollout.resume bob: paused v2 wave 1 step 2 -> paused v2 wave 1 step 2", // the pause step still waits
		"rollout.promote bob: paused v2 wave 1 step 2 -> progressing v2 wave 1 step 3",
		"step.completed cutover: paused v2 wave 1 step 2 -> progressing v2 wave 1 step 3",
		"wave.promoted cutover: progressing v2 wave 1 step 3 -> healthy v2",
		"rollout.healthy cutover: progressing v2 wave 1 step 3 -> healthy v2",
		"rollout.apply carol: healthy v2 -> checking v3",
		"checks.passed cutover: checking v3 -> progressing v3 wave 1 step 1",
		"wave.started cutover: checking v3 -> progressing v3 wave 1 step 1",
		"step.completed cutover: progressing v3 wave 1 step 1 -> paused v3 wave 1 step 2",
		"rollout.abort carol: paused v3 wave 1 step 2 -> aborted v3",
		"rollout.retry dave: aborted v3 -> checking v3",
		"checks.passed cutover: checking v3 -> progressing v3 wave 1 step 1",
		"wave.started cutover: checking v3 -> progressing v3 wave 1 step 1",
		"step.completed cutover: progressing v3 wave 1 step 1 -> paused v3 wave 1 step 2",
		"rollout.superseded cutover: paused v3 wave 1 step 2 -> superseded v3",
		"rollout.undo erin: paused v3 wave 1 step 2 -> checking v2",
		"checks.passed cutover: checking v2 -> progressing v2 wave 1 step 1",
		"wave.started cutover: checking v2 -> progressing v2 wave 1 step 1",
	})
}

// A gate's abort is the engine's decision, in the cluster whose samples
// failed; an agent's local guard acts as the agent.
func TestTrippedGatesAreAudited(t *testing.T) {
	t0 := time.Now()
	db, _ := openStore(t)
	c, _ := start(t, db, &publisher{}, time.Now)
	one := [][]string{{"eu-1"}}
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", one), Actor: "alice"})
	settle(t, c)
	sp := newSpec("v2", one, setWeight(20), pause(""))
	sp.Gates = []*cutoverv1.Gate{{Name: "errors", Metric: "errorRate", Condition: "<= 0.01", Window: "1s", MinSamples: 10, FailureLimit: 1}}
	do(t, c, rollout.Apply{Name: app, Spec: sp, Actor: "alice"})
	settle(t, c)
	c.Samples(t.Context(), "eu-1", &cutoverv1.SampleBatch{Samples: []*cutoverv1.Sample{
		sample("v1", 1, t0, 100, 0, time.Millisecond),
		sample("v2", 2, t0, 100, 50, time.Millisecond),
	}})
	eventually(t, "the abort", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})

	do(t, c, rollout.Retry{Actor: "bob"})
	gen := progress(current(t, c), "eu-1").GetDesiredGeneration()
	c.Observe(t.Context(), "eu-1", &cutoverv1.ObservedApp{App: app, ObservedGeneration: gen, Converged: true, GuardTripped: "gate errors failed"})
	eventually(t, "the guard's abort", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})

	got := auditLines(t, db)
	var trips []string
	for _, l := range got {
		if strings.HasPrefix(l, "gate.tripped") || strings.HasPrefix(l, "rollout.abort") {
			trips = append(trips, l)
		}
	}
	expectLines(t, trips, []string{
		"gate.tripped cutover [eu-1]: paused v2 wave 1 step 2 -> aborted v2",
		"gate.tripped agent:eu-1 [eu-1]: progressing v2 wave 1 step 1 -> aborted v2",
	})
	recs, _, err := db.ListAudit(t.Context(), store.AuditQuery{Actor: "cutover"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.GetAction() == "gate.tripped" && !strings.Contains(r.GetReason(), "gate errors") {
			t.Errorf("gate.tripped record's reason %q does not name the gate", r.GetReason())
		}
	}
}
