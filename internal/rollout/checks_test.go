package rollout_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

func httpHook(name string) []*cutoverv1.Hook {
	return []*cutoverv1.Hook{{Name: name, Action: &cutoverv1.Hook_Http{Http: &cutoverv1.HTTPHook{Url: "http://127.0.0.1:9/" + name}}}}
}

// pending is the id of the one check run waiting for results.
func (s *sim) pending() string {
	s.t.Helper()
	p := rollout.PendingChecks(s.r)
	if len(p) != 1 {
		s.t.Fatalf("%d check runs pending, want 1 (phase %s, %s)", len(p), showPhase(s.r.GetStatus()), s.r.GetStatus().GetMessage())
	}
	return p[0].GetId()
}

// answer reports the pending run's results: passed, or failed with why.
func (s *sim) answer(id string, why string) rollout.Result {
	s.t.Helper()
	res := &cutoverv1.CheckResult{Name: "agent connected", Kind: "builtin", Cluster: "eu-1", Passed: why == "", Message: why}
	return s.step(rollout.ChecksDone{RolloutNumber: s.r.GetStatus().GetRolloutNumber(), ID: id, Results: []*cutoverv1.CheckResult{res}})
}

// The pre-flight runs before anything moves; a failure aborts the rollout
// before any cluster got the new revision, and says why.
func TestPreflightFailureMovesNoTraffic(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	res := s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20))))
	if p := showPhase(s.r.GetStatus()); p != "checking" {
		t.Fatalf("after apply: %s, want checking", p)
	}
	if len(res.Desired) != 0 {
		t.Fatalf("desired states sent before the pre-flight: %v", sentTo(res))
	}
	if got := s.pending(); got != rollout.CheckPreflight {
		t.Fatalf("pending %q, want the pre-flight", got)
	}
	// Time passing, promotes and ticks do not get past it.
	s.now = s.now.Add(10 * time.Minute)
	s.step(rollout.Tick{})
	s.step(rollout.Promote{Full: true, Actor: "bob"})
	if p := showPhase(s.r.GetStatus()); p != "checking" {
		t.Fatalf("after a full promote: %s, want still checking", p)
	}
	s.answer(rollout.CheckPreflight, "the cluster's agent is not connected")
	st := s.r.GetStatus()
	if p := showPhase(st); p != "aborted" || !strings.Contains(st.GetMessage(), "pre-flight failed: agent connected in eu-1: the cluster's agent is not connected") {
		t.Fatalf("after a failed pre-flight: %s %q", p, st.GetMessage())
	}
	for _, cp := range st.GetClusters() {
		if cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING || cp.GetCanaryWeight() != 0 {
			t.Errorf("%s: %s weight %d, want untouched", cp.GetCluster(), cp.GetPhase(), cp.GetCanaryWeight())
		}
		s.wants(cp.GetCluster(), "stable:v1=100")
	}
	if got := timeline(s.r); !strings.HasSuffix(got, "CHECKS_FAILED@0.1 ABORTED@0.1") || strings.Contains(got, "WAVE_STARTED") {
		t.Errorf("timeline %s", got)
	}
	// Late or repeated results are refused.
	if _, err := s.try(rollout.ChecksDone{RolloutNumber: st.GetRolloutNumber(), ID: rollout.CheckPreflight}); !errors.Is(err, rollout.ErrUnknownCheckRun) {
		t.Errorf("second answer: %v, want ErrUnknownCheckRun", err)
	}
}

// Results of a superseded rollout's run never land on its successor.
func TestResultsOfASupersededRolloutAreRefused(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20))))
	old := s.r.GetStatus().GetRolloutNumber()
	s.step(apply(newSpec(t, "v3", twoWaves, setWeight(20))))
	_, err := s.try(rollout.ChecksDone{RolloutNumber: old, ID: rollout.CheckPreflight,
		Results: []*cutoverv1.CheckResult{{Name: "x", Passed: true}}})
	if !errors.Is(err, rollout.ErrUnknownCheckRun) {
		t.Fatalf("results of rollout %d: %v, want ErrUnknownCheckRun", old, err)
	}
	if p := showPhase(s.r.GetStatus()); p != "checking" {
		t.Errorf("phase %s, want still checking", p)
	}
}

// Hooks run where the issue puts them: pre-rollout once after the
// pre-flight, pre-traffic-shift before each step that moves traffic and
// before each promotion, post-promotion after each wave's promotion.
func TestHooksRunAtTheirPhases(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	sp := newSpec(t, "v2", twoWaves, setWeight(20), pause("1m"), setWeight(20), setWeight(50))
	sp.Hooks = &cutoverv1.Hooks{PreRollout: httpHook("announce"), PreTrafficShift: httpHook("smoke"), PostPromotion: httpHook("verify")}
	s.step(apply(sp))
	var order []string
	next := func() {
		t.Helper()
		id := s.pending()
		order = append(order, id)
		s.answer(id, "")
	}
	next() // pre-flight
	next() // pre-rollout
	if p := showPhase(s.r.GetStatus()); p != "checking" {
		t.Fatalf("before the first setWeight: %s", p)
	}
	s.wants("eu-1", "stable:v1=100") // nothing moved before the hook passed
	next()                           // pre-traffic-shift before 20%
	s.wants("eu-1", "stable:v1=80 canary:v2=20")
	s.converge("eu-1")
	s.now = s.now.Add(time.Minute)
	s.step(rollout.Tick{}) // the pause ends; setWeight 20 again moves nothing, setWeight 50 does
	next()
	s.converge("eu-1")
	next() // before the promotion of wave 1
	s.converge("eu-1")
	next() // after it
	next() // wave 2: before 20%
	s.converge("us-1", "ap-1")
	s.now = s.now.Add(time.Minute)
	s.step(rollout.Tick{})
	next() // before 50%
	s.converge("us-1", "ap-1")
	next() // before the promotion
	s.converge("us-1", "ap-1")
	next() // after it
	if p := showPhase(s.r.GetStatus()); p != "healthy" {
		t.Fatalf("end: %s (%s)", p, s.r.GetStatus().GetMessage())
	}
	want := []string{
		"preflight", "preRollout",
		"preTrafficShift wave 0 step 0", "preTrafficShift wave 0 step 3", "preTrafficShift wave 0 step 4", "postPromotion wave 0",
		"preTrafficShift wave 1 step 0", "preTrafficShift wave 1 step 3", "preTrafficShift wave 1 step 4", "postPromotion wave 1",
	}
	if strings.Join(order, ", ") != strings.Join(want, ", ") {
		t.Errorf("runs:\n got %s\nwant %s", strings.Join(order, ", "), strings.Join(want, ", "))
	}
	for _, run := range s.r.GetStatus().GetChecks() {
		if strings.HasPrefix(run.GetId(), "preTrafficShift wave 1") && strings.Join(run.GetClusters(), ",") != "us-1,ap-1" {
			t.Errorf("%s ran in %v, want the wave's clusters", run.GetId(), run.GetClusters())
		}
	}
}

// A failing pre-traffic-shift hook stops the rollout before the weight
// moves; a failing post-promotion hook returns the promoted wave; the
// on-abort hooks run in every touched cluster after either.
func TestFailingHooksAbort(t *testing.T) {
	t.Run("pre-traffic-shift", func(t *testing.T) {
		s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
		s.manualChecks = true
		sp := newSpec(t, "v2", twoWaves, setWeight(20), setWeight(50))
		sp.Hooks = &cutoverv1.Hooks{PreTrafficShift: httpHook("smoke"), OnAbort: httpHook("page")}
		s.step(apply(sp))
		s.answer(s.pending(), "")
		s.answer(s.pending(), "")
		s.converge("eu-1")
		s.answer(s.pending(), "HTTP 503")
		st := s.r.GetStatus()
		if p := showPhase(st); p != "aborted" || !strings.Contains(st.GetMessage(), "pre-traffic-shift hooks failed") {
			t.Fatalf("%s %q", p, st.GetMessage())
		}
		s.wants("eu-1", "stable:v1=100")
		if id := s.pending(); id != rollout.CheckOnAbort {
			t.Fatalf("pending %s, want the on-abort hooks", id)
		}
		if run := rollout.PendingChecks(s.r)[0]; strings.Join(run.GetClusters(), ",") != "eu-1" {
			t.Errorf("on-abort hooks in %v, want the touched eu-1", run.GetClusters())
		}
		s.answer(rollout.CheckOnAbort, "exit code 1")
		if p := showPhase(s.r.GetStatus()); p != "aborted" {
			t.Errorf("after a failed on-abort hook: %s", p)
		}
		if got := timeline(s.r); !strings.HasSuffix(got, "CHECKS_FAILED@0.1 ABORTED@0.1 CHECKS_FAILED@0.1") {
			t.Errorf("timeline %s", got)
		}
	})
	t.Run("post-promotion", func(t *testing.T) {
		s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
		s.manualChecks = true
		sp := newSpec(t, "v2", twoWaves, setWeight(20))
		sp.Hooks = &cutoverv1.Hooks{PostPromotion: httpHook("verify")}
		s.step(apply(sp))
		s.answer(s.pending(), "")
		s.converge("eu-1")
		s.converge("eu-1") // promoted
		s.wants("eu-1", "stable:v2=100")
		s.answer(s.pending(), "HTTP 500")
		if p := showPhase(s.r.GetStatus()); p != "aborted" {
			t.Fatalf("%s", p)
		}
		s.wants("eu-1", "stable:v1=100")
	})
}

// Editing a rollout in progress without changing what the pre-flight
// checked keeps its result, so traffic is not withdrawn for it.
func TestPreflightCarriesOverWhenTheArtifactIsUnchanged(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20), pause(""))))
	s.answer(s.pending(), "")
	s.converge("eu-1")
	res := s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20), pause("10s"))))
	if len(rollout.PendingChecks(s.r)) != 0 || len(res.Desired) != 0 {
		t.Fatalf("re-apply with other steps: pending %v, sent %v", rollout.PendingChecks(s.r), sentTo(res))
	}
	// Another revision is checked again.
	s.step(apply(newSpec(t, "v3", twoWaves, setWeight(20))))
	if s.pending() != rollout.CheckPreflight {
		t.Fatal("a new revision skipped the pre-flight")
	}
}

// A rollout superseded while its checks run goes into history with those
// runs closed as not finished, never as passed.
func TestArchiveClosesPendingChecks(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20))))
	got := rollout.Archive(s.r, s.now.Add(time.Second))
	if len(rollout.PendingChecks(got)) != 0 {
		t.Fatalf("archived with pending runs: %v", rollout.PendingChecks(got))
	}
	run := got.GetStatus().GetChecks()[0]
	if len(run.GetResults()) != 1 || run.GetResults()[0].GetPassed() || run.GetResults()[0].GetName() != "not finished" {
		t.Errorf("archived run %v", run)
	}
	if len(rollout.PendingChecks(s.r)) != 1 {
		t.Error("Archive modified its input")
	}
}

// An abort or a promote past a step ends the runs nothing waits for any
// longer, so their hooks stop and their results are refused.
func TestAbortAndPromoteCloseTheirRuns(t *testing.T) {
	sp := func(rev string) *cutoverv1.RolloutSpec {
		s := newSpec(t, rev, twoWaves, setWeight(20), setWeight(50))
		s.Hooks = &cutoverv1.Hooks{PreTrafficShift: httpHook("smoke")}
		return s
	}
	t.Run("abort during the pre-flight", func(t *testing.T) {
		s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
		s.manualChecks = true
		s.step(apply(sp("v2")))
		s.step(rollout.Abort{Actor: "bob"})
		if p := rollout.PendingChecks(s.r); len(p) != 0 {
			t.Fatalf("pending after abort: %v", p)
		}
		if r := s.r.GetStatus().GetChecks()[0].GetResults(); len(r) != 1 || r[0].GetPassed() || !strings.Contains(r[0].GetMessage(), "aborted") {
			t.Errorf("closed run: %v", r)
		}
		if _, err := s.try(rollout.ChecksDone{RolloutNumber: s.r.GetStatus().GetRolloutNumber(), ID: rollout.CheckPreflight}); !errors.Is(err, rollout.ErrUnknownCheckRun) {
			t.Errorf("late results: %v", err)
		}
	})
	t.Run("promote past a step whose hooks run", func(t *testing.T) {
		s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
		s.manualChecks = true
		s.step(apply(sp("v2")))
		s.answer(s.pending(), "")
		s.answer(s.pending(), "") // before 20%
		s.converge("eu-1")
		before50 := s.pending()
		s.step(rollout.Promote{Actor: "bob"}) // skips setWeight 50: the promotion's hooks run now
		if id := s.pending(); id == before50 || !strings.Contains(id, "step 2") {
			t.Fatalf("pending %s after the promote, want only the promotion's run", id)
		}
	})
}

// What passed keeps only the end of its output; a failure keeps it all.
func TestPassedOutputIsTrimmed(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	s.step(apply(newSpec(t, "v2", twoWaves, setWeight(20))))
	long := strings.Repeat("x", 3000) + "END"
	s.step(rollout.ChecksDone{RolloutNumber: s.r.GetStatus().GetRolloutNumber(), ID: rollout.CheckPreflight, Results: []*cutoverv1.CheckResult{
		{Name: "a", Passed: true, Output: long}, {Name: "b", Passed: false, Output: long}}})
	rs := s.r.GetStatus().GetChecks()[0].GetResults()
	if o := rs[0].GetOutput(); len(o) != 512 || !strings.HasSuffix(o, "END") {
		t.Errorf("passed output kept %d bytes", len(o))
	}
	if rs[1].GetOutput() != long {
		t.Errorf("failed output kept %d bytes, want all %d", len(rs[1].GetOutput()), len(long))
	}
}

// Break-glass approvals take the roles the rollout's approval names (its
// policy's), not any approver's.
func TestBreakGlassUsesTheApprovalRoles(t *testing.T) {
	s := newSim(t)
	sp := newSpec(t, "v1", [][]string{{"eu-1"}}, setWeight(20))
	sp.Window = &cutoverv1.DeploymentWindow{Allow: []*cutoverv1.WindowSpan{{Start: "20:00", End: "21:00"}}}
	sp.Urgency, sp.BreakGlassReason = "critical", "outage"
	sp.Approval = &cutoverv1.ApprovalStep{Required: 1, Roles: []string{"admin"}}
	s.step(rollout.Apply{Name: app, Spec: sp, Actor: "alice"})
	s.step(rollout.Approve{Actor: "bob", Roles: []string{"admin"}}) // the start approval
	if p := showPhase(s.r.GetStatus()); p != "waitingforapproval" || !strings.Contains(s.r.GetStatus().GetMessage(), "break-glass") {
		t.Fatalf("%s: %s", p, s.r.GetStatus().GetMessage())
	}
	if _, err := s.try(rollout.Approve{Actor: "carol", Roles: []string{"approver"}}); !errors.Is(err, rollout.ErrApprovalRefused) {
		t.Errorf("an approver's break-glass approval: %v, want refused (admin only)", err)
	}
}

// A promote that does not move past the boundary (the wave's promotion)
// does not skip the hooks that guard it.
func TestPromoteAtThePromotionStillWaitsForItsHooks(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", twoWaves, setWeight(20)))
	s.manualChecks = true
	sp := newSpec(t, "v2", twoWaves, setWeight(20))
	sp.Hooks = &cutoverv1.Hooks{PreTrafficShift: httpHook("smoke"), PostPromotion: httpHook("verify")}
	s.step(apply(sp))
	s.answer(s.pending(), "") // pre-flight
	s.answer(s.pending(), "") // before 20%
	s.converge("eu-1")
	promotion := s.pending()
	s.step(rollout.Promote{Actor: "bob"})
	if id := s.pending(); id != promotion {
		t.Fatalf("pending %s after the promote, want still %s", id, promotion)
	}
	s.wants("eu-1", "stable:v1=80 canary:v2=20")
	s.step(rollout.Promote{Full: true, Actor: "bob"})
	if id := s.pending(); id != promotion {
		t.Fatalf("pending %s after a full promote, want still %s", id, promotion)
	}
	s.answer(promotion, "")
	s.converge("eu-1")
	verify := s.pending() // the post-promotion hooks are not skipped either
	s.step(rollout.Promote{Actor: "bob"})
	if id := s.pending(); id != verify || !strings.HasPrefix(id, rollout.CheckPostPromotion) {
		t.Fatalf("pending %s, want %s", id, verify)
	}
}

// A promote never opens a boundary whose hooks have not passed, also when
// the steps are skipped (a new cluster's first deploy, a full promote).
func TestPromoteNeverSkipsTheHooksOfASkippedStep(t *testing.T) {
	s := deployed(t, newSpec(t, "v1", [][]string{{"eu-1"}}, setWeight(20)))
	s.manualChecks = true
	sp := newSpec(t, "v2", [][]string{{"eu-1"}, {"new-1"}}, setWeight(20))
	sp.Hooks = &cutoverv1.Hooks{PreTrafficShift: httpHook("smoke")}
	s.step(apply(sp))
	s.answer(s.pending(), "") // pre-flight
	s.answer(s.pending(), "") // before 20% in eu-1
	s.converge("eu-1")
	s.answer(s.pending(), "") // before eu-1's promotion
	s.converge("eu-1")
	newcomer := s.pending() // new-1 is a first deploy: straight to its promotion
	for _, full := range []bool{false, true} {
		s.step(rollout.Promote{Full: full, Actor: "bob"})
		if id := s.pending(); id != newcomer {
			t.Fatalf("promote (full %t): pending %s, want still %s", full, id, newcomer)
		}
		if d := rollout.Desired(s.r, s.progress("new-1")); len(d.GetRevisions()) != 0 {
			t.Fatalf("promote (full %t) sent new-1 %s before its hook passed", full, showRevisions(d))
		}
	}
	s.answer(newcomer, "")
	s.wants("new-1", "stable:v2=100")
}

// What each agent's dry run is asked to check: the new revision in the
// app's desired state, and the room the strategy needs beside what runs
// (blue-green and canary: a full second set; rolling: one batch).
func TestDryRunAsksForTheRoomTheStrategyNeeds(t *testing.T) {
	waves := [][]string{{"eu-1"}}
	bg := blueGreenSpec(t, "v2", waves, 0) // revision(): 2 instances
	s := deployed(t, newSpec(t, "v1", waves, setWeight(20)))
	s.step(apply(bg))
	dr := rollout.DryRun(s.r, "eu-1", true)
	if dr.GetExtraInstances() != 2 || !dr.GetRequirePinned() || dr.GetRevision().GetName() != "v2" || dr.GetDesired().GetPreviewListen() == "" {
		t.Errorf("blue-green dry run: extra %d pinned %t revision %s preview %q", dr.GetExtraInstances(), dr.GetRequirePinned(),
			dr.GetRevision().GetName(), dr.GetDesired().GetPreviewListen())
	}
	if got := showRevisions(dr.GetDesired()); !strings.Contains(got, "v1") || !strings.Contains(got, "v2") {
		t.Errorf("blue-green dry run desires %s, want both revisions", got)
	}

	rolling := newSpec(t, "v3", waves, setWeight(100))
	rolling.Strategy = &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{Rolling: &cutoverv1.RollingStrategy{BatchSize: "1"}}}
	s.step(apply(rolling))
	if dr := rollout.DryRun(s.r, "eu-1", false); dr.GetExtraInstances() != 1 {
		t.Errorf("rolling dry run: extra %d, want one batch", dr.GetExtraInstances())
	}

	first := newSim(t)
	first.step(apply(newSpec(t, "v1", waves, setWeight(20))))
	dr = rollout.DryRun(first.r, "eu-1", false)
	if dr.GetExtraInstances() != 2 || showRevisions(dr.GetDesired()) != "stable:v1=100" {
		t.Errorf("first deploy dry run: extra %d desires %s", dr.GetExtraInstances(), showRevisions(dr.GetDesired()))
	}
}
