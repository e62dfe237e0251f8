package audit

import (
	"fmt"
	"strings"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// ActorEngine is the actor of the engine's own decisions.
const ActorEngine = "cutover"

// AgentActor is the actor of what a cluster's agent did.
func AgentActor(cluster string) string { return "agent:" + cluster }

// Actions.
const (
	ActionApply           = "rollout.apply"
	ActionPromote         = "rollout.promote"
	ActionAbort           = "rollout.abort"
	ActionPause           = "rollout.pause"
	ActionResume          = "rollout.resume"
	ActionRetry           = "rollout.retry"
	ActionUndo            = "rollout.undo"
	ActionSuperseded      = "rollout.superseded"
	ActionFailed          = "rollout.failed"
	ActionHealthy         = "rollout.healthy"
	ActionWaveStarted     = "wave.started"
	ActionStepCompleted   = "step.completed"
	ActionWavePromoted    = "wave.promoted"
	ActionGateTripped     = "gate.tripped"
	ActionAgentConnect    = "agent.connect"
	ActionAgentDisconnect = "agent.disconnect"
	ActionAuthDenied      = "auth.denied"
	ActionWindowWait      = "window.wait"
	ActionWindowOpen      = "window.open"
	ActionApprove         = "approval.approve"
	ActionReject          = "approval.reject"
	ActionChecksPassed    = "checks.passed"
	ActionChecksFailed    = "checks.failed"
)

// actions maps each timeline event type to its action.
var actions = map[cutoverv1.TimelineEventType]string{
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED:        ActionApply,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_STARTED:   ActionWaveStarted,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED: ActionStepCompleted,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_PROMOTED:  ActionWavePromoted,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PAUSED:         ActionPause,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_RESUMED:        ActionResume,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PROMOTED:       ActionPromote,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED:        ActionAbort,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_HEALTHY:        ActionHealthy,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_SUPERSEDED:     ActionSuperseded,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_FAILED:         ActionFailed,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WINDOW_CLOSED:  ActionWindowWait,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WINDOW_OPENED:  ActionWindowOpen,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_APPROVED:       ActionApprove,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_REJECTED:       ActionReject,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_CHECKS_PASSED:  ActionChecksPassed,
	cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_CHECKS_FAILED:  ActionChecksFailed,
}

// RolloutTarget names a rollout as a record's target.
func RolloutTarget(name string) string { return "rollout/" + name }

// ClusterTarget names a cluster as a record's target.
func ClusterTarget(name string) string { return "cluster/" + name }

// Cause is what made a rollout change, when its timeline alone does not
// say it: it overrides the records of the new events of type Event.
type Cause struct {
	// Event is the timeline event type the cause produced.
	Event cutoverv1.TimelineEventType
	// Action replaces the event type's action, e.g. ActionUndo for the
	// STARTED of an undo, ActionGateTripped for the ABORTED of a gate.
	Action string
	// Actor, when set, replaces the event's actor, e.g. ActorEngine for a
	// gate, AgentActor for an agent's local guard.
	Actor string
	// Cluster the cause concerns, if one.
	Cluster string
}

// Timeline returns one record per event of after's timeline that before
// does not have, in order: every event when after is a new rollout of the
// app (another rollout number, or before is nil). Each record carries the
// summaries of before and after, so the records of one step share them.
func Timeline(before, after *cutoverv1.Rollout, cause Cause) []*cutoverv1.AuditRecord {
	events := after.GetStatus().GetTimeline()
	if before != nil && before.GetStatus().GetRolloutNumber() == after.GetStatus().GetRolloutNumber() {
		events = events[min(len(before.GetStatus().GetTimeline()), len(events)):]
	}
	var out []*cutoverv1.AuditRecord
	for _, e := range events {
		r := &cutoverv1.AuditRecord{
			Time:   e.GetTime(),
			Actor:  e.GetActor(),
			Action: actions[e.GetType()],
			Target: RolloutTarget(after.GetName()),
			App:    after.GetName(),
			Before: Summary(before),
			After:  Summary(after),
			Reason: e.GetMessage(),
		}
		if r.Action == "" {
			r.Action = "rollout." + strings.ToLower(strings.TrimPrefix(e.GetType().String(), "TIMELINE_EVENT_TYPE_"))
		}
		if cause.Event != cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_UNSPECIFIED && e.GetType() == cause.Event {
			if cause.Action != "" {
				r.Action = cause.Action
			}
			if cause.Actor != "" {
				r.Actor = cause.Actor
			}
			r.Cluster = cause.Cluster
		}
		if r.Actor == "" {
			r.Actor = ActorEngine
		}
		out = append(out, r)
	}
	return out
}

// Summary is a rollout in a few words: its phase, revision and, while it
// runs, where it stands, e.g. "progressing v2 wave 1 step 2" (1-based) or
// "healthy v2"; empty for none.
func Summary(r *cutoverv1.Rollout) string {
	if r == nil {
		return ""
	}
	st := r.GetStatus()
	phase := strings.ToLower(strings.TrimPrefix(st.GetPhase().String(), "ROLLOUT_PHASE_"))
	s := fmt.Sprintf("%s %s", phase, r.GetSpec().GetRevision().GetName())
	switch st.GetPhase() {
	case cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING, cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED:
		s += fmt.Sprintf(" wave %d step %d", st.GetCurrentWave()+1, st.GetCurrentStep()+1)
	}
	return s
}

// Agent is the record of an agent's stream opening (connected) or closing.
func Agent(cluster string, connected bool, detail string) *cutoverv1.AuditRecord {
	r := &cutoverv1.AuditRecord{
		Actor:   AgentActor(cluster),
		Action:  ActionAgentConnect,
		Target:  ClusterTarget(cluster),
		Cluster: cluster,
		Before:  "disconnected",
		After:   "connected",
		Reason:  detail,
	}
	if !connected {
		r.Action, r.Before, r.After = ActionAgentDisconnect, "connected", "disconnected"
	}
	return r
}

// Denied is the record of a refused request: subject called method on app
// (empty for none) in clusters and was refused because of why.
func Denied(subject, method, app string, clusters []string, why string) *cutoverv1.AuditRecord {
	target := method
	if app != "" {
		target = RolloutTarget(app)
	}
	return &cutoverv1.AuditRecord{
		Actor:   subject,
		Action:  ActionAuthDenied,
		Target:  target,
		App:     app,
		Cluster: strings.Join(clusters, ","),
		Reason:  fmt.Sprintf("%s refused: %s", method, why),
	}
}
