package controller_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/controlplane/controller"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/store"
)

// startRecording runs a controller that writes evaluation records to db,
// until the returned stop is called or the test ends.
func startRecording(t *testing.T, db *store.Bolt, now func() time.Time) (*controller.Controller, func()) {
	t.Helper()
	c := controller.New(db, &publisher{}, now, slog.New(slog.DiscardHandler)).WithEvaluations(db).WithChecker(passingChecker{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Loaded():
	case <-time.After(waitFor):
		t.Fatal("controller did not load")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// The gate evaluations of a canary are recorded one point a second and
// written when the control plane stops; a restarted one adds to that
// record (it is never replaced by what the new process saw alone), serves
// it merged with what it has not written yet, and writes it when the gate
// aborts the rollout.
func TestEvaluationRecordIsWrittenAndSurvivesARestart(t *testing.T) {
	db, _ := openStore(t)
	clk := &clock{now: time.Date(2027, 5, 3, 9, 30, 0, 0, time.UTC)}
	c, stop := startRecording(t, db, clk.Now)
	do(t, c, rollout.Apply{Name: app, Spec: newSpec("v1", [][]string{{"eu-1"}})})
	c.Observe(t.Context(), "eu-1", converged(1))
	eventually(t, "v1 healthy", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	})
	sp := newSpec("v2", [][]string{{"eu-1"}}, setWeight(20), pause(""))
	sp.Gates = []*cutoverv1.Gate{{Name: "errors", Metric: "errorRate", Condition: "<= 0.01", Window: "100ms", MinSamples: 50, FailureLimit: 3, Severity: "critical"}}
	do(t, c, rollout.Apply{Name: app, Spec: sp})
	c.Observe(t.Context(), "eu-1", converged(progress(current(t, c), "eu-1").GetDesiredGeneration()))
	eventually(t, "v2 at 20%", func() bool { return progress(current(t, c), "eu-1").GetConverged() })

	seq := uint64(0)
	send := func(c *controller.Controller, canaryErrs int64) {
		clk.Add(500 * time.Millisecond)
		seq += 2
		c.Samples(t.Context(), "eu-1", &cutoverv1.SampleBatch{Samples: []*cutoverv1.Sample{
			sample("v1", seq, clk.Now(), 400, 0, time.Millisecond),
			sample("v2", seq+1, clk.Now(), 100, canaryErrs, time.Millisecond),
		}})
	}
	for range 4 { // two seconds of passes, then a restart
		send(c, 0)
	}
	stop()
	rec, err := db.Evaluations(t.Context(), app, 2)
	if err != nil || len(rec.GetSeries()) != 1 || evaluationsIn(rec.GetSeries()[0]) != 4 {
		t.Fatalf("record written at stop = %v, %v; want the 4 evaluations", rec, err)
	}

	c, _ = startRecording(t, db, clk.Now)
	send(c, 50)
	if live, err := c.Evaluations(t.Context(), app, 2); err != nil || len(live.GetSeries()) != 1 || evaluationsIn(live.GetSeries()[0]) != 5 {
		t.Errorf("record read after the restart = %v, %v; want the 4 evaluations before and the one since", live, err)
	}
	send(c, 50)
	send(c, 50) // the third failure in a row: the abort
	eventually(t, "the abort", func() bool {
		return current(t, c).GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})
	eventually(t, "the record written on abort", func() bool {
		rec, err = db.Evaluations(t.Context(), app, 2)
		return err == nil && len(rec.GetSeries()) == 1 && evaluationsIn(rec.GetSeries()[0]) == 7
	})
	s := rec.GetSeries()[0]
	if len(s.GetPoints()) != 4 || s.GetCluster() != "eu-1" || s.GetGate() != "errors" || s.GetMetric() != "errorRate" {
		t.Fatalf("series %s/%s (%s) has %d points, want 4 (one per second)", s.GetCluster(), s.GetGate(), s.GetMetric(), len(s.GetPoints()))
	}
	last := s.GetPoints()[3]
	if last.GetVerdict() != cutoverv1.GateVerdict_GATE_VERDICT_FAIL || last.GetCanary() != 0.5 || last.GetThreshold() != 0.01 ||
		last.GetCanaryRequests() != 100 || last.GetStableRequests() != 400 || last.GetEvidence() == "" {
		t.Errorf("last point = %v, want the failure with its evidence", last)
	}
	if first := s.GetPoints()[0]; first.GetVerdict() != cutoverv1.GateVerdict_GATE_VERDICT_PASS || first.GetEvaluations() != 1 {
		t.Errorf("first point = %v, want the first pass", first)
	}
	// Second 2 held a pass before the restart and a failure after it: the
	// failure shows, both count.
	if p := s.GetPoints()[2]; p.GetVerdict() != cutoverv1.GateVerdict_GATE_VERDICT_FAIL || p.GetEvaluations() != 2 || p.GetFailed() != 1 {
		t.Errorf("point of second 2 = %v", p)
	}
}

func evaluationsIn(s *cutoverv1.GateEvaluationSeries) int {
	n := 0
	for _, p := range s.GetPoints() {
		n += int(p.GetEvaluations())
	}
	return n
}
