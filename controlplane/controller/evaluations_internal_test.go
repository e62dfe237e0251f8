package controller

import (
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

var evalT0 = time.Date(2027, 5, 3, 9, 30, 0, 0, time.UTC)

func compiled(t *testing.T, g *cutoverv1.Gate) *gate.Compiled {
	t.Helper()
	c, err := gate.Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func errorsGate(t *testing.T) *gate.Compiled {
	return compiled(t, &cutoverv1.Gate{Name: "errors", Metric: "errorRate", Condition: "<= 0.01"})
}

func evalPoint(at time.Time, v cutoverv1.GateVerdict) point {
	p := point{at: at, verdict: v, canary: 0.001, stable: 0.001, canaryN: 100, stableN: 400, evaluations: 1}
	if v == cutoverv1.GateVerdict_GATE_VERDICT_FAIL {
		p.canary, p.failed, p.evidence = 0.5, 1, "errorRate 0.5"
	}
	return p
}

// checkSeries asserts a series' invariants: within its bound, one point
// per interval of its resolution (a power of two seconds), oldest first,
// and a point that stands for a failure shows one.
func checkSeries(t *testing.T, s *cutoverv1.GateEvaluationSeries) {
	t.Helper()
	res := time.Duration(s.GetResolutionSeconds()) * time.Second
	if res < time.Second || s.GetResolutionSeconds()&(s.GetResolutionSeconds()-1) != 0 {
		t.Fatalf("resolution %s is not a power of two seconds", res)
	}
	if n := len(s.GetPoints()); n > evalMaxPoints {
		t.Fatalf("%d points, bound %d", n, evalMaxPoints)
	}
	for i, p := range s.GetPoints() {
		if i > 0 {
			prev := s.GetPoints()[i-1].GetTime().AsTime().Truncate(res)
			if !p.GetTime().AsTime().Truncate(res).After(prev) {
				t.Fatalf("points %d and %d share (or reverse) a %s interval", i-1, i, res)
			}
		}
		if p.GetFailed() > 0 && p.GetVerdict() != cutoverv1.GateVerdict_GATE_VERDICT_FAIL {
			t.Fatalf("point %d stands for %d failures but shows %s", i, p.GetFailed(), p.GetVerdict())
		}
	}
}

func totals(s *cutoverv1.GateEvaluationSeries) (evaluations, failed int) {
	for _, p := range s.GetPoints() {
		evaluations += int(p.GetEvaluations())
		failed += int(p.GetFailed())
	}
	return evaluations, failed
}

// Ten evaluations a second make one point a second, which shows the
// failure of its second if there was one, and counts every evaluation.
func TestEvaluationsOnePointPerSecond(t *testing.T) {
	e := newEvaluations()
	g := errorsGate(t)
	id := seriesID{"eu-1", 0}
	for i := range 50 { // 5 s; the 23rd evaluation (second 2) fails
		v := cutoverv1.GateVerdict_GATE_VERDICT_PASS
		if i == 23 {
			v = cutoverv1.GateVerdict_GATE_VERDICT_FAIL
		}
		e.add("web", 2, id, g, evalPoint(evalT0.Add(time.Duration(i)*100*time.Millisecond), v))
	}
	rec, complete := e.snapshot("web", 2)
	if !complete || len(rec.GetSeries()) != 1 {
		t.Fatalf("snapshot = %v, complete %v", rec, complete)
	}
	s := rec.GetSeries()[0]
	checkSeries(t, s)
	if len(s.GetPoints()) != 5 || s.GetResolutionSeconds() != 1 {
		t.Fatalf("%d points at %ds, want 5 at 1s", len(s.GetPoints()), s.GetResolutionSeconds())
	}
	for i, p := range s.GetPoints() {
		wantVerdict, wantTime := cutoverv1.GateVerdict_GATE_VERDICT_PASS, evalT0.Add(time.Duration(i)*time.Second+900*time.Millisecond)
		if i == 2 {
			wantVerdict, wantTime = cutoverv1.GateVerdict_GATE_VERDICT_FAIL, evalT0.Add(2300*time.Millisecond)
		}
		if p.GetVerdict() != wantVerdict || !p.GetTime().AsTime().Equal(wantTime) || p.GetEvaluations() != 10 {
			t.Errorf("point %d = %s at %s for %d evaluations; want %s at %s for 10", i, p.GetVerdict(),
				p.GetTime().AsTime().Format(time.StampMilli), p.GetEvaluations(), wantVerdict, wantTime.Format(time.StampMilli))
		}
		// An absolute condition's threshold is known for every point.
		if p.Threshold == nil || p.GetThreshold() != 0.01 {
			t.Errorf("point %d threshold = %v, want 0.01", i, p.Threshold)
		}
	}
	if s.GetPoints()[2].GetFailed() != 1 || s.GetPoints()[2].GetEvidence() == "" {
		t.Errorf("the failed second: %v", s.GetPoints()[2])
	}
	if s.GetCondition() != "errorRate <= 0.01" || s.GetGate() != "errors" || s.GetCluster() != "eu-1" {
		t.Errorf("series names %q %q %q", s.GetGate(), s.GetCondition(), s.GetCluster())
	}
}

// Three hours of evaluations ten times a second stay within 3,600 points
// per series: the resolution doubles, the whole span is kept, and no
// evaluation or failure goes uncounted.
func TestEvaluationsStayBounded(t *testing.T) {
	e := newEvaluations()
	g := errorsGate(t)
	id := seriesID{"eu-1", 0}
	const n = 3 * 3600 * 10
	fails := 0
	for i := range n {
		v := cutoverv1.GateVerdict_GATE_VERDICT_PASS
		if i%997 == 0 {
			v = cutoverv1.GateVerdict_GATE_VERDICT_FAIL
			fails++
		}
		e.add("web", 1, id, g, evalPoint(evalT0.Add(time.Duration(i)*100*time.Millisecond), v))
	}
	rec, _ := e.snapshot("web", 1)
	s := rec.GetSeries()[0]
	checkSeries(t, s)
	if s.GetResolutionSeconds() != 4 {
		t.Errorf("resolution after 3 h = %ds, want 4s", s.GetResolutionSeconds())
	}
	if got := len(s.GetPoints()); got < evalMaxPoints/2 {
		t.Errorf("%d points after compaction, want at least half the bound", got)
	}
	if first := s.GetPoints()[0].GetTime().AsTime(); first.Sub(evalT0) > 4*time.Second {
		t.Errorf("first point at %s: the start of the rollout was lost", first)
	}
	evaluations, failed := totals(s)
	if evaluations != n || failed != fails {
		t.Errorf("points stand for %d evaluations and %d failures, want %d and %d", evaluations, failed, n, fails)
	}
	shown := 0
	for _, p := range s.GetPoints() {
		if p.GetVerdict() == cutoverv1.GateVerdict_GATE_VERDICT_FAIL {
			shown++
		}
	}
	if shown != fails { // failures are 99.7 s apart: each keeps its point
		t.Errorf("%d points show a failure, want %d", shown, fails)
	}
}

// Points of an older rollout than the app's latest are dropped; a newer
// rollout starts a record of its own and the older one waits for its
// write.
func TestEvaluationsFollowTheLatestRollout(t *testing.T) {
	e := newEvaluations()
	e.store = nopStore{}
	g := errorsGate(t)
	e.add("web", 2, seriesID{"eu-1", 0}, g, evalPoint(evalT0, cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	e.add("web", 3, seriesID{"eu-1", 0}, g, evalPoint(evalT0.Add(time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	e.add("web", 2, seriesID{"eu-1", 0}, g, evalPoint(evalT0.Add(2*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	if got := len(e.unloaded()); got != 2 {
		t.Fatalf("%d records wait to be merged with the store, want 2 (rollouts 2 and 3)", got)
	}
	batch, _ := e.take(map[recordKey]*cutoverv1.RolloutEvaluations{
		{"web", 2}: {Name: "web", RolloutNumber: 2},
		{"web", 3}: {Name: "web", RolloutNumber: 3},
	})
	if len(batch) != 2 {
		t.Fatalf("first write holds %d records, want 2", len(batch))
	}
	for _, r := range batch {
		if n := len(r.GetSeries()[0].GetPoints()); n != 1 {
			t.Errorf("rollout %d has %d points, want 1 (the late point of rollout 2 dropped)", r.GetRolloutNumber(), n)
		}
	}
	if len(e.retired) != 0 {
		t.Errorf("%d written records still held", len(e.retired))
	}
	if batch, _ := e.take(nil); len(batch) != 0 {
		t.Errorf("a write with nothing new holds %d records", len(batch))
	}
}

// A rollout that ended is written at once; once written, its points leave
// memory (reads go to the store) and late points of it are dropped.
func TestEvaluationsOfAnEndedRolloutLeaveMemory(t *testing.T) {
	e := newEvaluations()
	e.store = nopStore{}
	g := errorsGate(t)
	id := seriesID{"eu-1", 0}
	e.add("web", 2, id, g, evalPoint(evalT0, cutoverv1.GateVerdict_GATE_VERDICT_FAIL))
	e.end("web", 2)
	select {
	case <-e.kick:
	default:
		t.Error("the end of a rollout did not ask for a write")
	}
	e.add("web", 2, id, g, evalPoint(evalT0.Add(time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	batch, taken := e.take(map[recordKey]*cutoverv1.RolloutEvaluations{{"web", 2}: {Name: "web", RolloutNumber: 2}})
	if len(batch) != 1 || len(batch[0].GetSeries()[0].GetPoints()) != 1 {
		t.Fatalf("write of the ended rollout = %v, want its one point before the end", batch)
	}
	if rec, _ := e.snapshot("web", 2); rec == nil {
		t.Error("the record left memory before it was written")
	}
	e.written(taken)
	if rec, complete := e.snapshot("web", 2); rec != nil || complete {
		t.Errorf("after the write, memory still serves %v", rec)
	}
	e.add("web", 2, id, g, evalPoint(evalT0.Add(2*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	if batch, _ := e.take(nil); len(batch) != 0 {
		t.Errorf("a late point made a write: %v", batch)
	}
	// The app's next rollout records again.
	e.add("web", 3, id, g, evalPoint(evalT0.Add(3*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	if rec, _ := e.snapshot("web", 3); rec == nil || len(rec.GetSeries()) != 1 {
		t.Errorf("record of the next rollout = %v", rec)
	}
}

// What the store held before a restart goes in front of what was
// recorded since, once, even when a write raced the read.
func TestEvaluationsPrependStored(t *testing.T) {
	e := newEvaluations()
	e.store = nopStore{}
	g := errorsGate(t)
	id := seriesID{"eu-1", 0}
	for i := 20; i < 26; i++ {
		e.add("web", 1, id, g, evalPoint(evalT0.Add(time.Duration(i)*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	}
	before := newEvaluations()
	for i := range 10 {
		before.add("web", 1, id, g, evalPoint(evalT0.Add(time.Duration(i)*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	}
	stored, _ := before.snapshot("web", 1)
	// The read raced a write: the store also holds seconds 20 and 21.
	raced := recordFrom(stored)
	raced.series[id].points = append(raced.series[id].points, evalPoint(evalT0.Add(20*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS),
		evalPoint(evalT0.Add(21*time.Second), cutoverv1.GateVerdict_GATE_VERDICT_PASS))
	batch, _ := e.take(map[recordKey]*cutoverv1.RolloutEvaluations{{"web", 1}: raced.proto()})
	if len(batch) != 1 {
		t.Fatalf("write holds %d records", len(batch))
	}
	s := batch[0].GetSeries()[0]
	checkSeries(t, s)
	if evaluations, _ := totals(s); len(s.GetPoints()) != 16 || evaluations != 16 {
		t.Errorf("merged series: %d points for %d evaluations, want 16 and 16", len(s.GetPoints()), evaluations)
	}
}

type nopStore struct{ EvaluationStore }
