package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Phases of check runs: the pre-flight, and the hook phases.
const (
	CheckPreflight       = "preflight"
	CheckPreRollout      = "preRollout"
	CheckPreTrafficShift = "preTrafficShift"
	CheckPostPromotion   = "postPromotion"
	CheckOnAbort         = "onAbort"
)

// passedOutput bounds the output kept of a passed check or hook; a failed
// one keeps what its runner kept (4 KiB).
const passedOutput = 512

// ErrUnknownCheckRun is returned for results of a check run the rollout
// is not waiting for.
var ErrUnknownCheckRun = errors.New("no such check run in progress")

// ChecksDone carries the results of a check run. The engine asks for a
// run by adding it to status.checks without an end time; whoever carries
// out effects runs it and reports back with this event.
type ChecksDone struct {
	// RolloutNumber is the rollout the run belongs to: results of a
	// superseded rollout's run never land on its successor.
	RolloutNumber int64
	ID            string
	Results       []*cutoverv1.CheckResult
}

func (ChecksDone) isEvent() {}

// PendingChecks are the rollout's check runs still waiting for results.
func PendingChecks(r *cutoverv1.Rollout) []*cutoverv1.CheckRun {
	var out []*cutoverv1.CheckRun
	for _, run := range r.GetStatus().GetChecks() {
		if run.GetEndTime() == nil {
			out = append(out, run)
		}
	}
	return out
}

// Hooks returns the spec's hooks of a phase; for the pre-flight, its
// custom checks.
func Hooks(s *cutoverv1.RolloutSpec, phase string) []*cutoverv1.Hook {
	h := s.GetHooks()
	switch phase {
	case CheckPreflight:
		return s.GetPreflight().GetChecks()
	case CheckPreRollout:
		return h.GetPreRollout()
	case CheckPreTrafficShift:
		return h.GetPreTrafficShift()
	case CheckPostPromotion:
		return h.GetPostPromotion()
	case CheckOnAbort:
		return h.GetOnAbort()
	}
	return nil
}

// CheckPhaseName is how a check phase reads in messages.
func CheckPhaseName(phase string) string {
	switch phase {
	case CheckPreflight:
		return "pre-flight"
	case CheckPreRollout:
		return "pre-rollout hooks"
	case CheckPreTrafficShift:
		return "pre-traffic-shift hooks"
	case CheckPostPromotion:
		return "post-promotion hooks"
	case CheckOnAbort:
		return "on-abort hooks"
	}
	return phase
}

// checkRun returns the run with id, or nil.
func (m *machine) checkRun(id string) *cutoverv1.CheckRun {
	for _, run := range m.st().GetChecks() {
		if run.GetId() == id {
			return run
		}
	}
	return nil
}

// awaitChecks reports whether the rollout must wait for the check run id
// of phase over clusters: it starts the run when there is none yet and
// waits in CHECKING while it runs. A finished run lets the rollout go on
// (a failed one has aborted it already, see checksDone).
func (m *machine) awaitChecks(id, phase string, clusters []string) bool {
	st := m.st()
	run := m.checkRun(id)
	for n := 2; run != nil && closedUnfinished(run); n++ {
		// Closed without its results (its boundary was left, then came
		// back): it must run again, under a new id.
		id = fmt.Sprintf("%s #%d", strings.SplitN(id, " #", 2)[0], n)
		run = m.checkRun(id)
	}
	if run == nil {
		run = &cutoverv1.CheckRun{
			Id:        id,
			Phase:     phase,
			Clusters:  clusters,
			StartTime: timestamppb.New(m.now),
			Wave:      st.GetCurrentWave(),
			Step:      st.GetCurrentStep(),
			Group:     st.GetCurrentGroup(),
		}
		st.Checks = append(st.Checks, run)
	}
	if run.GetEndTime() != nil {
		return false
	}
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_CHECKING
	st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED
	st.Message = "running " + CheckPhaseName(phase)
	if phase == CheckPreTrafficShift || phase == CheckPostPromotion {
		st.Message += " in wave " + m.waveName()
	}
	return true
}

// checksDone records the results of a run; a failure stops the rollout
// (abort), except after an abort, when there is nothing left to stop.
func (m *machine) checksDone(e ChecksDone) error {
	st := m.st()
	run := m.checkRun(e.ID)
	if run == nil || run.GetEndTime() != nil || e.RolloutNumber != st.GetRolloutNumber() {
		return fmt.Errorf("checks %q: %w", e.ID, ErrUnknownCheckRun)
	}
	for _, r := range e.Results {
		c := proto.Clone(r).(*cutoverv1.CheckResult)
		if o := c.GetOutput(); c.GetPassed() && len(o) > passedOutput {
			// The status is rewritten and watched whole: across many
			// clusters and steps, what passed keeps only its last lines.
			c.Output = strings.ToValidUTF8(o[len(o)-passedOutput:], "")
		}
		run.Results = append(run.Results, c)
	}
	run.EndTime = timestamppb.New(m.now)
	what := CheckPhaseName(run.GetPhase())
	var failed []string
	for _, r := range run.GetResults() {
		if !r.GetPassed() {
			failed = append(failed, describeResult(r))
		}
	}
	if len(failed) == 0 {
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_CHECKS_PASSED, "",
			fmt.Sprintf("%s passed (%d %s)", what, len(run.GetResults()), plural(len(run.GetResults()), "check", "checks")))
		if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_CHECKING {
			m.setProgressing(what + " passed")
		}
		return nil
	}
	msg := fmt.Sprintf("%s failed: %s", what, strings.Join(failed, "; "))
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_CHECKS_FAILED, "", msg)
	if !Terminal(st.GetPhase()) {
		m.abort(msg, "")
	}
	return nil
}

// describeResult is one failed result in a line.
func describeResult(r *cutoverv1.CheckResult) string {
	s := r.GetName()
	if r.GetCluster() != "" {
		s += " in " + r.GetCluster()
	}
	if r.GetMessage() != "" {
		s += ": " + r.GetMessage()
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// awaitBoundaryChecks runs the checks due before the current step (or
// group) begins: the pre-flight and the approval before the first step
// are handled by the caller; this covers what runs once the rollout may
// move: the pre-rollout hooks at the very first boundary, and the
// pre-traffic-shift hooks before a step that moves traffic.
func (m *machine) awaitBoundaryChecks() bool {
	st := m.st()
	s := m.r.GetSpec()
	if m.firstBoundary() && len(s.GetHooks().GetPreRollout()) > 0 &&
		m.awaitChecks(CheckPreRollout, CheckPreRollout, m.allClusters()) {
		return true
	}
	if len(s.GetHooks().GetPreTrafficShift()) == 0 || !m.shiftsTraffic() {
		return false
	}
	id := fmt.Sprintf("%s wave %d step %d", CheckPreTrafficShift, st.GetCurrentWave(), m.effectiveStep())
	if st.GetCurrentGroup() > 0 {
		id += fmt.Sprintf(" group %d", st.GetCurrentGroup())
	}
	return m.awaitChecks(id, CheckPreTrafficShift, m.groupNames())
}

// awaitPreflight holds the very first boundary until the pre-flight ran.
func (m *machine) awaitPreflight() bool {
	if !m.firstBoundary() {
		return false
	}
	return m.awaitChecks(CheckPreflight, CheckPreflight, m.allClusters())
}

// awaitPostPromotion holds a promoted group until its post-promotion hooks
// ran.
func (m *machine) awaitPostPromotion() bool {
	st := m.st()
	if len(m.r.GetSpec().GetHooks().GetPostPromotion()) == 0 {
		return false
	}
	id := fmt.Sprintf("%s wave %d", CheckPostPromotion, st.GetCurrentWave())
	if st.GetCurrentGroup() > 0 || len(m.groupClusters(st.GetCurrentWave(), 1)) > 0 {
		id += fmt.Sprintf(" group %d", st.GetCurrentGroup())
	}
	return m.awaitChecks(id, CheckPostPromotion, m.groupNames())
}

// startAbortHooks asks for the on-abort hooks in every touched cluster.
func (m *machine) startAbortHooks(touched []string) {
	if len(m.r.GetSpec().GetHooks().GetOnAbort()) == 0 || m.checkRun(CheckOnAbort) != nil {
		return
	}
	st := m.st()
	st.Checks = append(st.Checks, &cutoverv1.CheckRun{
		Id:        CheckOnAbort,
		Phase:     CheckOnAbort,
		Clusters:  touched,
		StartTime: timestamppb.New(m.now),
		Wave:      st.GetCurrentWave(),
		Step:      st.GetCurrentStep(),
		Group:     st.GetCurrentGroup(),
	})
}

// firstBoundary: the first group of the first wave has not started.
func (m *machine) firstBoundary() bool {
	st := m.st()
	return st.GetGroupPending() && st.GetCurrentWave() == 0 && st.GetCurrentGroup() == 0
}

// effectiveStep is the step about to run: the promotion (one past the last
// step) when the steps are skipped.
func (m *machine) effectiveStep() int32 {
	st := m.st()
	if st.GetPromoteFull() || firstDeploy(m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup())) {
		return int32(len(m.steps()))
	}
	return st.GetCurrentStep()
}

// shiftsTraffic reports whether the step about to run moves traffic in the
// current group: a weight or instance count other than the one in force,
// a shadow, or the promotion.
func (m *machine) shiftsTraffic() bool {
	st := m.st()
	steps := m.steps()
	i := int(m.effectiveStep())
	if i >= len(steps) {
		return true
	}
	group := m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup())
	switch s := steps[i].GetStep().(type) {
	case *cutoverv1.CanaryStep_SetWeight:
		return slices.ContainsFunc(group, func(cp *cutoverv1.ClusterProgress) bool {
			return cp.GetCanaryWeight() != s.SetWeight || cp.GetMirrorPercent() != 0 // ending a shadow's mirror moves traffic too
		})
	case *cutoverv1.CanaryStep_SetCanaryScale:
		return slices.ContainsFunc(group, func(cp *cutoverv1.ClusterProgress) bool {
			return cp.GetCanaryInstances() != s.SetCanaryScale.GetInstances()
		})
	case *cutoverv1.CanaryStep_Shadow:
		return true
	}
	return false
}

func (m *machine) allClusters() []string {
	var out []string
	for _, cp := range m.st().GetClusters() {
		out = append(out, cp.GetCluster())
	}
	return out
}

func (m *machine) groupNames() []string {
	st := m.st()
	var out []string
	for _, cp := range m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup()) {
		out = append(out, cp.GetCluster())
	}
	return out
}

// carryPreflight keeps the passed pre-flight of the rollout in progress a
// re-apply replaces when what it checked is unchanged (the same revision,
// targets, checks, policy and dry runs; steps or gates edited), so editing
// a rollout in progress does not withdraw its traffic to check the same
// artifact again.
func (m *machine) carryPreflight(old *cutoverv1.Rollout) {
	if old == nil || Terminal(old.GetStatus().GetPhase()) {
		return
	}
	prev := (&machine{r: old}).checkRun(CheckPreflight)
	if prev.GetEndTime() == nil || failedRun(prev) {
		return
	}
	a, b := old.GetSpec(), m.r.GetSpec()
	if !proto.Equal(a.GetRevision(), b.GetRevision()) || !proto.Equal(a.GetTargets(), b.GetTargets()) ||
		!proto.Equal(a.GetPreflight(), b.GetPreflight()) || a.GetPolicy() != b.GetPolicy() {
		return
	}
	// What each agent's dry run checked (listen addresses, capacity for
	// the strategy, Kubernetes objects) must be the same too.
	for _, c := range m.allClusters() {
		if !proto.Equal(DryRun(old, c, a.GetPreflight().GetRequirePinned()), DryRun(m.r, c, b.GetPreflight().GetRequirePinned())) {
			return
		}
	}
	run := proto.Clone(prev).(*cutoverv1.CheckRun)
	st := m.st()
	st.Checks = append(st.Checks, run)
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_CHECKS_PASSED, "",
		fmt.Sprintf("pre-flight of rollout %d kept: same revision, targets and checks", old.GetStatus().GetRolloutNumber()))
}

func failedRun(run *cutoverv1.CheckRun) bool {
	for _, r := range run.GetResults() {
		if !r.GetPassed() {
			return true
		}
	}
	return false
}

// DryRun is what a cluster's agent checks in the pre-flight: the app as
// the rollout will ask for it with the new revision, and how many
// instances the strategy runs beside the ones serving now.
func DryRun(r *cutoverv1.Rollout, cluster string, requirePinned bool) *cutoverv1.DryRun {
	var cp *cutoverv1.ClusterProgress
	for _, c := range r.GetStatus().GetClusters() {
		if c.GetCluster() == cluster {
			cp = proto.Clone(c).(*cutoverv1.ClusterProgress)
		}
	}
	if cp == nil {
		cp = &cutoverv1.ClusterProgress{Cluster: cluster}
	}
	s := r.GetSpec()
	cp.Phase, cp.CanaryWeight, cp.CanaryInstances = cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, 0, 0
	d := Desired(r, cp)
	if !slices.ContainsFunc(d.GetRevisions(), func(dr *cutoverv1.DesiredRevision) bool {
		return proto.Equal(dr.GetRevision(), s.GetRevision())
	}) {
		cp.Phase = cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED
		preview := d.GetPreviewListen()
		d = Desired(r, cp)
		d.PreviewListen = preview
	}
	d.Generation = 0
	n := max(s.GetRevision().GetInstances(), 1)
	extra := n
	if rolling := s.GetStrategy().GetRolling(); rolling != nil && cp.GetStableRevision() != nil {
		extra = int32(spec.BatchSize(rolling, int(n)))
	}
	return &cutoverv1.DryRun{Desired: d, ExtraInstances: extra, RequirePinned: requirePinned, Revision: s.GetRevision()}
}

// notFinished names the result closeChecks gives a run it ends.
const notFinished = "not finished"

// closedUnfinished reports whether closeChecks ended run.
func closedUnfinished(run *cutoverv1.CheckRun) bool {
	rs := run.GetResults()
	return run.GetEndTime() != nil && len(rs) > 0 && rs[len(rs)-1].GetName() == notFinished
}

// closeChecks ends the pending runs of the given phases with one result,
// "not finished", that says why: nothing waits for them any longer, and
// whoever runs them stops (their results would be refused).
func (m *machine) closeChecks(why string, phases ...string) {
	for _, run := range m.st().GetChecks() {
		if run.GetEndTime() != nil || !slices.Contains(phases, run.GetPhase()) {
			continue
		}
		run.EndTime = timestamppb.New(m.now)
		run.Results = append(run.Results, &cutoverv1.CheckResult{
			Name: notFinished, Kind: "builtin", Message: why, StartTime: timestamppb.New(m.now),
		})
	}
}
