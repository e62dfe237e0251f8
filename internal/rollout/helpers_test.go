package rollout_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
)

// app is the app every test rolls out; the rollout is named after it.
const app = "shop"

// t0 is the injected clock's origin; moves give times as offsets from it.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func revision(name string) *cutoverv1.Revision {
	return &cutoverv1.Revision{Name: name, Command: "/opt/shop/" + name, Instances: 2}
}

func setWeight(w int32) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: w}}
}

// pause is a pause step; an empty duration waits for a promote.
func pause(d string) *cutoverv1.CanaryStep {
	return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: d}}}
}

// newSpec builds a valid spec of rev over waves of clusters.
func newSpec(t testing.TB, rev string, waves [][]string, steps ...*cutoverv1.CanaryStep) *cutoverv1.RolloutSpec {
	t.Helper()
	s := &cutoverv1.RolloutSpec{
		Revision: revision(rev),
		Endpoint: &cutoverv1.Endpoint{Listen: ":8080"},
		Targets:  &cutoverv1.Targets{},
		Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{
			Canary: &cutoverv1.CanaryStrategy{Steps: steps},
		}},
		// Scenarios jump the clock by hours; deadlines have their own tests.
		ProgressDeadline: "24h",
	}
	for i, clusters := range waves {
		s.Targets.Waves = append(s.Targets.Waves, &cutoverv1.Wave{Name: fmt.Sprintf("wave-%d", i+1), Clusters: clusters})
	}
	if err := spec.Validate(s); err != nil {
		t.Fatalf("test spec is invalid: %v", err)
	}
	return s
}

func apply(s *cutoverv1.RolloutSpec) rollout.Apply { return rollout.Apply{Name: app, Spec: s} }

// observed is an agent's report of generation gen.
func observed(cluster string, gen int64, converged bool) rollout.Observe {
	return rollout.Observe{Cluster: cluster, App: &cutoverv1.ObservedApp{App: app, ObservedGeneration: gen, Converged: converged}}
}

// sim drives Step the way the controller does, checking the engine's
// invariants after every event.
type sim struct {
	t   *testing.T
	r   *cutoverv1.Rollout
	now time.Time
	// manualChecks leaves check runs to the test; otherwise every run the
	// engine starts passes at once, as if its checks had run instantly.
	manualChecks bool
}

func newSim(t *testing.T) *sim { return &sim{t: t, now: t0} }

// step applies ev, failing the test on an error or a broken invariant.
func (s *sim) step(ev rollout.Event) rollout.Result {
	s.t.Helper()
	res, err := s.try(ev)
	if err != nil {
		s.t.Fatalf("%s: %v", describe(ev), err)
	}
	return res
}

// try applies ev and returns its error; invariants are checked either way.
func (s *sim) try(ev rollout.Event) (rollout.Result, error) {
	s.t.Helper()
	before := s.r
	var frozen *cutoverv1.Rollout
	if before != nil {
		frozen = proto.Clone(before).(*cutoverv1.Rollout)
	}
	res, err := rollout.Step(before, ev, s.now)
	if bad := checkStep(before, frozen, ev, s.now, res, err); bad != nil {
		s.t.Fatalf("%s: invariant broken: %v", describe(ev), bad)
	}
	if err == nil {
		s.r = res.Rollout
		if !s.manualChecks {
			res = s.passChecks(res)
		}
	}
	return res, err
}

// passChecks answers every pending check run with one passing result and
// folds what that changed into res.
func (s *sim) passChecks(res rollout.Result) rollout.Result {
	s.t.Helper()
	for {
		pending := rollout.PendingChecks(s.r)
		if len(pending) == 0 {
			return res
		}
		ev := rollout.ChecksDone{RolloutNumber: s.r.GetStatus().GetRolloutNumber(), ID: pending[0].GetId(),
			Results: []*cutoverv1.CheckResult{{Name: "agent connected", Kind: "builtin", Passed: true}}}
		frozen := proto.Clone(s.r).(*cutoverv1.Rollout)
		next, err := rollout.Step(s.r, ev, s.now)
		if bad := checkStep(s.r, frozen, ev, s.now, next, err); bad != nil {
			s.t.Fatalf("%s: invariant broken: %v", describe(ev), bad)
		}
		if err != nil {
			s.t.Fatalf("pass checks %s: %v", pending[0].GetId(), err)
		}
		s.r = next.Rollout
		for c, d := range next.Desired {
			if res.Desired == nil {
				res.Desired = map[string]*cutoverv1.DesiredApp{}
			}
			res.Desired[c] = d
		}
		res.Rollout, res.Changed, res.WakeAt = next.Rollout, res.Changed || next.Changed, next.WakeAt
	}
}

// converge has each cluster report the generation it was sent, in force.
// It returns the result of the last report.
func (s *sim) converge(clusters ...string) rollout.Result {
	s.t.Helper()
	var res rollout.Result
	for _, c := range clusters {
		res = s.step(observed(c, s.progress(c).GetDesiredGeneration(), true))
	}
	return res
}

func (s *sim) progress(cluster string) *cutoverv1.ClusterProgress {
	s.t.Helper()
	for _, cp := range s.r.GetStatus().GetClusters() {
		if cp.GetCluster() == cluster {
			return cp
		}
	}
	s.t.Fatalf("cluster %s is not in the rollout", cluster)
	return nil
}

// deployed runs a first deploy of sp to completion.
func deployed(t *testing.T, sp *cutoverv1.RolloutSpec) *sim {
	t.Helper()
	s := newSim(t)
	s.step(apply(sp))
	for i := range sp.GetTargets().GetWaves() {
		s.converge(sp.GetTargets().GetWaves()[i].GetClusters()...)
	}
	if p := s.r.GetStatus().GetPhase(); p != cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY {
		t.Fatalf("first deploy ended %s, want Healthy", rollout.PhaseName(p))
	}
	return s
}

// show renders a cluster's state and desired state compactly, e.g.
// "progressing g2 stable:v1=80 canary:v2=20".
func show(r *cutoverv1.Rollout, cp *cutoverv1.ClusterProgress) string {
	phase := strings.ToLower(strings.TrimPrefix(cp.GetPhase().String(), "CLUSTER_PHASE_"))
	return fmt.Sprintf("%s g%d %s", phase, cp.GetDesiredGeneration(), showRevisions(rollout.Desired(r, cp)))
}

func showRevisions(d *cutoverv1.DesiredApp) string {
	if len(d.GetRevisions()) == 0 {
		return "none"
	}
	var parts []string
	for _, dr := range d.GetRevisions() {
		track := strings.ToLower(strings.TrimPrefix(dr.GetTrack().String(), "TRACK_"))
		parts = append(parts, fmt.Sprintf("%s:%s=%d", track, dr.GetRevision().GetName(), dr.GetWeight()))
	}
	return strings.Join(parts, " ")
}

// showPhase renders the rollout's phase, with the pause reason when paused.
func showPhase(st *cutoverv1.RolloutStatus) string {
	p := strings.ToLower(rollout.PhaseName(st.GetPhase()))
	if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED {
		p += "(" + strings.ToLower(strings.TrimPrefix(st.GetPauseReason().String(), "PAUSE_REASON_")) + ")"
	}
	return p
}

func sentTo(res rollout.Result) []string {
	var out []string
	for c := range res.Desired {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

func describe(ev rollout.Event) string {
	switch e := ev.(type) {
	case rollout.Apply:
		return "apply " + e.Spec.GetRevision().GetName()
	case rollout.Observe:
		return fmt.Sprintf("observe %s g%d converged=%t", e.Cluster, e.App.GetObservedGeneration(), e.App.GetConverged())
	default:
		return fmt.Sprintf("%T%+v", ev, ev)
	}
}

// sameWork reports whether two desired states ask the agent for the same
// thing, ignoring generations. Two states that run nothing are the same
// wherever they would listen.
func sameWork(a, b *cutoverv1.DesiredApp) bool {
	if len(a.GetRevisions()) == 0 || len(b.GetRevisions()) == 0 {
		return len(a.GetRevisions()) == len(b.GetRevisions())
	}
	x, y := proto.Clone(a).(*cutoverv1.DesiredApp), proto.Clone(b).(*cutoverv1.DesiredApp)
	x.Generation, y.Generation = 0, 0
	return proto.Equal(x, y)
}

// checkStep checks the engine's invariants for one Step from prev (frozen is
// a clone taken before the call) to res or err.
func checkStep(prev, frozen *cutoverv1.Rollout, ev rollout.Event, now time.Time, res rollout.Result, err error) error {
	if !proto.Equal(prev, frozen) {
		return errors.New("Step modified its input")
	}
	_, isApply := ev.(rollout.Apply)
	if _, retry := ev.(rollout.Retry); retry && err == nil {
		isApply = true // a retry starts a new rollout, like an apply
	}
	if err != nil {
		return checkError(prev, ev, err)
	}
	next := res.Rollout
	if next == nil {
		return errors.New("no rollout returned without an error")
	}
	if !res.Changed && !proto.Equal(prev, next) {
		return errors.New("Changed is false but the rollout changed")
	}
	if !isApply && res.Changed && proto.Equal(prev, next) {
		return errors.New("Changed is true but the rollout is unchanged")
	}
	prevPhase, phase := prev.GetStatus().GetPhase(), next.GetStatus().GetPhase()
	if prev != nil && rollout.Terminal(prevPhase) && !isApply && phase != prevPhase {
		return fmt.Errorf("terminal phase %s became %s", rollout.PhaseName(prevPhase), rollout.PhaseName(phase))
	}
	if err := checkClusters(prev, next, res); err != nil {
		return err
	}
	if err := checkTimeline(prev, next); err != nil {
		return err
	}
	// A step that advanced has moved past every pause that ran out; an
	// identical re-apply advances nothing and may report a wake-up that is due.
	advanced := !isApply || res.Changed
	moving := phase == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING || phase == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW ||
		phase == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL
	if !res.WakeAt.IsZero() && !scaleDownPending(next) && (!moving || advanced && !res.WakeAt.After(now)) {
		return fmt.Errorf("wake at %s (now %s) in phase %s", res.WakeAt, now, rollout.PhaseName(phase))
	}
	return checkWaves(next)
}

// checkError accepts only the errors the event can legitimately cause.
func checkError(prev *cutoverv1.Rollout, ev rollout.Event, err error) error {
	if prev == nil {
		if !errors.Is(err, rollout.ErrNoRollout) {
			return fmt.Errorf("on a nil rollout: %v, want ErrNoRollout", err)
		}
		return nil
	}
	phase := prev.GetStatus().GetPhase()
	switch e := ev.(type) {
	case rollout.Observe:
		for _, cp := range prev.GetStatus().GetClusters() {
			if cp.GetCluster() == e.Cluster {
				return fmt.Errorf("observe from target %s: %v", e.Cluster, err)
			}
		}
		if !errors.Is(err, rollout.ErrUnknownCluster) {
			return fmt.Errorf("observe from non-target %s: %v, want ErrUnknownCluster", e.Cluster, err)
		}
	case rollout.Promote, rollout.Pause, rollout.Resume:
		if !rollout.Terminal(phase) || !errors.Is(err, rollout.ErrTerminal) {
			return fmt.Errorf("in phase %s: %v", rollout.PhaseName(phase), err)
		}
	case rollout.Abort:
		if phase != cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY || !errors.Is(err, rollout.ErrTerminal) {
			return fmt.Errorf("abort in phase %s: %v", rollout.PhaseName(phase), err)
		}
	case rollout.Retry:
		if phase == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !errors.Is(err, rollout.ErrNotAborted) {
			return fmt.Errorf("retry in phase %s: %v", rollout.PhaseName(phase), err)
		}
	case rollout.Approve, rollout.Reject:
		waiting := phase == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL
		if waiting && !errors.Is(err, rollout.ErrApprovalRefused) || !waiting && !errors.Is(err, rollout.ErrNotAwaitingApproval) {
			return fmt.Errorf("%T in phase %s: %v", ev, rollout.PhaseName(phase), err)
		}
	case rollout.ChecksDone:
		pending := slices.ContainsFunc(rollout.PendingChecks(prev), func(r *cutoverv1.CheckRun) bool { return r.GetId() == e.ID })
		if pending && e.RolloutNumber == prev.GetStatus().GetRolloutNumber() || !errors.Is(err, rollout.ErrUnknownCheckRun) {
			return fmt.Errorf("checks %s of rollout %d: %v", e.ID, e.RolloutNumber, err)
		}
	default:
		return fmt.Errorf("unexpected error: %v", err)
	}
	return nil
}

// checkClusters checks generations, weights, convergence and Result.Desired.
func checkClusters(prev, next *cutoverv1.Rollout, res rollout.Result) error {
	before := map[string]*cutoverv1.ClusterProgress{}
	for _, cp := range prev.GetStatus().GetClusters() {
		before[cp.GetCluster()] = cp
	}
	bumped := map[string]bool{}
	for _, cp := range next.GetStatus().GetClusters() {
		c := cp.GetCluster()
		var was *cutoverv1.DesiredApp
		var gen int64
		if p := before[c]; p != nil {
			was, gen = rollout.Desired(prev, p), p.GetDesiredGeneration()
		}
		now := rollout.Desired(next, cp)
		if err := checkWeights(now); err != nil {
			return fmt.Errorf("%s: %v", c, err)
		}
		if err := checkMirror(cp, now); err != nil {
			return fmt.Errorf("%s: %v", c, err)
		}
		switch changed := !sameWork(was, now); {
		case cp.GetDesiredGeneration() < gen:
			return fmt.Errorf("%s: generation went down from %d to %d", c, gen, cp.GetDesiredGeneration())
		case changed && cp.GetDesiredGeneration() != gen+1:
			return fmt.Errorf("%s: desired state changed (%s -> %s) but generation went from %d to %d",
				c, showRevisions(was), showRevisions(now), gen, cp.GetDesiredGeneration())
		case !changed && cp.GetDesiredGeneration() != gen:
			return fmt.Errorf("%s: desired state unchanged (%s) but generation went from %d to %d",
				c, showRevisions(now), gen, cp.GetDesiredGeneration())
		}
		if cp.GetDesiredGeneration() != gen {
			bumped[c] = true
		}
		if cp.GetConverged() && cp.GetObservedGeneration() != cp.GetDesiredGeneration() {
			return fmt.Errorf("%s: converged at observed generation %d but desired is %d", c, cp.GetObservedGeneration(), cp.GetDesiredGeneration())
		}
		if d, ok := res.Desired[c]; ok {
			if !proto.Equal(d, now) || d.GetGeneration() != cp.GetDesiredGeneration() {
				return fmt.Errorf("%s: Result.Desired %v, but Desired() says %v", c, d, now)
			}
		}
	}
	for c := range res.Desired {
		if !bumped[c] {
			return fmt.Errorf("Result.Desired holds %s, whose generation did not change", c)
		}
	}
	for c := range bumped {
		if _, ok := res.Desired[c]; !ok {
			return fmt.Errorf("generation of %s changed but Result.Desired does not hold it", c)
		}
	}
	return nil
}

// checkMirror: a shadow step's mirror goes with a cluster in progress
// whose new revision has no weight, and only then.
func checkMirror(cp *cutoverv1.ClusterProgress, d *cutoverv1.DesiredApp) error {
	if cp.GetMirrorPercent() > 0 && (cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING || cp.GetCanaryWeight() != 0) {
		return fmt.Errorf("mirroring %d%% in phase %s at weight %d", cp.GetMirrorPercent(), cp.GetPhase(), cp.GetCanaryWeight())
	}
	for _, dr := range d.GetRevisions() {
		if dr.GetTrack() == cutoverv1.Track_TRACK_SHADOW && (dr.GetWeight() != 0 || d.GetMirrorPercent() == 0) {
			return fmt.Errorf("shadow %s at weight %d mirroring %d%%", dr.GetRevision().GetName(), dr.GetWeight(), d.GetMirrorPercent())
		}
	}
	return nil
}

func checkWeights(d *cutoverv1.DesiredApp) error {
	if len(d.GetRevisions()) == 0 {
		return nil
	}
	var sum int32
	for _, r := range d.GetRevisions() {
		if r.GetWeight() < 0 || r.GetWeight() > 100 {
			return fmt.Errorf("weight %d of %s is out of range", r.GetWeight(), r.GetRevision().GetName())
		}
		sum += r.GetWeight()
	}
	if sum != 100 {
		return fmt.Errorf("weights %s sum to %d", showRevisions(d), sum)
	}
	return nil
}

// checkWaves checks that waves move in order: earlier waves are promoted,
// later ones untouched, unless the rollout was aborted.
func checkWaves(r *cutoverv1.Rollout) error {
	st := r.GetStatus()
	if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED {
		for _, cp := range st.GetClusters() {
			switch cp.GetPhase() {
			case cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING, cutoverv1.ClusterPhase_CLUSTER_PHASE_ABORTED:
			default:
				return fmt.Errorf("aborted rollout has %s", show(r, cp))
			}
			// Abort always ends with 100% on the stable revision (or nothing
			// where there was none), and nothing else running.
			d := rollout.Desired(r, cp)
			var revs []*cutoverv1.DesiredRevision
			for _, dr := range d.GetRevisions() {
				if dr.GetTrack() != cutoverv1.Track_TRACK_PREVIOUS || dr.GetWeight() != 0 { // warm, no traffic
					revs = append(revs, dr)
				}
			}
			if len(revs) > 1 || len(revs) == 1 && (revs[0].GetTrack() != cutoverv1.Track_TRACK_STABLE ||
				revs[0].GetWeight() != 100 || !proto.Equal(revs[0].GetRevision(), cp.GetStableRevision())) ||
				len(d.GetHeaderRoutes()) > 0 || d.GetMirrorPercent() > 0 || d.GetPreviewListen() != "" {
				return fmt.Errorf("aborted rollout wants %s in %s", showRevisions(d), cp.GetCluster())
			}
		}
		return nil
	}
	for _, cp := range st.GetClusters() {
		var want []cutoverv1.ClusterPhase
		switch {
		case st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY || cp.GetWave() < st.GetCurrentWave():
			want = []cutoverv1.ClusterPhase{cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED}
		case cp.GetWave() > st.GetCurrentWave():
			want = []cutoverv1.ClusterPhase{cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING}
		case cp.GetGroup() < st.GetCurrentGroup(): // earlier group of the current wave
			want = []cutoverv1.ClusterPhase{cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED}
		case cp.GetGroup() > st.GetCurrentGroup():
			want = []cutoverv1.ClusterPhase{cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING}
		case st.GetGroupPending(): // the current group waits for its window
			want = []cutoverv1.ClusterPhase{cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING}
		default:
			want = []cutoverv1.ClusterPhase{cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED}
		}
		if !slices.Contains(want, cp.GetPhase()) {
			return fmt.Errorf("%s in wave %d while wave %d is current (%s): %s",
				cp.GetCluster(), cp.GetWave(), st.GetCurrentWave(), showPhase(st), show(r, cp))
		}
	}
	return nil
}

// checkTimeline: the timeline only grows within one rollout, each step of
// each wave is recorded as completed at most once, and a terminal rollout
// ends with exactly one terminal entry.
func checkTimeline(prev, next *cutoverv1.Rollout) error {
	tl := next.GetStatus().GetTimeline()
	if next.GetStatus().GetRolloutNumber() == prev.GetStatus().GetRolloutNumber() {
		old := prev.GetStatus().GetTimeline()
		if len(tl) < len(old) {
			return fmt.Errorf("timeline shrank from %d to %d entries", len(old), len(tl))
		}
		for i := range old {
			if !proto.Equal(old[i], tl[i]) {
				return fmt.Errorf("timeline entry %d was rewritten", i)
			}
		}
	} else if len(tl) == 0 || tl[0].GetType() != cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED {
		return errors.New("a new rollout's timeline does not begin with STARTED")
	}
	done := map[[3]int32]bool{}
	ends := 0
	for _, e := range tl {
		switch e.GetType() {
		case cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED:
			k := [3]int32{e.GetWave(), e.GetGroup(), e.GetStep()}
			if done[k] {
				return fmt.Errorf("step %d of wave %d group %d completed twice", k[2], k[0], k[1])
			}
			done[k] = true
		case cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_HEALTHY, cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED:
			ends++
		}
	}
	if rollout.Terminal(next.GetStatus().GetPhase()) != (ends == 1) {
		return fmt.Errorf("phase %s with %d terminal timeline entries", rollout.PhaseName(next.GetStatus().GetPhase()), ends)
	}
	return nil
}

// scaleDownPending reports whether a blue-green keeps an old revision warm
// somewhere, which makes a wake-up legitimate in any phase.
func scaleDownPending(r *cutoverv1.Rollout) bool {
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetScaleDownTime() != nil {
			return true
		}
	}
	return false
}
