package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// writeRolloutDetail writes the human view of one rollout: a summary, then
// its clusters grouped by wave.
func writeRolloutDetail(w io.Writer, r *cutoverv1.Rollout, now time.Time) error {
	if err := writeSummary(w, r, now); err != nil {
		return err
	}
	if err := writeWaves(w, waveGroups(r)); err != nil {
		return err
	}
	return writeChecks(w, r)
}

// writeChecks lists the pre-flight and hook runs: one line per run, and
// one per failed result under it.
func writeChecks(w io.Writer, r *cutoverv1.Rollout) error {
	runs := r.GetStatus().GetChecks()
	if len(runs) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\nChecks\n")
	for _, run := range runs {
		state := "running"
		if run.GetEndTime() != nil {
			state = "passed"
		}
		var failed []*cutoverv1.CheckResult
		for _, c := range run.GetResults() {
			if !c.GetPassed() {
				failed = append(failed, c)
				state = "failed"
			}
		}
		fmt.Fprintf(&b, "  %-40s %-7s %d %s\n", run.GetId(), state, len(run.GetResults()), plural(len(run.GetResults()), "result", "results"))
		for _, c := range failed {
			where := ""
			if c.GetCluster() != "" {
				where = " in " + c.GetCluster()
			}
			fmt.Fprintf(&b, "    %s%s: %s\n", c.GetName(), where, c.GetMessage())
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func writeSummary(w io.Writer, r *cutoverv1.Rollout, now time.Time) error {
	st := r.GetStatus()
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", r.GetName())
	fmt.Fprintf(tw, "Revision:\t%s\n", orNone(r.GetSpec().GetRevision().GetName()))
	if p := r.GetSpec().GetPolicy(); p != "" {
		fmt.Fprintf(tw, "Policy:\t%s\n", p)
	}
	fmt.Fprintf(tw, "Phase:\t%s\n", phaseLabel(st))
	fmt.Fprintf(tw, "Message:\t%s\n", orNone(st.GetMessage()))
	fmt.Fprintf(tw, "Wave:\t%s\n", waveLabel(r))
	fmt.Fprintf(tw, "Step:\t%s\n", stepDetail(r, now))
	fmt.Fprintf(tw, "Started:\t%s\n", ago(st.GetStartTime(), now))
	if st.GetEndTime() != nil {
		fmt.Fprintf(tw, "Ended:\t%s\n", ago(st.GetEndTime(), now))
	}
	return tw.Flush()
}

// phaseLabel is the phase, with the pause reason when paused.
func phaseLabel(st *cutoverv1.RolloutStatus) string {
	phase := enumWord(st.GetPhase())
	if st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED &&
		st.GetPauseReason() != cutoverv1.PauseReason_PAUSE_REASON_UNSPECIFIED {
		phase += " (" + enumWord(st.GetPauseReason()) + ")"
	}
	return phase
}

// waveLabel is "i/n (name)" for the wave in progress; once every wave is
// done it stays on the last one.
func waveLabel(r *cutoverv1.Rollout) string {
	waves := r.GetSpec().GetTargets().GetWaves()
	if len(waves) == 0 {
		return none
	}
	i := min(max(0, int(r.GetStatus().GetCurrentWave())), len(waves)-1)
	label := fmt.Sprintf("%d/%d", i+1, len(waves))
	if name := waves[i].GetName(); name != "" {
		label += " (" + name + ")"
	}
	return label
}

// stepLabel is "i/n" for the step in progress, or "promote" once the steps
// are done and the wave is being promoted.
func stepLabel(r *cutoverv1.Rollout) string {
	steps := rollout.Steps(r.GetSpec())
	i := int(r.GetStatus().GetCurrentStep())
	if i >= len(steps) {
		return "promote"
	}
	return fmt.Sprintf("%d/%d", i+1, len(steps))
}

// stepDetail adds what the current step does and, while the rollout is
// live, how long it has been running.
func stepDetail(r *cutoverv1.Rollout, now time.Time) string {
	steps := rollout.Steps(r.GetSpec())
	st := r.GetStatus()
	label := stepLabel(r)
	if i := int(st.GetCurrentStep()); i >= 0 && i < len(steps) {
		action := rollout.DescribeStep(steps[i])
		if r.GetSpec().GetStrategy().GetBlueGreen() != nil {
			switch {
			case steps[i].GetSetWeight() == 0 && steps[i].GetPause() == nil && steps[i].GetAnalysis() == nil:
				action = "preview"
			case steps[i].GetAnalysis() != nil:
				action = "pre-promotion " + action
			case steps[i].GetPause().GetDuration() != "":
				action = "switch after " + steps[i].GetPause().GetDuration()
			default:
				action = "switch on promote"
			}
		}
		label += " " + action
	}
	if !terminal(st.GetPhase()) && st.GetStepStartTime() != nil {
		label += ", started " + ago(st.GetStepStartTime(), now)
	}
	return label
}

func terminal(p cutoverv1.RolloutPhase) bool {
	switch p {
	case cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY, cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED,
		cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED:
		return true
	}
	return false
}

// ago is age with " ago", or none when ts is unset.
func ago(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return none
	}
	return age(ts, now) + " ago"
}

// waveGroup is one wave's heading and its cluster rows (tab-separated cells).
type waveGroup struct {
	heading string
	rows    []string
}

// waveGroups groups status.clusters by wave, in wave order. A cluster whose
// wave index is beyond the spec's waves still gets a group, so no cluster
// is ever hidden.
func waveGroups(r *cutoverv1.Rollout) []waveGroup {
	clusters := r.GetStatus().GetClusters()
	n := len(r.GetSpec().GetTargets().GetWaves())
	for _, c := range clusters {
		n = max(n, int(c.GetWave())+1)
	}
	groups := make([]waveGroup, n)
	for i := range groups {
		groups[i].heading = waveHeading(r, i, n)
	}
	for _, c := range clusters {
		g := &groups[max(0, int(c.GetWave()))]
		g.rows = append(g.rows, clusterRow(c))
	}
	return groups
}

func waveHeading(r *cutoverv1.Rollout, i, n int) string {
	h := fmt.Sprintf("Wave %d/%d", i+1, n)
	if waves := r.GetSpec().GetTargets().GetWaves(); i < len(waves) && waves[i].GetName() != "" {
		h += ": " + waves[i].GetName()
	}
	return h + " (" + waveState(r.GetStatus(), i) + ")"
}

// waveState is done, current or pending; in an aborted rollout the waves it
// reached are aborted instead.
func waveState(st *cutoverv1.RolloutStatus, i int) string {
	cur := int(st.GetCurrentWave())
	switch {
	case st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY:
		return "done"
	case st.GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED && i <= cur:
		return "aborted"
	case i < cur:
		return "done"
	case i == cur:
		return "current"
	}
	return "pending"
}

const clusterHeader = "CLUSTER\tPHASE\tCANARY\tSTABLE\tREVISIONS\tCONVERGED"

func clusterRow(c *cutoverv1.ClusterProgress) string {
	return strings.Join([]string{
		c.GetCluster(),
		enumWord(c.GetPhase()),
		fmt.Sprintf("%d%%", c.GetCanaryWeight()),
		orNone(c.GetStableRevision().GetName()),
		observedLabel(c.GetObservedRevisions()),
		convergedLabel(c),
	}, "\t")
}

// convergedLabel is yes or no, with the agent's last problem when it has one.
func convergedLabel(c *cutoverv1.ClusterProgress) string {
	if e := c.GetAgentError(); e != "" {
		return "no (agent: " + e + ")"
	}
	return yesNo(c.GetConverged())
}

// observedLabel lists what the agent reported per revision, e.g.
// "v1 2/2 ready 90%, v2 1/1 ready 10%".
func observedLabel(revs []*cutoverv1.ObservedRevision) string {
	if len(revs) == 0 {
		return none
	}
	parts := make([]string, len(revs))
	for i, o := range revs {
		parts[i] = fmt.Sprintf("%s %d/%d ready %d%%",
			orNone(o.GetRevision()), o.GetInstancesReady(), o.GetInstancesWanted(), o.GetWeight())
		if o.GetTrack() == cutoverv1.Track_TRACK_SHADOW {
			var errs int64
			for code, n := range o.GetStatusCodes() {
				if code == 0 || code >= 500 {
					errs += n
				}
			}
			parts[i] += fmt.Sprintf(" (shadow: %d copies, %d errors, p99 %dµs)", o.GetRequests(), errs, o.GetLatencyP99Micros())
		}
		if n := o.GetInstancesFailed(); n > 0 {
			parts[i] += fmt.Sprintf(" (%d failed)", n)
		}
	}
	return strings.Join(parts, ", ")
}

// writeWaves writes each wave's heading and cluster table. All tables are
// aligned together so the columns line up from one wave to the next.
func writeWaves(w io.Writer, groups []waveGroup) error {
	var rows []string
	for _, g := range groups {
		if len(g.rows) > 0 {
			rows = append(append(rows, clusterHeader), g.rows...)
		}
	}
	lines, err := tableLines(rows)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "\n%s\n", g.heading)
		if len(g.rows) == 0 {
			b.WriteString("  no clusters\n")
			continue
		}
		for _, l := range lines[:len(g.rows)+1] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		lines = lines[len(g.rows)+1:]
	}
	_, err = io.WriteString(w, b.String())
	return err
}
