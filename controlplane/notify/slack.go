package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/internal/audit"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// slackMessage is an incoming-webhook message: text is what every
// Slack-compatible receiver shows (and Slack's notification preview);
// blocks lay the same facts out as fields in Slack.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks,omitempty"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// maxReason keeps a long reason from filling a channel (Slack also caps a
// section's text at 3000 characters).
const maxReason = 500

// headlines says what happened, for people, per action.
var headlines = map[string]string{
	audit.ActionApply:           "🚀 Rollout started",
	audit.ActionUndo:            "↩️ Undo started",
	audit.ActionRetry:           "🔁 Rollout retried",
	audit.ActionHealthy:         "✅ Rollout successful",
	audit.ActionFailed:          "❌ Rollout failed",
	audit.ActionAbort:           "🛑 Rollout aborted",
	audit.ActionSuperseded:      "⏭️ Rollout superseded",
	audit.ActionPromote:         "⏩ Rollout promoted",
	audit.ActionPause:           "⏸️ Rollout paused",
	audit.ActionResume:          "▶️ Rollout resumed",
	audit.ActionWaveStarted:     "🌊 Wave started",
	audit.ActionWavePromoted:    "🌊 Wave promoted",
	audit.ActionStepCompleted:   "➡️ Step completed",
	audit.ActionGateTripped:     "🚨 Gate tripped",
	audit.ActionAgentConnect:    "🔌 Agent connected",
	audit.ActionAgentDisconnect: "⚠️ Agent disconnected",
	audit.ActionAuthDenied:      "🔒 Request refused",
	"window.wait":               "⏳ Waiting for the deployment window",
	"window.open":               "🟢 Deployment window open",
	"approval.approve":          "👍 Rollout approved",
	"approval.reject":           "👎 Rollout rejected",
	audit.ActionChecksPassed:    "🧪 Checks passed",
	audit.ActionChecksFailed:    "🧯 Checks failed",
}

// slackBody encodes r for a Slack-compatible sink, e.g.
//
//	✅ Rollout successful: demo
//	State: progressing v2 wave 2 step 2 → healthy v2
//	By: cutover
//	Reason: all waves promoted
//	`rollout.healthy` · 2025-03-14T09:26:53Z · audit record 42
func slackBody(r *cutoverv1.AuditRecord) ([]byte, error) {
	headline, ok := headlines[r.GetAction()]
	if !ok {
		headline = "ℹ️ " + r.GetAction()
	}
	subject := r.GetApp()
	if subject == "" {
		subject = r.GetTarget()
	}
	title := fmt.Sprintf("%s: %s", headline, subject)
	state := r.GetAfter()
	if r.GetBefore() != "" {
		state = r.GetBefore() + " → " + r.GetAfter()
	}
	reason := r.GetReason()
	if len([]rune(reason)) > maxReason {
		reason = string([]rune(reason)[:maxReason]) + "…"
	}

	type fact struct{ label, value string }
	facts := []fact{{"Application", r.GetApp()}, {"State", state}, {"By", r.GetActor()}, {"Cluster", r.GetCluster()}, {"Reason", reason}}
	lines := []string{"*" + esc(title) + "*"}
	var fields []slackText
	for _, f := range facts {
		if f.value == "" || (f.label == "Application" && f.value == subject) {
			continue
		}
		lines = append(lines, fmt.Sprintf("*%s:* %s", f.label, esc(f.value)))
		if f.label != "Reason" {
			fields = append(fields, slackText{Type: "mrkdwn", Text: fmt.Sprintf("*%s*\n%s", f.label, esc(f.value))})
		}
	}
	footer := fmt.Sprintf("`%s` · %s · audit record %d", esc(r.GetAction()), r.GetTime().AsTime().UTC().Format(time.RFC3339), r.GetSeq())
	msg := slackMessage{Text: strings.Join(append(lines, footer), "\n")}
	msg.Blocks = append(msg.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: "*" + esc(title) + "*"}, Fields: fields})
	if reason != "" {
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: esc(reason)}})
	}
	msg.Blocks = append(msg.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: footer}}})
	return json.Marshal(msg)
}

// esc escapes what Slack's mrkdwn reads as markup (links, mentions).
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
