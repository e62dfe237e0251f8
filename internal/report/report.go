package report

import (
	"cmp"
	_ "embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

//go:embed report.html.tmpl
var pageText string

var page = template.Must(template.New("report").Parse(pageText))

// Meta says where a report comes from, for its footer.
type Meta struct {
	// Generator names the program and version, e.g. "cutover v1.4.0".
	Generator string
	// Server is the control plane the evidence was read from.
	Server string
}

// Write renders the report of one rollout as a single HTML document.
func Write(w io.Writer, resp *cutoverv1.GetRolloutReportResponse, meta Meta) error {
	if resp.GetRollout() == nil {
		return fmt.Errorf("report: the response holds no rollout")
	}
	if err := page.Execute(w, build(resp, meta)); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

// view is what the template shows, every value already formatted.
type view struct {
	App, Revision, From, Artifact, Strategy, Waves string
	Number                                         int64
	Phase, Message, Started, Ended, Duration       string
	AppliedBy, AppliedAt, Generated, Meta          string
	Timeline                                       []timelineRow
	Approvals                                      approvals
	Checks                                         []kv
	CheckRuns                                      []checkRunView
	Policy                                         string
	Window                                         optional
	Gates                                          []gateView
	Verification                                   *cutoverv1.AuditVerification
	Audit                                          []auditRow
	AuditTruncated                                 bool
	Points                                         []pointsView
}

type kv struct{ Key, Value string }

// optional is a section about data the control plane may not record:
// Known says whether it does (the field exists in this build's API).
type optional struct {
	Known bool
	Rows  [][]kv
}

type timelineRow struct{ Time, Event, Where, Actor, Message string }

// approvals is what the rollout required and who approved or rejected it.
type approvals struct {
	Required []kv
	Given    []approvalRow
	Rejected []timelineRow
}

type approvalRow struct{ Time, Actor, Roles, What, Comment string }

type gateView struct {
	Name, Test string
	Definition []kv
	Series     []seriesView
}

type seriesView struct {
	Cluster, Summary string
	Chart            template.HTML
	Failures         []pointRow
}

type pointRow struct {
	Time, Verdict, Canary, Stable, Threshold, Requests, Evidence string
	Evaluations, Failed                                          int32
	Fail                                                         bool
}

type pointsView struct {
	Title  string
	Points []pointRow
}

type auditRow struct{ Seq, Time, Actor, Action, Target, Change, Reason, Hash string }

func build(resp *cutoverv1.GetRolloutReportResponse, meta Meta) view {
	r := resp.GetRollout()
	st := r.GetStatus()
	v := view{
		App:            r.GetName(),
		Number:         st.GetRolloutNumber(),
		Revision:       r.GetSpec().GetRevision().GetName(),
		From:           fromRevisions(r),
		Artifact:       artifact(r.GetSpec().GetRevision()),
		Strategy:       strategy(r.GetSpec().GetStrategy()),
		Waves:          waves(r.GetSpec().GetTargets()),
		Phase:          enumWord(st.GetPhase()),
		Message:        strings.TrimPrefix(st.GetMessage(), enumWord(st.GetPhase())+": "),
		Started:        when(st.GetStartTime()),
		Ended:          when(st.GetEndTime()),
		Duration:       duration(st),
		AppliedBy:      orNone(r.GetAppliedBy()),
		AppliedAt:      when(r.GetUpdateTime()),
		Generated:      when(resp.GetGenerateTime()),
		Meta:           footer(meta),
		Approvals:      approvalsOf(r),
		Checks:         checks(r),
		CheckRuns:      checkRuns(r),
		Policy:         r.GetSpec().GetPolicy(),
		Window:         single(r.GetSpec(), "window"),
		Verification:   resp.GetAuditVerification(),
		Audit:          audit(resp.GetAuditRecords()),
		AuditTruncated: resp.GetAuditTruncated(),
	}
	if st.GetEndTime() == nil {
		v.Ended = "not ended (" + enumWord(st.GetPhase()) + " when the report was made)"
	}
	for _, e := range st.GetTimeline() {
		v.Timeline = append(v.Timeline, timelineRow{Time: when(e.GetTime()), Event: enumWord(e.GetType()),
			Where: where(r, e), Actor: actor(e.GetActor()), Message: e.GetMessage()})
	}
	v.Gates, v.Points = gates(r, resp.GetEvaluations())
	return v
}

// gates is one view per gate of the spec (and any series recorded for a
// gate the spec no longer has), with a chart per cluster, and the
// appendix of every point.
func gates(r *cutoverv1.Rollout, evals *cutoverv1.RolloutEvaluations) ([]gateView, []pointsView) {
	var out []gateView
	var appendix []pointsView
	byGate := map[int][]*cutoverv1.GateEvaluationSeries{}
	for _, s := range evals.GetSeries() {
		byGate[int(s.GetGateIndex())] = append(byGate[int(s.GetGateIndex())], s)
	}
	specGates := r.GetSpec().GetGates()
	indexes := make([]int, 0, len(specGates)+len(byGate))
	for i := range specGates {
		indexes = append(indexes, i)
	}
	for i := range byGate {
		if i >= len(specGates) {
			indexes = append(indexes, i)
		}
	}
	slices.Sort(indexes)
	n := 0
	for _, i := range indexes {
		var gv gateView
		if i < len(specGates) {
			g := specGates[i]
			gv = gateView{Name: g.GetName(), Test: describe(g), Definition: definition(g)}
		} else {
			s := byGate[i][0]
			gv = gateView{Name: s.GetGate(), Test: s.GetCondition()}
		}
		series := byGate[i]
		slices.SortFunc(series, func(a, b *cutoverv1.GateEvaluationSeries) int { return cmp.Compare(a.GetCluster(), b.GetCluster()) })
		for _, s := range series {
			n++
			c := chart{id: "chart-" + strconv.Itoa(n), gate: gv.Name, cluster: s.GetCluster(), metric: s.GetMetric(),
				title: fmt.Sprintf("Gate %s (%s) in %s: canary and stable over time", gv.Name, gv.Test, s.GetCluster()), points: s.GetPoints()}
			sv := seriesView{Cluster: s.GetCluster(), Summary: summary(s), Chart: template.HTML(c.svg())} // chart.svg escapes every text
			all := make([]pointRow, 0, len(s.GetPoints()))
			for _, p := range s.GetPoints() {
				row := point(p, unitOf(s.GetMetric()))
				all = append(all, row)
				if row.Fail {
					sv.Failures = append(sv.Failures, row)
				}
			}
			gv.Series = append(gv.Series, sv)
			appendix = append(appendix, pointsView{Title: fmt.Sprintf("Gate %s in %s (one point per %s at most)", gv.Name, s.GetCluster(),
				time.Duration(max(s.GetResolutionSeconds(), 1))*time.Second), Points: all})
		}
		out = append(out, gv)
	}
	return out, appendix
}

// summary counts a series' evaluations by verdict, e.g. "48 evaluations:
// 40 passed, 5 failed, 3 inconclusive; 6 points, at most one per 1s;
// first failure at ...".
func summary(s *cutoverv1.GateEvaluationSeries) string {
	var total, failed, inconclusive int64
	var first *cutoverv1.GateEvaluation
	for _, p := range s.GetPoints() {
		total += int64(p.GetEvaluations())
		failed += int64(p.GetFailed())
		inconclusive += int64(p.GetInconclusive())
		if first == nil && p.GetFailed() > 0 {
			first = p
		}
	}
	out := fmt.Sprintf("%d evaluations: %d passed, %d failed, %d inconclusive; %d points, at most one per %s",
		total, total-failed-inconclusive, failed, inconclusive, len(s.GetPoints()), time.Duration(max(s.GetResolutionSeconds(), 1))*time.Second)
	if first != nil {
		return out + "; first failure at " + when(first.GetTime())
	}
	return out + "; no failure"
}

func point(p *cutoverv1.GateEvaluation, u unit) pointRow {
	row := pointRow{Time: when(p.GetTime()), Verdict: enumWord(p.GetVerdict()), Canary: u.format(p.GetCanary()), Stable: u.format(p.GetStable()),
		Threshold: "-", Requests: fmt.Sprintf("%d / %d", p.GetCanaryRequests(), p.GetStableRequests()),
		Evaluations: p.GetEvaluations(), Failed: p.GetFailed(), Evidence: p.GetEvidence(),
		Fail: p.GetVerdict() == cutoverv1.GateVerdict_GATE_VERDICT_FAIL}
	if p.Threshold != nil {
		row.Threshold = u.format(p.GetThreshold())
	}
	return row
}

// describe is a gate's test, e.g. "errorRate <= 0.01".
func describe(g *cutoverv1.Gate) string {
	if j := g.GetJudge(); j != nil {
		return fmt.Sprintf("latency judge (Mann-Whitney U) at %g confidence, min effect %g", j.GetConfidence(), j.GetMinEffect())
	}
	return g.GetMetric() + " " + g.GetCondition()
}

func definition(g *cutoverv1.Gate) []kv {
	return []kv{
		{"Metric", g.GetMetric()},
		{"Condition", orNone(g.GetCondition())},
		{"Window", orDefault(g.GetWindow(), "1s")},
		{"Warm-up after a traffic shift", orDefault(g.GetWarmup(), "none")},
		{"Minimum requests", strconv.FormatInt(g.GetMinSamples(), 10)},
		{"Consecutive failures before acting", strconv.Itoa(int(g.GetFailureLimit()))},
		{"Severity", orDefault(g.GetSeverity(), "critical") + severityEffect(g.GetSeverity())},
	}
}

func severityEffect(s string) string {
	if s == "warning" {
		return " (pauses the rollout)"
	}
	return " (aborts the rollout)"
}

// approvalsOf lists the approvals the rollout required (before its first
// step, at approval steps, for a break-glass) and those it got.
func approvalsOf(r *cutoverv1.Rollout) approvals {
	var out approvals
	sp := r.GetSpec()
	if a := sp.GetApproval(); a != nil {
		out.Required = append(out.Required, kv{"Before the first step", approvalNeed(a)})
	}
	for i, s := range sp.GetStrategy().GetCanary().GetSteps() {
		if a := s.GetApproval(); a != nil {
			out.Required = append(out.Required, kv{fmt.Sprintf("Step %d", i+1), approvalNeed(a)})
		}
	}
	if sp.GetUrgency() != "" {
		out.Required = append(out.Required, kv{"Urgency", sp.GetUrgency()})
	}
	if sp.GetBreakGlassReason() != "" {
		out.Required = append(out.Required, kv{"Break-glass reason", sp.GetBreakGlassReason()})
	}
	for _, a := range r.GetStatus().GetApprovals() {
		out.Given = append(out.Given, approvalRow{Time: when(a.GetTime()), Actor: a.GetActor(), Roles: orNone(strings.Join(a.GetRoles(), ", ")),
			What: a.GetGate(), Comment: orNone(a.GetComment())})
	}
	for _, e := range r.GetStatus().GetTimeline() {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_REJECTED {
			out.Rejected = append(out.Rejected, timelineRow{Time: when(e.GetTime()), Actor: actor(e.GetActor()), Message: e.GetMessage()})
		}
	}
	return out
}

func approvalNeed(a *cutoverv1.ApprovalStep) string {
	out := fmt.Sprintf("%d distinct approval(s), never by whoever applied the rollout", max(a.GetRequired(), 1))
	if len(a.GetRoles()) > 0 {
		out += ", by roles " + strings.Join(a.GetRoles(), ", ")
	}
	if a.GetTimeout() != "" {
		out += ", within " + a.GetTimeout()
	}
	return out
}

// checkRunView is one pre-flight or hook run with its results.
type checkRunView struct {
	Title, Started, Ended string
	Passed                bool
	Results               []checkResultRow
}

type checkResultRow struct {
	Name, Kind, Cluster, Message, Output, Duration string
	Passed                                         bool
	Attempts                                       int32
}

// checkRuns lists what the pre-flight and the hooks found, run by run.
func checkRuns(r *cutoverv1.Rollout) []checkRunView {
	var out []checkRunView
	waves := r.GetSpec().GetTargets().GetWaves()
	for _, run := range r.GetStatus().GetChecks() {
		title := rollout.CheckPhaseName(run.GetPhase())
		switch run.GetPhase() {
		case rollout.CheckPreTrafficShift, rollout.CheckPostPromotion:
			if int(run.GetWave()) < len(waves) {
				title += ", wave " + waves[run.GetWave()].GetName()
			}
			if run.GetPhase() == rollout.CheckPreTrafficShift {
				title += fmt.Sprintf(", before step %d", run.GetStep()+1)
			}
		}
		v := checkRunView{Title: title, Started: when(run.GetStartTime()), Ended: when(run.GetEndTime()), Passed: run.GetEndTime() != nil}
		if run.GetEndTime() == nil {
			v.Ended = "still running when the report was made"
		}
		for _, c := range run.GetResults() {
			v.Passed = v.Passed && c.GetPassed()
			v.Results = append(v.Results, checkResultRow{
				Name: c.GetName(), Kind: c.GetKind(), Cluster: orNone(c.GetCluster()), Message: c.GetMessage(),
				Output: c.GetOutput(), Duration: (time.Duration(c.GetDurationMillis()) * time.Millisecond).String(),
				Passed: c.GetPassed(), Attempts: c.GetAttempts(),
			})
		}
		out = append(out, v)
	}
	return out
}

// checks lists the checks the rollout has: a blue-green's smoke checks
// and pre-promotion analysis, with what each cluster reported.
func checks(r *cutoverv1.Rollout) []kv {
	bg := r.GetSpec().GetStrategy().GetBlueGreen()
	var out []kv
	for _, c := range bg.GetSmokeChecks() {
		want := "any 2xx"
		if c.GetExpectStatus() != 0 {
			want = strconv.Itoa(int(c.GetExpectStatus()))
		}
		out = append(out, kv{"Smoke check " + c.GetName(), fmt.Sprintf("GET %s, expecting %s", c.GetUrl(), want)})
	}
	if a := bg.GetPrePromotionAnalysis(); a != nil {
		out = append(out, kv{"Pre-promotion analysis", "the gates over " + a.GetWindow()})
	}
	if len(out) == 0 {
		return nil
	}
	for _, cp := range r.GetStatus().GetClusters() {
		for _, o := range cp.GetObservedRevisions() {
			if o.GetSmoke() != "" {
				out = append(out, kv{"Smoke checks in " + cp.GetCluster(), o.GetSmoke() + " (revision " + o.GetRevision() + ")"})
			}
		}
	}
	return out
}

// single renders a message field of m found by name (one row when it is
// set), so that a report shows what the control plane records about
// deployment windows without depending on the field's shape.
func single(m proto.Message, field string) optional {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(field))
	if fd == nil || fd.IsList() || fd.Message() == nil {
		return optional{}
	}
	out := optional{Known: true}
	if m.ProtoReflect().Has(fd) {
		out.Rows = append(out.Rows, fields(m.ProtoReflect().Get(fd).Message()))
	}
	return out
}

// fields are a message's set fields, in their JSON form.
func fields(m protoreflect.Message) []kv {
	var out []kv
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		out = append(out, kv{fd.JSONName(), value(fd, v)})
		return true
	})
	slices.SortFunc(out, func(a, b kv) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

func value(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case fd.IsList():
		l := v.List()
		parts := make([]string, 0, l.Len())
		for i := range l.Len() {
			parts = append(parts, element(fd, l.Get(i)))
		}
		return strings.Join(parts, "; ")
	case fd.IsMap():
		var parts []string
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			parts = append(parts, k.String()+"="+element(fd.MapValue(), mv))
			return true
		})
		slices.Sort(parts)
		return strings.Join(parts, ", ")
	}
	return element(fd, v)
}

// element is one value of a field: a time, an enum in words, a message
// as JSON, or a scalar.
func element(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case fd.Message() != nil:
		if ts, ok := v.Message().Interface().(*timestamppb.Timestamp); ok {
			return when(ts)
		}
		b, err := protojson.Marshal(v.Message().Interface())
		if err != nil {
			return "(unreadable)"
		}
		return string(b)
	case fd.Enum() != nil:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return enumWordName(string(ev.Name()), string(fd.Enum().Name()))
		}
	}
	return v.String()
}

func audit(recs []*cutoverv1.AuditRecord) []auditRow {
	out := make([]auditRow, 0, len(recs))
	for _, r := range recs {
		target := r.GetTarget()
		if r.GetCluster() != "" {
			target += " (" + r.GetCluster() + ")"
		}
		h := hex.EncodeToString(r.GetHash())
		if len(h) > 16 {
			h = h[:16] + "…"
		}
		out = append(out, auditRow{Seq: strconv.FormatUint(r.GetSeq(), 10), Time: when(r.GetTime()), Actor: r.GetActor(),
			Action: r.GetAction(), Target: orNone(target), Change: change(r), Reason: orNone(r.GetReason()), Hash: h})
	}
	return out
}

func change(r *cutoverv1.AuditRecord) string {
	switch {
	case r.GetBefore() == "" && r.GetAfter() == "":
		return "-"
	case r.GetBefore() == "":
		return "→ " + r.GetAfter()
	case r.GetAfter() == "":
		return r.GetBefore() + " →"
	}
	return r.GetBefore() + " → " + r.GetAfter()
}

// fromRevisions is what the clusters served before: one name, or each
// cluster's when they differ.
func fromRevisions(r *cutoverv1.Rollout) string {
	var names []string
	per := map[string][]string{}
	for _, cp := range r.GetStatus().GetClusters() {
		n := cp.GetStableRevision().GetName()
		if n == "" {
			n = "nothing (first deploy)"
		}
		if _, ok := per[n]; !ok {
			names = append(names, n)
		}
		per[n] = append(per[n], cp.GetCluster())
	}
	switch len(names) {
	case 0:
		return "-"
	case 1:
		return names[0]
	}
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+" in "+strings.Join(per[n], ", "))
	}
	return strings.Join(parts, "; ")
}

func artifact(rev *cutoverv1.Revision) string {
	if rev.GetImage() != "" {
		return "image " + rev.GetImage()
	}
	if rev.GetCommand() != "" {
		return strings.TrimSpace("command " + rev.GetCommand() + " " + strings.Join(rev.GetArgs(), " "))
	}
	return "-"
}

func strategy(s *cutoverv1.Strategy) string {
	switch {
	case s.GetCanary() != nil:
		steps := make([]string, 0, len(s.GetCanary().GetSteps()))
		for _, st := range s.GetCanary().GetSteps() {
			steps = append(steps, step(st))
		}
		return "canary: " + strings.Join(steps, " → ")
	case s.GetBlueGreen() != nil:
		bg := s.GetBlueGreen()
		out := "blue-green"
		if bg.GetAutoPromotionSeconds() > 0 {
			out += fmt.Sprintf(", switching %ds after the preview is ready", bg.GetAutoPromotionSeconds())
		} else {
			out += ", switching on promote"
		}
		return out
	case s.GetRolling() != nil:
		return "rolling, batches of " + orDefault(s.GetRolling().GetBatchSize(), "1")
	case s.GetShadow() != nil:
		return fmt.Sprintf("shadow, mirroring %d%% of requests", s.GetShadow().GetMirrorPercent())
	}
	return "-"
}

// step is one canary step in a few words; a kind of step this renderer
// does not know is named by its field.
func step(s *cutoverv1.CanaryStep) string {
	switch x := s.GetStep().(type) {
	case *cutoverv1.CanaryStep_SetWeight:
		return fmt.Sprintf("setWeight %d%%", x.SetWeight)
	case *cutoverv1.CanaryStep_Pause:
		if d := x.Pause.GetDuration(); d != "" {
			return "pause " + d
		}
		return "pause until promoted"
	case *cutoverv1.CanaryStep_SetHeaderRoute:
		return fmt.Sprintf("header route %s: %s", x.SetHeaderRoute.GetHeader(), x.SetHeaderRoute.GetValue())
	case *cutoverv1.CanaryStep_SetCanaryScale:
		return fmt.Sprintf("setCanaryScale %d", x.SetCanaryScale.GetInstances())
	case *cutoverv1.CanaryStep_Analysis:
		return "analysis over " + x.Analysis.GetWindow()
	case *cutoverv1.CanaryStep_Approval:
		return fmt.Sprintf("approval by %d", max(x.Approval.GetRequired(), 1))
	case *cutoverv1.CanaryStep_Shadow:
		if d := x.Shadow.GetDuration(); d != "" {
			return fmt.Sprintf("shadow %d%% for %s", x.Shadow.GetMirrorPercent(), d)
		}
		return fmt.Sprintf("shadow %d%% until promoted", x.Shadow.GetMirrorPercent())
	}
	m := s.ProtoReflect()
	if od := m.Descriptor().Oneofs().ByName("step"); od != nil {
		if fd := m.WhichOneof(od); fd != nil {
			return fd.JSONName()
		}
	}
	return "-"
}

func waves(t *cutoverv1.Targets) string {
	parts := make([]string, 0, len(t.GetWaves()))
	for _, w := range t.GetWaves() {
		parts = append(parts, fmt.Sprintf("%s (%s)", w.GetName(), strings.Join(w.GetClusters(), ", ")))
	}
	return strings.Join(parts, " → ")
}

// where is the wave and step a timeline event concerns.
func where(r *cutoverv1.Rollout, e *cutoverv1.TimelineEvent) string {
	ws := r.GetSpec().GetTargets().GetWaves()
	if int(e.GetWave()) >= len(ws) {
		return "-"
	}
	out := ws[e.GetWave()].GetName()
	if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED {
		out += fmt.Sprintf(", step %d", e.GetStep()+1)
	}
	return out
}

func actor(a string) string {
	if a == "" {
		return "cutover (engine)"
	}
	return a
}

func duration(st *cutoverv1.RolloutStatus) string {
	if st.GetStartTime() == nil || st.GetEndTime() == nil {
		return "-"
	}
	return st.GetEndTime().AsTime().Sub(st.GetStartTime().AsTime()).Round(100 * time.Millisecond).String()
}

func footer(m Meta) string {
	out := "Generated by " + orDefault(m.Generator, "cutover")
	if m.Server != "" {
		out += " from the control plane at " + m.Server
	}
	return out
}

// when is a UTC time to the millisecond; "-" for none.
func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05.000Z")
}

// enumWord is an enum value in words: TIMELINE_EVENT_TYPE_STEP_COMPLETED
// becomes "step completed".
func enumWord(e interface {
	String() string
	Descriptor() protoreflect.EnumDescriptor
}) string {
	return enumWordName(e.String(), string(e.Descriptor().Name()))
}

// enumWordName strips the enum's prefix (its type name in upper snake
// case) from a value's name and lowers it.
func enumWordName(value, enum string) string {
	var prefix strings.Builder
	for i, r := range enum {
		if i > 0 && r >= 'A' && r <= 'Z' {
			prefix.WriteByte('_')
		}
		prefix.WriteRune(r)
	}
	v := strings.TrimPrefix(value, strings.ToUpper(prefix.String())+"_")
	return strings.ToLower(strings.ReplaceAll(v, "_", " "))
}

func orNone(s string) string { return orDefault(s, "-") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
