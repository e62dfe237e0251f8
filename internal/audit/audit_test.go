package audit_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/internal/audit"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

var t0 = time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)

type ev = cutoverv1.TimelineEventType

const (
	started   = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED
	wave      = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_STARTED
	step      = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED
	promoted  = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PROMOTED
	aborted   = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED
	failed    = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_FAILED
	paused    = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PAUSED
	healthy   = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_HEALTHY
	progress  = cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING
	abortedPh = cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
)

// web is rollout number n of app web at revision rev with the given
// timeline (actor "" for the engine).
func web(n int64, rev string, phase cutoverv1.RolloutPhase, events ...*cutoverv1.TimelineEvent) *cutoverv1.Rollout {
	return &cutoverv1.Rollout{
		Name: "web",
		Spec: &cutoverv1.RolloutSpec{Revision: &cutoverv1.Revision{Name: rev}},
		Status: &cutoverv1.RolloutStatus{
			Phase: phase, RolloutNumber: n, CurrentWave: 0, CurrentStep: 1, Timeline: events,
		},
	}
}

func event(i int, t ev, actor, msg string) *cutoverv1.TimelineEvent {
	return &cutoverv1.TimelineEvent{Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)), Type: t, Actor: actor, Message: msg}
}

// line renders a record's fields that Timeline sets.
func line(r *cutoverv1.AuditRecord) string {
	return strings.Join([]string{r.GetAction(), r.GetActor(), r.GetTarget(), r.GetApp(), r.GetCluster(),
		r.GetBefore(), r.GetAfter(), r.GetReason(), r.GetTime().AsTime().Format("05")}, "|")
}

func lines(rs []*cutoverv1.AuditRecord) string {
	var out []string
	for _, r := range rs {
		out = append(out, line(r))
	}
	return strings.Join(out, "\n")
}

func TestEveryTimelineEventHasAnAction(t *testing.T) {
	for v, name := range cutoverv1.TimelineEventType_name {
		if v == 0 {
			continue
		}
		after := web(1, "v1", progress, event(0, cutoverv1.TimelineEventType(v), "", "x"))
		recs := audit.Timeline(nil, after, audit.Cause{})
		if len(recs) != 1 {
			t.Fatalf("%s: %d records", name, len(recs))
		}
		a := recs[0].GetAction()
		if !strings.Contains(a, ".") || strings.Contains(a, "_") || strings.ToLower(a) != a {
			t.Errorf("%s maps to %q, want a dotted lower-case verb", name, a)
		}
	}
}

func TestTimeline(t *testing.T) {
	applied := event(0, started, "alice", "apply: revision v2")
	waveStarted := event(0, wave, "", "wave eu started")
	before := web(2, "v2", cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED, applied, waveStarted)
	after := proto.Clone(before).(*cutoverv1.Rollout)
	after.Status.Phase = progress
	after.Status.CurrentStep = 2
	after.Status.Timeline = append(after.Status.Timeline,
		event(5, promoted, "bob", "current step completed"), event(5, step, "", "pause"))
	previous := web(1, "v1", cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY)
	abortedByGate := proto.Clone(after).(*cutoverv1.Rollout)
	abortedByGate.Status.Phase = abortedPh
	abortedByGate.Status.Timeline = append(abortedByGate.Status.Timeline, event(7, aborted, "gate errors", "aborted: gate errors failed"))
	failedThenAborted := proto.Clone(after).(*cutoverv1.Rollout)
	failedThenAborted.Status.Phase = abortedPh
	failedThenAborted.Status.Timeline = append(failedThenAborted.Status.Timeline,
		event(9, failed, "", "progress deadline exceeded"), event(9, aborted, "", "aborted: progress deadline exceeded"))

	for _, tc := range []struct {
		name          string
		before, after *cutoverv1.Rollout
		cause         audit.Cause
		want          []string
	}{
		{
			name:   "an apply over an earlier rollout records every event of the new one",
			before: previous, after: before,
			want: []string{
				"rollout.apply|alice|rollout/web|web||healthy v1|paused v2 wave 1 step 2|apply: revision v2|00",
				"wave.started|cutover|rollout/web|web||healthy v1|paused v2 wave 1 step 2|wave eu started|00",
			},
		},
		{
			name:  "a first apply has nothing before",
			after: before,
			cause: audit.Cause{Event: started, Action: audit.ActionUndo},
			want: []string{
				"rollout.undo|alice|rollout/web|web|||paused v2 wave 1 step 2|apply: revision v2|00",
				"wave.started|cutover|rollout/web|web|||paused v2 wave 1 step 2|wave eu started|00",
			},
		},
		{
			name:   "a promote records only the new events",
			before: before, after: after,
			want: []string{
				"rollout.promote|bob|rollout/web|web||paused v2 wave 1 step 2|progressing v2 wave 1 step 3|current step completed|05",
				"step.completed|cutover|rollout/web|web||paused v2 wave 1 step 2|progressing v2 wave 1 step 3|pause|05",
			},
		},
		{
			name:   "a gate's abort is the engine's decision",
			before: after, after: abortedByGate,
			cause: audit.Cause{Event: aborted, Action: audit.ActionGateTripped, Actor: audit.ActorEngine, Cluster: "eu-1"},
			want: []string{
				"gate.tripped|cutover|rollout/web|web|eu-1|progressing v2 wave 1 step 3|aborted v2|aborted: gate errors failed|07",
			},
		},
		{
			name:   "a failure and the abort it causes",
			before: after, after: failedThenAborted,
			want: []string{
				"rollout.failed|cutover|rollout/web|web||progressing v2 wave 1 step 3|aborted v2|progress deadline exceeded|09",
				"rollout.abort|cutover|rollout/web|web||progressing v2 wave 1 step 3|aborted v2|aborted: progress deadline exceeded|09",
			},
		},
		{
			name:   "no change, no record",
			before: after, after: after,
		},
	} {
		got := lines(audit.Timeline(tc.before, tc.after, tc.cause))
		if want := strings.Join(tc.want, "\n"); got != want {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", tc.name, got, want)
		}
	}
}

func TestAgentAndDenied(t *testing.T) {
	for _, tc := range []struct {
		got  *cutoverv1.AuditRecord
		want string
	}{
		{audit.Agent("eu-1", true, "region eu-west"), "agent.connect|agent:eu-1|cluster/eu-1||eu-1|disconnected|connected|region eu-west|00"},
		{audit.Agent("eu-1", false, ""), "agent.disconnect|agent:eu-1|cluster/eu-1||eu-1|connected|disconnected||00"},
		{audit.Denied("mallory", "/cutover.v1.RolloutService/AbortRollout", "web", []string{"eu-1", "us-1"}, "role viewer may not deploy"),
			"auth.denied|mallory|rollout/web|web|eu-1,us-1|||/cutover.v1.RolloutService/AbortRollout refused: role viewer may not deploy|00"},
		{audit.Denied("mallory", "/cutover.v1.RolloutService/ListRollouts", "", nil, "no"),
			"auth.denied|mallory|/cutover.v1.RolloutService/ListRollouts|||||/cutover.v1.RolloutService/ListRollouts refused: no|00"},
	} {
		if got := line(tc.got); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
