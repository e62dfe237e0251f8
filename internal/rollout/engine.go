package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
	"github.com/cutover-dev/cutover/internal/window"
)

// Sentinel errors; the API edge maps them to status codes.
var (
	// ErrTerminal: the action needs a rollout that is still in progress.
	ErrTerminal = errors.New("rollout has finished")
	// ErrNoRollout: the event needs an existing rollout.
	ErrNoRollout = errors.New("rollout does not exist")
	// ErrUnknownCluster: an observation came from a cluster the rollout does not target.
	ErrUnknownCluster = errors.New("cluster is not a target of this rollout")
	// ErrNotAborted: only an aborted rollout can be retried.
	ErrNotAborted = errors.New("rollout is not aborted")
	// ErrNotAwaitingApproval: approve and reject need a rollout waiting for
	// approval.
	ErrNotAwaitingApproval = errors.New("rollout is not waiting for approval")
	// ErrApprovalRefused: this person may not give this approval (four
	// eyes, once per person, an allowed role).
	ErrApprovalRefused = errors.New("approval refused")
)

// Event is something that happens to a rollout.
type Event interface{ isEvent() }

// Apply starts a rollout of Spec, superseding any rollout in progress.
// Reason, when set, is recorded instead of the plain "apply" (e.g. an undo).
type Apply struct {
	Name   string
	Spec   *cutoverv1.RolloutSpec
	Actor  string
	Reason string
}

// Promote completes the current step, or with Full every remaining step and wave.
type Promote struct {
	Full  bool
	Actor string
}

// Abort returns every touched cluster to its stable revision.
type Abort struct {
	Reason string
	Actor  string
}

// Pause holds the rollout at its current step. Reason, when set, is
// recorded (e.g. the evidence of a warning gate).
type Pause struct {
	Actor  string
	Reason string
}

// Resume lifts an operator pause.
type Resume struct{ Actor string }

// Retry restarts an aborted rollout from its first step.
type Retry struct{ Actor string }

// Observe records what a cluster's agent reports for the app.
type Observe struct {
	Cluster string
	App     *cutoverv1.ObservedApp
}

// Tick lets time-based steps move on.
type Tick struct{}

// Approve is one person's approval of what the rollout waits for. Roles
// are the roles they hold for this app.
type Approve struct {
	Actor   string
	Roles   []string
	Comment string
}

// Reject refuses the approval the rollout waits for; it aborts.
type Reject struct {
	Actor   string
	Comment string
}

func (Apply) isEvent()   {}
func (Promote) isEvent() {}
func (Abort) isEvent()   {}
func (Pause) isEvent()   {}
func (Resume) isEvent()  {}
func (Retry) isEvent()   {}
func (Observe) isEvent() {}
func (Tick) isEvent()    {}
func (Approve) isEvent() {}
func (Reject) isEvent()  {}

// Result is what Step decided.
type Result struct {
	// Rollout is the new state; the input is never modified.
	Rollout *cutoverv1.Rollout
	// Changed is false when the event changed nothing worth storing.
	Changed bool
	// Desired holds the desired state of every cluster whose desired state
	// changed, keyed by cluster.
	Desired map[string]*cutoverv1.DesiredApp
	// WakeAt is when the rollout wants a Tick; zero for never.
	WakeAt time.Time
}

// Step applies one event. r may be nil only for Apply.
func Step(r *cutoverv1.Rollout, ev Event, now time.Time) (Result, error) {
	if a, ok := ev.(Apply); ok {
		return apply(r, a, false, now), nil
	}
	if r == nil {
		return Result{}, ErrNoRollout
	}
	if rt, ok := ev.(Retry); ok {
		if r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED {
			return Result{}, fmt.Errorf("retry: %w (%s)", ErrNotAborted, PhaseName(r.GetStatus().GetPhase()))
		}
		return apply(r, Apply{Name: r.GetName(), Spec: r.GetSpec(), Actor: rt.Actor, Reason: "retry"}, true, now), nil
	}
	m := &machine{r: proto.Clone(r).(*cutoverv1.Rollout), now: now}
	if err := m.handle(ev); err != nil {
		return Result{}, err
	}
	m.advance()
	m.scaleDown()
	return m.result(r), nil
}

// apply starts a new rollout of a.Spec from what each cluster serves under
// old. An identical spec changes nothing unless force is set (retry).
func apply(old *cutoverv1.Rollout, a Apply, force bool, now time.Time) Result {
	if old != nil && !force && proto.Equal(old.GetSpec(), a.Spec) {
		m := &machine{r: old, now: now}
		return Result{Rollout: old, WakeAt: m.wakeAt()}
	}
	r := &cutoverv1.Rollout{
		Name:       a.Name,
		Spec:       proto.Clone(a.Spec).(*cutoverv1.RolloutSpec),
		CreateTime: timestamppb.New(now),
		UpdateTime: timestamppb.New(now),
		AppliedBy:  a.Actor,
	}
	prev := map[string]*cutoverv1.ClusterProgress{}
	if old != nil {
		r.CreateTime = old.GetCreateTime()
		for _, cp := range old.GetStatus().GetClusters() {
			prev[cp.GetCluster()] = cp
		}
	}
	st := &cutoverv1.RolloutStatus{
		Phase:         cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING,
		StartTime:     timestamppb.New(now),
		StepStartTime: timestamppb.New(now),
		RolloutNumber: old.GetStatus().GetRolloutNumber() + 1,
		Message:       fmt.Sprintf("rolling out revision %s", a.Spec.GetRevision().GetName()),
	}
	for i, w := range a.Spec.GetTargets().GetWaves() {
		for j, c := range w.GetClusters() {
			cp := &cutoverv1.ClusterProgress{Cluster: c, Wave: int32(i), Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PENDING}
			if n := int(w.GetMaxParallel()); n > 0 {
				cp.Group = int32(j / n)
			}
			if p := prev[c]; p != nil {
				cp.StableRevision = serving(p, old.GetSpec())
				cp.DesiredGeneration = p.GetDesiredGeneration()
				cp.ObservedGeneration = p.GetObservedGeneration()
				cp.Converged = p.GetConverged()
				cp.ObservedRevisions = p.GetObservedRevisions()
				cp.AgentError = p.GetAgentError()
				cp.PreviousRevision, cp.ScaleDownTime = p.GetPreviousRevision(), p.GetScaleDownTime()
			}
			st.Clusters = append(st.Clusters, cp)
		}
	}
	r.Status = st
	m := &machine{r: r, now: now}
	reason := a.Reason
	if reason == "" {
		reason = "apply"
	}
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED, a.Actor,
		fmt.Sprintf("%s: revision %s", reason, a.Spec.GetRevision().GetName()))
	// Compare every cluster against what the previous rollout asked of it,
	// so one whose desired state does not change keeps its generation and a
	// superseded canary is withdrawn even in waves that have not started.
	for _, cp := range st.GetClusters() {
		var before *cutoverv1.DesiredApp
		if p := prev[cp.GetCluster()]; p != nil {
			before = Desired(old, p)
		}
		m.refresh(cp, before)
	}
	m.carryPreflight(old)
	m.startWave(0)
	m.advance()
	res := m.result(nil)
	res.Changed = true
	return res
}

// serving is the revision a cluster serves at full weight under a rollout.
func serving(cp *cutoverv1.ClusterProgress, s *cutoverv1.RolloutSpec) *cutoverv1.Revision {
	switch cp.GetPhase() {
	case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED:
		return s.GetRevision()
	case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING:
		if cp.GetStableRevision() == nil && cp.GetDesiredGeneration() > 0 {
			return s.GetRevision() // a first deploy in progress already serves it
		}
	}
	return cp.GetStableRevision()
}

// machine carries one Step's working copy.
type machine struct {
	r   *cutoverv1.Rollout
	now time.Time
	// desired holds the clusters whose desired state this step changed.
	desired map[string]*cutoverv1.DesiredApp
	// origins holds, for each cluster in desired, where it stood before this
	// step, so that a change undone later in the same step is no change.
	origins map[string]origin
	// flipped is the cluster whose report in this step changed whether its
	// desired state is in force; a shadow step's hold counts from then.
	flipped string
}

// origin is a cluster's desired state and progress before a step changed it.
type origin struct {
	desired    *cutoverv1.DesiredApp
	generation int64
	converged  bool
}

func (m *machine) st() *cutoverv1.RolloutStatus { return m.r.GetStatus() }

func (m *machine) handle(ev Event) error {
	st := m.st()
	terminal := Terminal(st.GetPhase())
	switch e := ev.(type) {
	case Promote:
		if terminal {
			return fmt.Errorf("promote: %w (%s)", ErrTerminal, PhaseName(st.GetPhase()))
		}
		m.promote(e.Full, e.Actor)
	case Abort:
		if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED {
			return nil
		}
		if terminal {
			return fmt.Errorf("abort: %w (%s)", ErrTerminal, PhaseName(st.GetPhase()))
		}
		m.abort(e.Reason, e.Actor)
	case Pause:
		if terminal {
			return fmt.Errorf("pause: %w (%s)", ErrTerminal, PhaseName(st.GetPhase()))
		}
		if st.GetPauseReason() == cutoverv1.PauseReason_PAUSE_REASON_OPERATOR {
			return nil
		}
		st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED
		st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_OPERATOR
		st.Message = "paused by an operator"
		if e.Reason != "" {
			st.Message = "paused: " + e.Reason
		}
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PAUSED, e.Actor, st.Message)
	case Resume:
		if terminal {
			return fmt.Errorf("resume: %w (%s)", ErrTerminal, PhaseName(st.GetPhase()))
		}
		switch st.GetPauseReason() {
		case cutoverv1.PauseReason_PAUSE_REASON_OPERATOR:
			m.setProgressing("resumed by an operator")
			m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_RESUMED, e.Actor, st.GetMessage())
		case cutoverv1.PauseReason_PAUSE_REASON_FAILURE:
			st.StepStartTime = timestamppb.New(m.now) // a fresh deadline for the retried step
			for _, cp := range st.GetClusters() {     // and a fresh failure count
				cp.FailuresForgiven += newFailures(cp, m.r.GetSpec().GetRevision().GetName())
			}
			m.setProgressing("resumed after a failure")
			m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_RESUMED, e.Actor, st.GetMessage())
		}
	case Observe:
		if err := m.observe(e); err != nil {
			return err
		}
		// The agent's local guard acted while it could not reach us: the
		// rollout follows it instead of flapping back.
		if g := e.App.GetGuardTripped(); g != "" && !terminal {
			m.abort(fmt.Sprintf("local guard in %s: %s", e.Cluster, g), "agent "+e.Cluster)
		}
	case Approve:
		return m.approve(e)
	case Reject:
		if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
			return fmt.Errorf("reject: %w (%s)", ErrNotAwaitingApproval, PhaseName(st.GetPhase()))
		}
		msg := "rejected by " + e.Actor
		if e.Comment != "" {
			msg += ": " + e.Comment
		}
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_REJECTED, e.Actor, msg)
		m.abort(msg, e.Actor)
	case ChecksDone:
		return m.checksDone(e)
	case Tick:
	default:
		return fmt.Errorf("unknown event %T", ev)
	}
	return nil
}

func (m *machine) observe(e Observe) error {
	cp := m.cluster(e.Cluster)
	if cp == nil {
		return fmt.Errorf("observe %s: %w", e.Cluster, ErrUnknownCluster)
	}
	if e.App.GetObservedGeneration() < cp.GetObservedGeneration() {
		return nil // a stale report, overtaken by a newer one
	}
	cp.ObservedGeneration = e.App.GetObservedGeneration()
	was := cp.GetConverged()
	cp.Converged = e.App.GetConverged() && e.App.GetObservedGeneration() == cp.GetDesiredGeneration()
	if cp.GetConverged() != was {
		m.flipped = cp.GetCluster()
	}
	cp.ObservedRevisions = e.App.GetRevisions()
	cp.AgentError = e.App.GetError()
	for _, o := range e.App.GetRevisions() {
		if o.GetRevision() == m.r.GetSpec().GetRevision().GetName() && o.GetInstancesFailed() < cp.GetFailuresForgiven() {
			cp.FailuresForgiven = 0 // the agent restarted and counts afresh
		}
	}
	return nil
}

func (m *machine) promote(full bool, actor string) {
	st := m.st()
	// Hooks of a step the operator moves past are not waited for: the
	// boundary they guarded is gone. A promote that stays at the boundary
	// (the wave's promotion) still waits for them.
	step := m.effectiveStep() // what the boundary's hooks guard
	defer func() {
		if m.effectiveStep() != step {
			m.closeChecks("promoted past by an operator before they finished", CheckPreTrafficShift)
		}
	}()
	if st.GetBakeUntil() != nil {
		st.BakeUntil = timestamppb.New(m.now) // a promote ends the bake
	}
	if full {
		st.PromoteFull = true
		st.CurrentStep = int32(len(m.steps()))
		st.StepStartTime = timestamppb.New(m.now) // the promotion gets a full deadline
		st.StepPending = true                     // still within the window
		m.setProgressing("fully promoted by an operator")
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PROMOTED, actor, "every remaining step and wave skipped")
		return
	}
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PROMOTED, actor, "current step completed")
	if int(st.GetCurrentStep()) < len(m.steps()) {
		m.nextStep()
	}
	m.setProgressing("promoted by an operator")
}

func (m *machine) abort(reason, actor string) {
	st := m.st()
	var touched []string
	for _, cp := range st.GetClusters() {
		switch cp.GetPhase() {
		case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED:
			touched = append(touched, cp.GetCluster())
			before := Desired(m.r, cp)
			cp.PreviousRevision, cp.ScaleDownTime = nil, nil // the switch back makes it active again
			cp.Phase, cp.CanaryWeight, cp.MirrorPercent = cutoverv1.ClusterPhase_CLUSTER_PHASE_ABORTED, 0, 0
			m.refresh(cp, before)
		}
	}
	m.closeChecks("the rollout was aborted before they finished", CheckPreflight, CheckPreRollout, CheckPreTrafficShift, CheckPostPromotion)
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED
	st.EndTime = timestamppb.New(m.now)
	st.Message = "aborted"
	if reason != "" {
		st.Message = "aborted: " + reason
	}
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED, actor, st.GetMessage())
	if len(touched) > 0 {
		m.startAbortHooks(touched)
	}
}

// record appends to the timeline at the current wave and step.
func (m *machine) record(t cutoverv1.TimelineEventType, actor, msg string) {
	st := m.st()
	st.Timeline = append(st.Timeline, &cutoverv1.TimelineEvent{
		Time:    timestamppb.New(m.now),
		Type:    t,
		Wave:    st.GetCurrentWave(),
		Group:   st.GetCurrentGroup(),
		Step:    st.GetCurrentStep(),
		Actor:   actor,
		Message: msg,
	})
}

func (m *machine) setProgressing(msg string) {
	st := m.st()
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING
	st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED
	st.Message = msg
}

// advance moves through every step that can complete now. A step (and a
// group's start) begins only while the deployment window is open; at a
// closed boundary the rollout waits, traffic as it is.
func (m *machine) advance() {
	st := m.st()
	m.windowOpened()
	switch st.GetPhase() {
	case cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL, cutoverv1.RolloutPhase_ROLLOUT_PHASE_CHECKING:
		st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING // looked at again: done now, timed out, or still waiting
	}
	for st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING {
		if st.GetStepPending() || st.GetGroupPending() {
			// Pre-flight first, so approvers see its results; the hooks
			// run last, right before traffic moves.
			if m.awaitPreflight() || m.awaitStartApproval() || m.windowClosed() || m.awaitBoundaryChecks() {
				return
			}
			st.StepPending = false
			st.StepStartTime = timestamppb.New(m.now) // waiting for the window is not progress time
			if st.GetGroupPending() {
				st.GroupPending = false
				m.beginGroup()
			}
		}
		if !m.stepOnce() {
			return
		}
	}
}

// window is the spec's deployment window; nil when it has none (or one
// that does not compile, which validation refuses before it gets here).
func (m *machine) window() *window.Window {
	ws := m.r.GetSpec().GetWindow()
	if ws == nil {
		return nil
	}
	w, err := window.Compile(ws)
	if err != nil {
		return nil
	}
	return w
}

// windowClosed puts the rollout in WAITING_FOR_WINDOW when the window is
// closed now; a critical rollout with a break-glass reason waits for two
// approvals instead, and then goes on.
func (m *machine) windowClosed() bool {
	w := m.window()
	why, closed := w.Closed(m.now)
	if !closed {
		return false
	}
	st := m.st()
	if s := m.r.GetSpec(); s.GetUrgency() == spec.UrgencyCritical && s.GetBreakGlassReason() != "" {
		return m.awaitApproval(breakGlassGate, m.breakGlassApproval(),
			fmt.Sprintf("break-glass outside the deployment window (%s): %s", why, s.GetBreakGlassReason()))
	}
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW
	st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED
	if next, ok := w.NextOpen(m.now); ok {
		st.Message = fmt.Sprintf("waiting for the deployment window (%s); it opens %s", why, next.In(w.Location()).Format("Mon 2006-01-02 15:04 MST"))
	} else {
		st.Message = fmt.Sprintf("waiting for the deployment window (%s); it does not open within 400 days", why)
	}
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WINDOW_CLOSED, "", st.GetMessage())
	return true
}

// Gates of approvals.
const (
	startGate      = "start"
	breakGlassGate = "break-glass"
)

// breakGlassApproval is what running outside the window takes: two
// people, with the roles the rollout's own approval names (its policy's),
// or the default approver roles.
func (m *machine) breakGlassApproval() *cutoverv1.ApprovalStep {
	return &cutoverv1.ApprovalStep{Required: 2, Roles: m.r.GetSpec().GetApproval().GetRoles()}
}

// awaitStartApproval holds the first group of the first wave until the
// spec's approval is given.
func (m *machine) awaitStartApproval() bool {
	st := m.st()
	a := m.r.GetSpec().GetApproval()
	if a == nil || !st.GetGroupPending() || st.GetCurrentWave() != 0 || st.GetCurrentGroup() != 0 {
		return false
	}
	return m.awaitApproval(startGate, a, "approval before the first step")
}

// stepGate names the approval of the current step.
func (m *machine) stepGate() string {
	st := m.st()
	g := fmt.Sprintf("wave %d step %d", st.GetCurrentWave(), st.GetCurrentStep())
	if st.GetCurrentGroup() > 0 {
		g += fmt.Sprintf(" group %d", st.GetCurrentGroup())
	}
	return g
}

// awaitApproval reports whether the rollout must wait for the approvals
// of gate; it then waits in WAITING_FOR_APPROVAL (or aborts when the
// approval timed out).
func (m *machine) awaitApproval(gate string, a *cutoverv1.ApprovalStep, what string) bool {
	st := m.st()
	need := int(max(a.GetRequired(), 1))
	have := m.approvalsOf(gate)
	if len(have) >= need {
		return false
	}
	if d := spec.ApprovalTimeout(a); d > 0 && !m.now.Before(st.GetStepStartTime().AsTime().Add(d)) {
		m.abort(fmt.Sprintf("%s: no decision within %s", what, d), "")
		return true
	}
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL
	st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED
	st.Message = fmt.Sprintf("waiting for approval (%s): %d of %d from %s", what, len(have), need, strings.Join(spec.ApprovalRoles(a), " or "))
	return true
}

// approvalsOf lists the distinct approvers of a gate.
func (m *machine) approvalsOf(gate string) []string {
	var out []string
	for _, a := range m.st().GetApprovals() {
		if a.GetGate() == gate && !slices.Contains(out, a.GetActor()) {
			out = append(out, a.GetActor())
		}
	}
	return out
}

// pendingApproval is the gate the rollout waits on and its approval.
func (m *machine) pendingApproval() (string, *cutoverv1.ApprovalStep) {
	st := m.st()
	if w := m.window(); w != nil && (st.GetStepPending() || st.GetGroupPending()) {
		if _, closed := w.Closed(m.now); closed && m.r.GetSpec().GetUrgency() == spec.UrgencyCritical && m.r.GetSpec().GetBreakGlassReason() != "" {
			if a := m.r.GetSpec().GetApproval(); a == nil || st.GetCurrentWave() != 0 || st.GetCurrentGroup() != 0 || !st.GetGroupPending() ||
				len(m.approvalsOf(startGate)) >= int(max(a.GetRequired(), 1)) {
				return breakGlassGate, m.breakGlassApproval()
			}
		}
	}
	if a := m.r.GetSpec().GetApproval(); a != nil && st.GetGroupPending() && st.GetCurrentWave() == 0 && st.GetCurrentGroup() == 0 {
		return startGate, a
	}
	if steps := m.steps(); int(st.GetCurrentStep()) < len(steps) {
		if a := steps[st.GetCurrentStep()].GetApproval(); a != nil {
			return m.stepGate(), a
		}
	}
	return "", nil
}

// approve records an approval after the four-eyes checks; the rollout
// then moves on if it has enough.
func (m *machine) approve(e Approve) error {
	st := m.st()
	if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		return fmt.Errorf("approve: %w (%s)", ErrNotAwaitingApproval, PhaseName(st.GetPhase()))
	}
	gate, a := m.pendingApproval()
	if a == nil {
		return fmt.Errorf("approve: %w", ErrNotAwaitingApproval)
	}
	if e.Actor == m.r.GetAppliedBy() {
		return fmt.Errorf("approve: %w: %s applied this rollout and cannot approve it (four eyes)", ErrApprovalRefused, e.Actor)
	}
	if slices.Contains(m.approvalsOf(gate), e.Actor) {
		return fmt.Errorf("approve: %w: %s has approved %s already; another person must", ErrApprovalRefused, e.Actor, gate)
	}
	allowed := spec.ApprovalRoles(a)
	var roles []string
	for _, r := range e.Roles {
		if slices.Contains(allowed, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return fmt.Errorf("approve: %w: %s approves with role %s, has %s", ErrApprovalRefused, gate, strings.Join(allowed, " or "), strings.Join(e.Roles, ", "))
	}
	st.Approvals = append(st.Approvals, &cutoverv1.Approval{Gate: gate, Actor: e.Actor, Roles: roles, Time: timestamppb.New(m.now), Comment: e.Comment})
	msg := fmt.Sprintf("%s approved (%d of %d)", gate, len(m.approvalsOf(gate)), max(a.GetRequired(), 1))
	if e.Comment != "" {
		msg += ": " + e.Comment
	}
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_APPROVED, e.Actor, msg)
	m.setProgressing(msg)
	return nil
}

// windowOpened moves a waiting rollout on once its window is open.
func (m *machine) windowOpened() {
	st := m.st()
	if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW {
		return
	}
	if _, closed := m.window().Closed(m.now); closed {
		return
	}
	m.setProgressing("deployment window open")
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WINDOW_OPENED, "", "deployment window open")
}

// stepOnce runs the current step; it reports whether the rollout moved on.
func (m *machine) stepOnce() bool {
	st := m.st()
	steps := m.steps()
	wave := m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup())
	if int(st.GetCurrentStep()) < len(steps) && (st.GetPromoteFull() || firstDeploy(wave)) {
		st.CurrentStep = int32(len(steps))
	}
	if int(st.GetCurrentStep()) >= len(steps) {
		return m.promoteWave(wave)
	}
	switch s := steps[st.GetCurrentStep()].GetStep().(type) {
	case *cutoverv1.CanaryStep_SetWeight:
		for _, cp := range wave {
			m.setCluster(cp, cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, s.SetWeight)
		}
		if !converged(wave) {
			return m.waiting(fmt.Sprintf("waiting for %d%% to be in force in wave %s", s.SetWeight, m.waveName()))
		}
	case *cutoverv1.CanaryStep_SetHeaderRoute:
		for _, cp := range wave {
			m.setHeaderRoute(cp, s.SetHeaderRoute)
		}
		if !converged(wave) {
			return m.waiting(fmt.Sprintf("waiting for the %s header route to be in force in wave %s", s.SetHeaderRoute.GetHeader(), m.waveName()))
		}
	case *cutoverv1.CanaryStep_SetCanaryScale:
		for _, cp := range wave {
			m.setCanaryInstances(cp, s.SetCanaryScale.GetInstances())
		}
		if !converged(wave) {
			return m.waiting(fmt.Sprintf("waiting for %d new instances in wave %s", s.SetCanaryScale.GetInstances(), m.waveName()))
		}
	case *cutoverv1.CanaryStep_Analysis:
		// Gates arrive with the gating work: with none defined the step
		// passes once its window has elapsed.
		if w := spec.AnalysisWindow(s.Analysis); m.now.Before(st.GetStepStartTime().AsTime().Add(w)) {
			st.Message = fmt.Sprintf("analysis over %s (no gates defined: passes when the window ends)", w)
			return false
		}
	case *cutoverv1.CanaryStep_Approval:
		if m.awaitApproval(m.stepGate(), s.Approval, "step "+fmt.Sprint(st.GetCurrentStep()+1)) {
			return false
		}
	case *cutoverv1.CanaryStep_Shadow:
		if !m.shadowStep(wave, s.Shadow) {
			return false
		}
	case *cutoverv1.CanaryStep_Pause:
		d := spec.PauseDuration(s.Pause)
		if d == 0 {
			st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED
			st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_STEP
			st.Message = "waiting for promote"
			return false
		}
		if m.now.Before(st.GetStepStartTime().AsTime().Add(d)) {
			st.Message = fmt.Sprintf("pausing %s", d)
			return false
		}
	}
	m.nextStep()
	return true
}

func (m *machine) promoteWave(wave []*cutoverv1.ClusterProgress) bool {
	st := m.st()
	warm := time.Duration(0)
	if strategy, err := StrategyOf(m.r.GetSpec()); err == nil {
		warm = strategy.KeepWarm(m.r.GetSpec())
	}
	for _, cp := range wave {
		if warm > 0 && cp.GetPhase() != cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED &&
			cp.GetStableRevision() != nil && !proto.Equal(cp.GetStableRevision(), m.r.GetSpec().GetRevision()) {
			before := Desired(m.r, cp)
			cp.PreviousRevision = cp.GetStableRevision()
			cp.ScaleDownTime = timestamppb.New(m.now.Add(warm))
			cp.Phase, cp.CanaryWeight = cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED, 100
			m.refresh(cp, before)
			continue
		}
		m.setCluster(cp, cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED, 100)
	}
	// Once promoted and baking, a wave's later changes (a blue-green scale-
	// down) are not waited for.
	if st.GetBakeUntil() == nil && !converged(wave) {
		return m.waiting(fmt.Sprintf("promoting wave %s", m.waveName()))
	}
	if st.GetBakeUntil() == nil && m.awaitPostPromotion() {
		return false
	}
	waves := m.r.GetSpec().GetTargets().GetWaves()
	if st.GetBakeUntil() == nil && len(m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup()+1)) > 0 {
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_PROMOTED, "",
			fmt.Sprintf("group %d of wave %s promoted", st.GetCurrentGroup()+1, m.waveName()))
		m.startGroup(st.GetCurrentWave(), st.GetCurrentGroup()+1)
		return true
	}
	last := int(st.GetCurrentWave())+1 >= len(waves)
	if st.GetBakeUntil() == nil {
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_PROMOTED, "", fmt.Sprintf("wave %s promoted", m.waveName()))
		if b := spec.Bake(waves[st.GetCurrentWave()]); b > 0 && !last {
			st.BakeUntil = timestamppb.New(m.now.Add(b))
		}
	}
	if bu := st.GetBakeUntil(); bu != nil {
		if m.now.Before(bu.AsTime()) {
			st.Message = fmt.Sprintf("baking wave %s for %s", m.waveName(), bu.AsTime().Sub(m.now).Round(time.Second))
			return false
		}
		st.BakeUntil = nil
	}
	if !last {
		m.startWave(st.GetCurrentWave() + 1)
		return true
	}
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
	st.EndTime = timestamppb.New(m.now)
	st.Message = fmt.Sprintf("revision %s is stable in every cluster", m.r.GetSpec().GetRevision().GetName())
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_HEALTHY, "", st.GetMessage())
	return false
}

func (m *machine) startWave(i int32) { m.startGroup(i, 0) }

// startGroup starts the steps for one group of a wave (the whole wave when
// it has no maxParallel).
// The group's clusters start moving at the next step boundary the window
// allows (beginGroup).
func (m *machine) startGroup(wave, group int32) {
	st := m.st()
	st.CurrentWave, st.CurrentGroup = wave, group
	st.CurrentStep = 0
	st.StepStartTime = timestamppb.New(m.now)
	st.StepPending, st.GroupPending = true, true
}

// beginGroup starts the current group's clusters.
func (m *machine) beginGroup() {
	st := m.st()
	wave, group := st.GetCurrentWave(), st.GetCurrentGroup()
	for _, cp := range m.groupClusters(wave, group) {
		m.setCluster(cp, cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, 0)
	}
	msg := fmt.Sprintf("wave %s started", m.waveName())
	if group > 0 || len(m.groupClusters(wave, 1)) > 0 {
		msg = fmt.Sprintf("group %d of wave %s started", group+1, m.waveName())
	}
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_STARTED, "", msg)
}

// setCanaryInstances sets how many instances of the new revision a cluster
// runs.
func (m *machine) setCanaryInstances(cp *cutoverv1.ClusterProgress, n int32) {
	if cp.GetCanaryInstances() == n {
		return
	}
	before := Desired(m.r, cp)
	cp.CanaryInstances = n
	// Where traffic follows instances (rolling), the weight the new
	// revision gets is what the status shows.
	for _, dr := range Desired(m.r, cp).GetRevisions() {
		if dr.GetTrack() == cutoverv1.Track_TRACK_CANARY {
			cp.CanaryWeight = dr.GetWeight()
		}
	}
	m.refresh(cp, before)
}

// failure asks the strategy whether the wave's clusters failed.
func (m *machine) failure(wave []*cutoverv1.ClusterProgress) string {
	strategy, err := StrategyOf(m.r.GetSpec())
	if err != nil {
		return err.Error()
	}
	return strategy.Failure(m.r.GetSpec(), wave)
}

func (m *machine) nextStep() {
	st := m.st()
	if steps := m.steps(); int(st.GetCurrentStep()) < len(steps) {
		m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED, "", DescribeStep(steps[st.GetCurrentStep()]))
	}
	st.CurrentStep++
	st.StepStartTime = timestamppb.New(m.now)
	st.StepPending = true
}

// waiting notes that the current wave has not reported the step in force.
// Past the progress deadline that is a failure. It returns false: the
// rollout does not move on.
func (m *machine) waiting(msg string) bool {
	st := m.st()
	if failed := m.failure(m.groupClusters(st.GetCurrentWave(), st.GetCurrentGroup())); failed != "" {
		m.fail(failed)
		return false
	}
	deadline := spec.ProgressDeadline(m.r.GetSpec())
	if m.now.Before(st.GetStepStartTime().AsTime().Add(deadline)) {
		st.Message = msg
		return false
	}
	m.fail(fmt.Sprintf("progress deadline %s exceeded %s", deadline, msg))
	return false
}

// fail applies the failure policy: abort (the default) or hold.
func (m *machine) fail(msg string) {
	st := m.st()
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_FAILED, "", msg)
	if m.r.GetSpec().GetTargets().GetFailurePolicy() == spec.FailureHold {
		st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED
		st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_FAILURE
		st.Message = "held after a failure: " + msg
		return
	}
	m.abort(msg, "")
}

// setHeaderRoute puts a header route in force in a cluster that carries the
// new revision beside the stable one.
func (m *machine) setHeaderRoute(cp *cutoverv1.ClusterProgress, h *cutoverv1.HeaderRoute) {
	if proto.Equal(cp.GetHeaderRoute(), h) {
		return
	}
	before := Desired(m.r, cp)
	cp.HeaderRoute = h
	m.refresh(cp, before)
}

// setCluster changes a cluster's phase and weight, bumping its desired
// generation when that changes what the agent must do.
func (m *machine) setCluster(cp *cutoverv1.ClusterProgress, phase cutoverv1.ClusterPhase, weight int32) {
	if cp.GetPhase() == phase && cp.GetCanaryWeight() == weight && cp.GetMirrorPercent() == 0 {
		return
	}
	before := Desired(m.r, cp)
	cp.Phase = phase
	cp.CanaryWeight = weight
	cp.MirrorPercent = 0 // a weight or a promotion ends a shadow step's mirroring
	if phase != cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING {
		cp.HeaderRoute = nil // only a canary in progress routes by header
		cp.CanaryInstances = 0
	}
	m.refresh(cp, before)
}

// refresh bumps the cluster's generation if its desired state differs from
// before; a cluster changed twice in one step is bumped once, and not at all
// when the second change undoes the first (a wave started and promoted at
// once to the revision it serves, a superseded canary set back to the same
// weight), because the agent has nothing new to do.
func (m *machine) refresh(cp *cutoverv1.ClusterProgress, before *cutoverv1.DesiredApp) {
	name := cp.GetCluster()
	o, bumped := m.origins[name]
	if bumped {
		before = o.desired
	}
	after := Desired(m.r, cp)
	if sameDesired(before, after) {
		if bumped {
			cp.DesiredGeneration, cp.Converged = o.generation, o.converged
			delete(m.desired, name)
			delete(m.origins, name)
		}
		return
	}
	if !bumped {
		if m.desired == nil {
			m.desired = map[string]*cutoverv1.DesiredApp{}
			m.origins = map[string]origin{}
		}
		m.origins[name] = origin{desired: before, generation: cp.GetDesiredGeneration(), converged: cp.GetConverged()}
		cp.DesiredGeneration++
	}
	cp.Converged = false
	after.Generation = cp.GetDesiredGeneration()
	m.desired[name] = after
}

func (m *machine) result(old *cutoverv1.Rollout) Result {
	return Result{
		Rollout: m.r,
		Changed: old == nil || !proto.Equal(old, m.r),
		Desired: m.desired,
		WakeAt:  m.wakeAt(),
	}
}

// scaleDown stops the revisions kept warm after a blue-green switch once
// their delay is over, in any phase: a finished rollout still cleans up.
func (m *machine) scaleDown() {
	for _, cp := range m.st().GetClusters() {
		if t := cp.GetScaleDownTime(); t != nil && !m.now.Before(t.AsTime()) {
			before := Desired(m.r, cp)
			cp.PreviousRevision, cp.ScaleDownTime = nil, nil
			m.refresh(cp, before)
		}
	}
}

func (m *machine) wakeAt() time.Time {
	at := m.stepWakeAt()
	for _, cp := range m.st().GetClusters() {
		if t := cp.GetScaleDownTime(); t != nil && (at.IsZero() || t.AsTime().Before(at)) {
			at = t.AsTime()
		}
	}
	return at
}

func (m *machine) stepWakeAt() time.Time {
	st := m.st()
	if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW {
		if w := m.window(); w != nil {
			if next, ok := w.NextOpen(m.now); ok {
				return next
			}
		}
		return time.Time{}
	}
	if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_APPROVAL {
		if _, a := m.pendingApproval(); a != nil {
			if d := spec.ApprovalTimeout(a); d > 0 {
				return st.GetStepStartTime().AsTime().Add(d)
			}
		}
		return time.Time{}
	}
	if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING {
		return time.Time{}
	}
	if bu := st.GetBakeUntil(); bu != nil {
		return bu.AsTime() // in the future: advance has moved past a bake that is over
	}
	steps := m.steps()
	if i := int(st.GetCurrentStep()); i < len(steps) {
		if a := steps[i].GetAnalysis(); a != nil {
			return st.GetStepStartTime().AsTime().Add(spec.AnalysisWindow(a))
		}
		if sh := steps[i].GetShadow(); sh != nil {
			return m.shadowWakeAt(sh)
		}
		if p := steps[i].GetPause(); p != nil {
			if d := spec.PauseDuration(p); d > 0 {
				return st.GetStepStartTime().AsTime().Add(d)
			}
			return time.Time{}
		}
	}
	// Waiting for the wave to converge: wake at the progress deadline.
	return st.GetStepStartTime().AsTime().Add(spec.ProgressDeadline(m.r.GetSpec()))
}

func (m *machine) steps() []*cutoverv1.CanaryStep { return Steps(m.r.GetSpec()) }

func (m *machine) waveName() string {
	return m.r.GetSpec().GetTargets().GetWaves()[m.st().GetCurrentWave()].GetName()
}

// newFailures is how many instances of revision failed in a cluster beyond
// those forgiven by a resume.
func newFailures(cp *cutoverv1.ClusterProgress, revision string) int32 {
	for _, o := range cp.GetObservedRevisions() {
		if o.GetRevision() == revision {
			return max(o.GetInstancesFailed()-cp.GetFailuresForgiven(), 0)
		}
	}
	return 0
}

// groupClusters are the clusters of one group of a wave.
func (m *machine) groupClusters(wave, group int32) []*cutoverv1.ClusterProgress {
	var out []*cutoverv1.ClusterProgress
	for _, cp := range m.st().GetClusters() {
		if cp.GetWave() == wave && cp.GetGroup() == group {
			out = append(out, cp)
		}
	}
	return out
}

func (m *machine) cluster(name string) *cutoverv1.ClusterProgress {
	for _, cp := range m.st().GetClusters() {
		if cp.GetCluster() == name {
			return cp
		}
	}
	return nil
}

func firstDeploy(wave []*cutoverv1.ClusterProgress) bool {
	for _, cp := range wave {
		if cp.GetStableRevision() != nil {
			return false
		}
	}
	return true
}

func converged(wave []*cutoverv1.ClusterProgress) bool {
	for _, cp := range wave {
		if !cp.GetConverged() || cp.GetObservedGeneration() != cp.GetDesiredGeneration() {
			return false
		}
	}
	return true
}

// DescribeStep is a canary step in a few words, as the timeline, the CLI
// and the history show it, e.g. "setWeight 20" or "shadow 100% for 60s".
func DescribeStep(s *cutoverv1.CanaryStep) string {
	switch x := s.GetStep().(type) {
	case *cutoverv1.CanaryStep_SetWeight:
		return fmt.Sprintf("setWeight %d", x.SetWeight)
	case *cutoverv1.CanaryStep_Pause:
		if d := x.Pause.GetDuration(); d != "" {
			return "pause " + d
		}
		return "pause until promoted"
	case *cutoverv1.CanaryStep_SetHeaderRoute:
		return fmt.Sprintf("setHeaderRoute %s: %s", x.SetHeaderRoute.GetHeader(), x.SetHeaderRoute.GetValue())
	case *cutoverv1.CanaryStep_SetCanaryScale:
		return fmt.Sprintf("setCanaryScale %d", x.SetCanaryScale.GetInstances())
	case *cutoverv1.CanaryStep_Analysis:
		return "analysis " + x.Analysis.GetWindow()
	case *cutoverv1.CanaryStep_Shadow:
		return describeShadow(x.Shadow)
	case *cutoverv1.CanaryStep_Approval:
		return fmt.Sprintf("approval by %d", max(x.Approval.GetRequired(), 1))
	}
	return "step"
}

// Archive is the rollout as it goes into history when a new rollout of the
// same app replaces it: one still in progress ends Superseded.
func Archive(r *cutoverv1.Rollout, now time.Time) *cutoverv1.Rollout {
	out := proto.Clone(r).(*cutoverv1.Rollout)
	m := &machine{r: out, now: now}
	// Their results would land nowhere: checks of a rollout superseded.
	// On-abort hooks (cleanup) are left to finish; their results are
	// refused, but they did their work.
	m.closeChecks("a newer rollout of the app replaced this one before they finished",
		CheckPreflight, CheckPreRollout, CheckPreTrafficShift, CheckPostPromotion)
	if Terminal(out.GetStatus().GetPhase()) {
		return out
	}
	st := m.st()
	st.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED
	st.PauseReason = cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED
	st.EndTime = timestamppb.New(now)
	st.Message = "superseded by a newer apply"
	m.record(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_SUPERSEDED, "", st.GetMessage())
	return out
}
