package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

// aborted is rollout 2 of web, v1 -> v2 in two waves, aborted by its
// errors gate in eu-1.
func aborted() *cutoverv1.GetRolloutReportResponse {
	canary := &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{Steps: []*cutoverv1.CanaryStep{
		{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: 20}},
		{Step: &cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: "30s"}}},
	}}}}
	r := &cutoverv1.Rollout{
		Name:       "web",
		AppliedBy:  "alice",
		UpdateTime: ts(0),
		Spec: &cutoverv1.RolloutSpec{
			Revision: &cutoverv1.Revision{Name: "v2", Image: "registry.example/web:2.0"},
			Strategy: canary,
			Targets:  &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{Name: "canary-region", Clusters: []string{"eu-1"}}, {Name: "rest", Clusters: []string{"us-1"}}}},
			Approval: &cutoverv1.ApprovalStep{Required: 1, Roles: []string{"approver"}, Timeout: "4h"},
			Gates: []*cutoverv1.Gate{
				{Name: "errors", Metric: "errorRate", Condition: "<= 0.01", Window: "1s", MinSamples: 100, FailureLimit: 3, Severity: "critical"},
				{Name: "p99", Metric: "latencyP99", Condition: "<= 1.5x stable", MinSamples: 100, FailureLimit: 3},
			},
		},
		Status: &cutoverv1.RolloutStatus{
			Phase: cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED, RolloutNumber: 2, StartTime: ts(0), EndTime: ts(20 * time.Second),
			Message:   `aborted: gate errors failed in eu-1 <b>`,
			Approvals: []*cutoverv1.Approval{{Gate: "start", Actor: "bob", Roles: []string{"approver"}, Time: ts(-time.Minute), Comment: "change CHG-1234"}},
			Clusters: []*cutoverv1.ClusterProgress{
				{Cluster: "eu-1", StableRevision: &cutoverv1.Revision{Name: "v1"}},
				{Cluster: "us-1", StableRevision: &cutoverv1.Revision{Name: "v1"}},
			},
			Timeline: []*cutoverv1.TimelineEvent{
				{Time: ts(0), Type: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STARTED, Actor: "alice", Message: "apply v2"},
				{Time: ts(time.Second), Type: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED, Message: "setWeight 20"},
				{Time: ts(20 * time.Second), Type: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED, Actor: "gate errors", Message: "gate errors failed"},
			},
		},
	}
	return &cutoverv1.GetRolloutReportResponse{
		Rollout: r,
		Evaluations: &cutoverv1.RolloutEvaluations{Name: "web", RolloutNumber: 2, Series: []*cutoverv1.GateEvaluationSeries{
			{Cluster: "eu-1", GateIndex: 0, Gate: "errors", Metric: "errorRate", Condition: "errorRate <= 0.01", ResolutionSeconds: 1, Points: evaluations(15)},
			{Cluster: "eu-1", GateIndex: 1, Gate: "p99", Metric: "latencyP99", Condition: "latencyP99 <= 1.5x stable", ResolutionSeconds: 1, Points: evaluations(12)[:10]},
		}},
		AuditRecords: []*cutoverv1.AuditRecord{
			{Seq: 7, Time: ts(0), Actor: "alice", Action: "rollout.apply", Target: "rollout/web", App: "web", After: "progressing v2 wave 1 step 1", Hash: bytes.Repeat([]byte{0xab}, 32)},
			{Seq: 9, Time: ts(20 * time.Second), Actor: "cutover", Action: "gate.tripped", Target: "rollout/web", App: "web", Cluster: "eu-1", Reason: "gate errors failed"},
		},
		AuditVerification: &cutoverv1.AuditVerification{Ok: true, RecordsChecked: 9},
		GenerateTime:      ts(time.Minute),
	}
}

func render(t *testing.T, resp *cutoverv1.GetRolloutReportResponse) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, resp, Meta{Generator: "cutover test", Server: "127.0.0.1:7070"}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The report has every section, the facts of the rollout, one chart per
// cluster and gate, the failures, the audit records and the chain's
// verification, and refers to nothing outside itself.
func TestReportHasEverySection(t *testing.T) {
	doc := render(t, aborted())
	for _, want := range []string{
		`id="summary"`, `id="timeline"`, `id="approvals"`, `id="checks"`, `id="windows"`, `id="gates"`, `id="audit"`, `id="audit-verification"`, `id="appendix"`,
		`<td id="applied-by">alice</td>`, "v1 → v2", "image registry.example/web:2.0", "canary: setWeight 20% → pause 30s",
		"canary-region (eu-1) → rest (us-1)", "2027-05-03 09:30:20.000Z", "20s",
		"apply v2", "step completed", "canary-region, step 1", "cutover (engine)",
		"Gate errors: errorRate &lt;= 0.01", "Gate p99: latencyP99 &lt;= 1.5x stable", "Consecutive failures before acting",
		"150 evaluations: 145 passed, 5 failed, 0 inconclusive; 15 points, at most one per 1s", "first failure at 2027-05-03 09:30:10.000Z", "errorRate over threshold",
		"1 distinct approval(s), never by whoever applied the rollout, by roles approver, within 4h", "<td>bob</td><td>approver</td><td>start</td><td>change CHG-1234</td>",
		"Audit chain verified: ok.", "All 9 records", "gate.tripped", "rollout/web (eu-1)", "abababababababab…",
		"Generated by cutover test from the control plane at 127.0.0.1:7070",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(doc, `<svg class="chart"`); n != 2 {
		t.Errorf("%d charts, want 2 (one per cluster and gate)", n)
	}
	if !strings.Contains(doc, `<td id="phase">aborted: gate errors failed in eu-1 &lt;b&gt;</td>`) {
		t.Error("the outcome is not the phase with the status message, escaped")
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:|//)`).FindString(doc); m != "" || strings.Contains(doc, "<script") {
		t.Errorf("the report is not self-contained: %q", m)
	}
	if !strings.Contains(doc, `Content-Security-Policy" content="default-src 'none'`) {
		t.Error("no Content-Security-Policy")
	}
}

// A broken chain is stated, not hidden; a rollout without gates or
// evaluations says so in each section.
func TestReportStatesWhatIsMissing(t *testing.T) {
	resp := aborted()
	resp.AuditVerification = &cutoverv1.AuditVerification{RecordsChecked: 6, FirstBadSeq: 7, Problem: "hash does not match its content"}
	resp.Rollout.Spec.Gates = nil
	resp.Rollout.Spec.Approval = nil
	resp.Rollout.Status.Approvals = nil
	resp.Evaluations = nil
	resp.AuditRecords = nil
	doc := render(t, resp)
	for _, want := range []string{
		"Audit chain broken at record 7:", "hash does not match its content", "broken at record 7",
		"None recorded: this rollout had no gates.", "None recorded: no deployment window applied",
		"None required by the rollout's spec.",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(doc, "Audit chain verified") || strings.Contains(doc, `<svg class="chart"`) {
		t.Error("a broken chain or missing evaluations are reported as if fine")
	}
	// A gate that was never evaluated.
	resp = aborted()
	resp.Evaluations.Series = resp.Evaluations.Series[:1]
	if doc := render(t, resp); !strings.Contains(doc, "No evaluation recorded") {
		t.Error("a gate without evaluations is not said to have none")
	}
}

// Fields the renderer finds by name are shown when this build's API has
// them and set, and said to be unknown otherwise.
func TestOptionalSections(t *testing.T) {
	r := aborted().GetRollout()
	rev := single(r.GetSpec(), "revision")
	if !rev.Known || len(rev.Rows) != 1 || rev.Rows[0][0] != (kv{"image", "registry.example/web:2.0"}) {
		t.Errorf("revision by name = %v", rev)
	}
	if got := single(r.GetStatus(), "no_such_field"); got.Known || got.Rows != nil {
		t.Errorf("an unknown field = %v", got)
	}
	if got := single(&cutoverv1.RolloutSpec{}, "revision"); !got.Known || got.Rows != nil {
		t.Errorf("an unset field = %v", got)
	}
	if got := enumWord(cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_WAVE_PROMOTED); got != "wave promoted" {
		t.Errorf("enumWord = %q", got)
	}
}

// Every pre-flight check and hook result is in the report, failures
// marked, with its output escaped.
func TestReportListsChecksAndHooks(t *testing.T) {
	resp := aborted()
	resp.Rollout.Spec.Policy = "banking"
	resp.Rollout.Status.Checks = []*cutoverv1.CheckRun{
		{Id: "preflight", Phase: "preflight", StartTime: ts(0), EndTime: ts(time.Second), Results: []*cutoverv1.CheckResult{
			{Name: "agent connected", Kind: "builtin", Cluster: "eu-1", Passed: true, Message: "connected", Attempts: 1},
			{Name: "pinned", Kind: "builtin", Cluster: "eu-1", Passed: true, Message: "sha256 abc", DurationMillis: 12, Attempts: 1},
			{Name: "compliance-scan", Kind: "http", Passed: true, Message: "HTTP 200", Output: "no findings", Attempts: 2},
		}},
		{Id: "preTrafficShift wave 0 step 0", Phase: "preTrafficShift", Wave: 0, Step: 0, StartTime: ts(2 * time.Second), EndTime: ts(3 * time.Second),
			Results: []*cutoverv1.CheckResult{{Name: "smoke", Kind: "command", Cluster: "eu-1", Passed: false, Message: "exit code 3", Output: "curl: (22) <503>", Attempts: 1}}},
		{Id: "onAbort", Phase: "onAbort", StartTime: ts(20 * time.Second)},
	}
	html := render(t, resp)
	for _, want := range []string{
		"Release policy</th><td>banking",
		"pre-flight: <span class=\"ok\">passed</span>",
		"compliance-scan</td><td>http</td><td>-</td><td><span class=\"ok\">passed</span>: HTTP 200<pre class=\"output\">no findings</pre>",
		"pre-traffic-shift hooks, wave canary-region, before step 1: <span class=\"bad\">not passed</span>",
		`<tr class="fail"><td>smoke</td><td>command</td><td>eu-1</td><td><span class="bad">failed</span>: exit code 3<pre class="output">curl: (22) &lt;503&gt;</pre>`,
		"on-abort hooks: <span class=\"bad\">not passed</span>",
		"still running when the report was made",
		`<td class="num">12ms</td>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
