package rollout_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// TestRandomEventSequencesKeepTheInvariants drives the engine with random
// sequences of every event over two-wave specs, checking after each step
// that the input is untouched, generations move exactly with desired states,
// weights are sane, terminal phases stay terminal and Result.Desired holds
// exactly the clusters whose generation changed (see checkStep). Each
// sequence has its own seed, printed on failure, so it can be replayed.
func TestRandomEventSequencesKeepTheInvariants(t *testing.T) {
	const sequences, chunks, length = 2000, 4, 20
	for c := range uint64(chunks) {
		first, last := c*sequences/chunks, (c+1)*sequences/chunks
		t.Run(fmt.Sprintf("seeds %d-%d", first, last-1), func(t *testing.T) {
			t.Parallel()
			var cov coverage
			for seed := first; seed < last; seed++ {
				runSequence(t, seed, length, &cov)
			}
			// The generator must reach every corner, or the invariants prove little.
			n := int(last - first)
			if cov.healthy < n/10 || cov.aborted < n/10 || cov.superseded < n/10 || cov.rejected == 0 ||
				cov.windowWaits == 0 || cov.approvalWaits == 0 || cov.approved == 0 || cov.checksFailed == 0 || cov.hookRuns < n/10 {
				t.Errorf("weak coverage: %+v", cov)
			}
			t.Logf("%d sequences: %+v", n, cov)
		})
	}
}

// coverage counts what the random sequences reached.
type coverage struct {
	healthy, aborted int // transitions into the phase
	superseded       int // new specs applied to a rollout in progress
	rejected         int // events refused with an error
	windowWaits      int // transitions into WaitingForWindow
	approvalWaits    int // transitions into WaitingForApproval
	approved         int // approvals taken
	checksFailed     int // check runs that failed
	hookRuns         int // hook runs started (not the pre-flight)
}

func runSequence(t *testing.T, seed uint64, length int, cov *coverage) {
	g := &generator{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	now := t0
	var r *cutoverv1.Rollout
	var trail []rollout.Event
	var times []time.Time
	for range length {
		now = now.Add(time.Duration(g.rng.IntN(4000)) * time.Millisecond)
		ev := g.event(r)
		trail, times = append(trail, ev), append(times, now)
		var frozen *cutoverv1.Rollout
		if r != nil {
			frozen = proto.Clone(r).(*cutoverv1.Rollout)
		}
		res, err := rollout.Step(r, ev, now)
		if bad := checkStep(r, frozen, ev, now, res, err); bad != nil {
			var lines []string
			for i, ev := range trail {
				lines = append(lines, fmt.Sprintf("%s at t0+%s", describe(ev), times[i].Sub(t0)))
			}
			t.Fatalf("seed %d: %v\nevents:\n  %s\nbefore the last event: %v", seed, bad, strings.Join(lines, "\n  "), frozen)
		}
		if err != nil {
			cov.rejected++
			continue
		}
		was, is := r.GetStatus().GetPhase(), res.Rollout.GetStatus().GetPhase()
		if _, ok := ev.(rollout.Apply); ok && res.Changed && r != nil && !rollout.Terminal(was) {
			cov.superseded++
		}
		if is != was {
			switch is {
			case cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY:
				cov.healthy++
			case cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED:
				cov.aborted++
			case cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW:
				cov.windowWaits++
			case cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL:
				cov.approvalWaits++
			}
		}
		if _, ok := ev.(rollout.Approve); ok {
			cov.approved++
		}
		if cd, ok := ev.(rollout.ChecksDone); ok && !cd.Results[0].GetPassed() {
			cov.checksFailed++
		}
		if res.Rollout.GetStatus().GetRolloutNumber() == r.GetStatus().GetRolloutNumber() {
			for _, run := range res.Rollout.GetStatus().GetChecks()[len(r.GetStatus().GetChecks()):] {
				if run.GetPhase() != rollout.CheckPreflight {
					cov.hookRuns++
				}
			}
		}
		r = res.Rollout
	}
}

// generator makes random events, biased towards ones that move a rollout.
type generator struct {
	t    *testing.T
	rng  *rand.Rand
	last *cutoverv1.RolloutSpec
}

var pool = []string{"eu-1", "us-1", "ap-1"}

func (g *generator) event(r *cutoverv1.Rollout) rollout.Event {
	// Most events need a rollout in progress; a few test that they need one.
	if r == nil && g.rng.IntN(8) != 0 || rollout.Terminal(r.GetStatus().GetPhase()) && g.rng.IntN(2) == 0 {
		g.last = g.spec()
		return apply(g.last)
	}
	if p := rollout.PendingChecks(r); len(p) > 0 && g.rng.IntN(3) != 0 {
		return g.checksDone(r, p)
	}
	switch n := g.rng.IntN(100); {
	case n < 50:
		return g.observe(r)
	case n < 62:
		return rollout.Tick{}
	case n < 72:
		return rollout.Promote{Full: g.rng.IntN(5) == 0}
	case n < 81:
		if g.last != nil && g.rng.IntN(4) == 0 {
			return apply(proto.Clone(g.last).(*cutoverv1.RolloutSpec)) // identical re-apply
		}
		g.last = g.spec()
		return apply(g.last)
	case n < 84:
		return rollout.Abort{Reason: "random"}
	case n < 90:
		return rollout.Pause{Actor: "op"}
	case n < 96:
		return rollout.Resume{Actor: "op"}
	case n < 98:
		if g.rng.IntN(6) == 0 {
			return rollout.Reject{Actor: "carol", Comment: "random"}
		}
		return rollout.Approve{Actor: []string{"bob", "carol", "dave"}[g.rng.IntN(3)], Roles: []string{"approver"}}
	default:
		return rollout.Retry{Actor: "op"}
	}
}

// checksDone answers a pending check run: mostly passing, sometimes
// failing, rarely for the wrong rollout.
func (g *generator) checksDone(r *cutoverv1.Rollout, pending []*cutoverv1.CheckRun) rollout.Event {
	run := pending[g.rng.IntN(len(pending))]
	ev := rollout.ChecksDone{RolloutNumber: r.GetStatus().GetRolloutNumber(), ID: run.GetId(),
		Results: []*cutoverv1.CheckResult{{Name: "random", Passed: g.rng.IntN(8) != 0}}}
	if g.rng.IntN(20) == 0 {
		ev.RolloutNumber-- // a superseded rollout's late results
	}
	return ev
}

// observe is a report from a target (rarely a stranger), mostly of the
// generation it was sent, sometimes stale or not yet in force, and mostly
// from the current wave, which is the one that moves the rollout.
func (g *generator) observe(r *cutoverv1.Rollout) rollout.Event {
	clusters := r.GetStatus().GetClusters()
	if len(clusters) == 0 || g.rng.IntN(25) == 0 {
		return observed("xx-9", 1, true)
	}
	if g.rng.IntN(4) != 0 {
		var current []*cutoverv1.ClusterProgress
		for _, cp := range clusters {
			if cp.GetWave() == r.GetStatus().GetCurrentWave() {
				current = append(current, cp)
			}
		}
		clusters = current
	}
	cp := clusters[g.rng.IntN(len(clusters))]
	gen := cp.GetDesiredGeneration()
	if g.rng.IntN(6) == 0 {
		gen -= 1 + int64(g.rng.IntN(2))
	}
	ev := observed(cp.GetCluster(), max(gen, 0), g.rng.IntN(8) != 0)
	if g.rng.IntN(8) == 0 { // new instances that failed, as agents count them (and reset them on restart)
		ev.App.Revisions = []*cutoverv1.ObservedRevision{{
			Revision: r.GetSpec().GetRevision().GetName(), InstancesFailed: int32(g.rng.IntN(3)),
		}}
	}
	return ev
}

// spec is a random valid two-wave spec over the same three clusters.
func (g *generator) spec() *cutoverv1.RolloutSpec {
	order := slices.Clone(pool)
	g.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	split := 1 + g.rng.IntN(len(order)-1)
	var steps []*cutoverv1.CanaryStep
	for range 1 + g.rng.IntN(4) {
		switch g.rng.IntN(5) {
		case 3:
			switch g.rng.IntN(3) {
			case 0:
				steps = append(steps, headerRoute("X-Canary", "always"))
			case 1: // shadow first, or between weights
				steps = append(steps, &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Shadow{Shadow: &cutoverv1.ShadowStep{
					MirrorPercent: 1 + int32(g.rng.IntN(100)), Duration: []string{"", "2s"}[g.rng.IntN(2)]}}})
			default:
				steps = append(steps, &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_SetCanaryScale{
					SetCanaryScale: &cutoverv1.SetCanaryScale{Instances: int32(1 + g.rng.IntN(3))}}})
			}
		case 0:
			steps = append(steps, pause(""))
		case 1:
			if g.rng.IntN(3) == 0 {
				steps = append(steps, &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Analysis{
					Analysis: &cutoverv1.AnalysisStep{Window: fmt.Sprintf("%ds", 1+g.rng.IntN(3))}}})
				break
			}
			steps = append(steps, pause(fmt.Sprintf("%ds", 1+g.rng.IntN(5))))
		default:
			steps = append(steps, setWeight([]int32{0, 10, 25, 50, 100}[g.rng.IntN(5)]))
		}
	}
	if g.rng.IntN(6) == 0 { // approvals the random approvers may give
		steps = append(steps, &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Approval{
			Approval: &cutoverv1.ApprovalStep{Required: 1 + int32(g.rng.IntN(2)), Timeout: []string{"", "5s"}[g.rng.IntN(2)]}}})
	}
	s := newSpec(g.t, fmt.Sprintf("v%d", 1+g.rng.IntN(3)), [][]string{order[:split], order[split:]}, steps...)
	if g.rng.IntN(6) == 0 {
		s.Approval = &cutoverv1.ApprovalStep{Required: 1 + int32(g.rng.IntN(2))}
	}
	if g.rng.IntN(4) == 0 { // a window open every other minute, which the random clock crosses
		w := &cutoverv1.DeploymentWindow{}
		for m := g.rng.IntN(2); m < 120; m += 2 { // closed at t0 half the time
			w.Allow = append(w.Allow, &cutoverv1.WindowSpan{
				Start: fmt.Sprintf("%02d:%02d", 9+m/60, m%60), End: fmt.Sprintf("%02d:%02d", 9+(m+1)/60, (m+1)%60)})
		}
		s.Window = w
		if g.rng.IntN(3) == 0 {
			s.Urgency, s.BreakGlassReason = "critical", "random incident"
		}
	}
	if g.rng.IntN(3) == 0 { // hooks at every phase, each present half the time
		hook := func() []*cutoverv1.Hook {
			if g.rng.IntN(2) == 0 {
				return nil
			}
			return []*cutoverv1.Hook{{Name: "h", Action: &cutoverv1.Hook_Http{Http: &cutoverv1.HTTPHook{Url: "http://127.0.0.1:1/hook"}}}}
		}
		s.Hooks = &cutoverv1.Hooks{PreRollout: hook(), PreTrafficShift: hook(), PostPromotion: hook(), OnAbort: hook()}
	}
	if g.rng.IntN(5) == 0 {
		s.Endpoint.ListenOverrides = map[string]string{order[0]: "127.0.0.1:9090"}
	}
	if g.rng.IntN(3) == 0 { // deadlines the random clock can hit, either policy, a bake
		s.ProgressDeadline = fmt.Sprintf("%ds", 3+g.rng.IntN(20))
		s.Targets.FailurePolicy = []string{"abort", "hold"}[g.rng.IntN(2)]
		s.Targets.Waves[0].Bake = fmt.Sprintf("%ds", g.rng.IntN(4))
	}
	if g.rng.IntN(4) == 0 { // groups of one within the bigger wave
		s.Targets.Waves[len(s.Targets.Waves)-1].MaxParallel = 1
	}
	switch g.rng.IntN(6) {
	case 0:
		s.Strategy = &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{Rolling: &cutoverv1.RollingStrategy{
			BatchSize: []string{"1", "50%", "2"}[g.rng.IntN(3)], FailureThreshold: 1 + int32(g.rng.IntN(2)),
			PauseBetweenBatches: []string{"", "1s"}[g.rng.IntN(2)],
		}}}
	case 1:
		s.Strategy = &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Shadow{Shadow: &cutoverv1.ShadowStrategy{
			MirrorPercent: 1 + int32(g.rng.IntN(100)), Duration: []string{"", "2s"}[g.rng.IntN(2)],
		}}}
	}
	if g.rng.IntN(3) == 0 {
		s.Strategy = &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_BlueGreen{BlueGreen: &cutoverv1.BlueGreenStrategy{
			PreviewListen:         ":9100",
			AutoPromotionSeconds:  int32(g.rng.IntN(4)),
			ScaleDownDelaySeconds: int32(g.rng.IntN(8)),
		}}}
	}
	return s
}
