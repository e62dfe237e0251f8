package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// errAborted and errFailed are what a watch ends with when the rollout is
// aborted or held after a failure, so a script waiting on
// `cutover get rollout NAME --watch` fails.
var (
	errAborted = errors.New("aborted")
	errFailed  = errors.New("failed")
)

// watch streams the rollout until it reaches a terminal phase. On a
// terminal it redraws a live view in place; elsewhere (pipes, CI logs) it
// prints one line per change. It returns nil when the rollout ends Healthy.
func (o *options) watch(ctx context.Context, name string) error {
	conn, err := o.dial()
	if err != nil {
		return fmt.Errorf("cannot reach control plane at %s: %w", o.server, err)
	}
	defer conn.Close()
	stream, err := cutoverv1.NewRolloutServiceClient(conn).WatchRollout(ctx, &cutoverv1.WatchRolloutRequest{Name: name})
	if err != nil {
		return o.explain(conn, err)
	}
	live := o.output == outputTable && isTerminal(o.streams.Out)
	var last string
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("watch ended before the rollout finished")
			}
			return o.explain(conn, err)
		}
		r := resp.GetRollout()
		if err := o.showWatched(r, live, &last); err != nil {
			return err
		}
		switch r.GetStatus().GetPhase() {
		case cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY:
			return nil
		case cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED:
			return fmt.Errorf("rollout %s %w: %s", name, errAborted, r.GetStatus().GetMessage())
		case cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED:
			// Held after a failure (failurePolicy hold): a script waiting on
			// the rollout must not wait forever for a person to decide.
			if r.GetStatus().GetPauseReason() == cutoverv1.PauseReason_PAUSE_REASON_FAILURE {
				return fmt.Errorf("rollout %s %w: %s", name, errFailed, r.GetStatus().GetMessage())
			}
		}
	}
}

func (o *options) showWatched(r *cutoverv1.Rollout, live bool, last *string) error {
	w := o.streams.Out
	switch {
	case o.output != outputTable:
		return writeMessage(w, o.output, r)
	case live:
		var b strings.Builder
		b.WriteString("\x1b[H\x1b[2J") // home, clear screen
		writeTree(&b, r, time.Now())
		_, err := io.WriteString(w, b.String())
		return err
	default:
		line := watchLine(r)
		if line == *last {
			return nil
		}
		*last = line
		_, err := fmt.Fprintf(w, "%s %s\n", time.Now().Format("15:04:05"), line)
		return err
	}
}

// watchLine is one line per state: phase, position, and each cluster's
// canary weight.
func watchLine(r *cutoverv1.Rollout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s wave %s step %s", r.GetName(), phaseLabel(r.GetStatus()), waveLabel(r), stepLabel(r))
	for _, c := range r.GetStatus().GetClusters() {
		fmt.Fprintf(&b, " | %s %s %d%%", c.GetCluster(), enumWord(c.GetPhase()), shownWeight(c))
	}
	return b.String()
}

// writeTree is the live view: a summary line, then a tree of waves and their
// clusters with a bar for the share of traffic the new revision gets.
func writeTree(b *strings.Builder, r *cutoverv1.Rollout, now time.Time) {
	st := r.GetStatus()
	fmt.Fprintf(b, "%s  revision %s  %s\n", r.GetName(), r.GetSpec().GetRevision().GetName(), phaseLabel(st))
	fmt.Fprintf(b, "wave %s  step %s\n", waveLabel(r), stepDetail(r, now))
	if msg := st.GetMessage(); msg != "" {
		fmt.Fprintf(b, "%s\n", msg)
	}
	waves := r.GetSpec().GetTargets().GetWaves()
	for i, wave := range waves {
		branch, indent := "├─", "│  "
		if i == len(waves)-1 {
			branch, indent = "└─", "   "
		}
		fmt.Fprintf(b, "%s wave %s (%s)\n", branch, wave.GetName(), waveState(st, i))
		var clusters []*cutoverv1.ClusterProgress
		for _, c := range st.GetClusters() {
			if int(c.GetWave()) == i {
				clusters = append(clusters, c)
			}
		}
		for j, c := range clusters {
			leaf := "├─"
			if j == len(clusters)-1 {
				leaf = "└─"
			}
			w := shownWeight(c)
			fmt.Fprintf(b, "%s%s %-12s %-12s %s %3d%%  %s\n", indent, leaf, c.GetCluster(), enumWord(c.GetPhase()),
				bar(w, 20), w, convergedLabel(c))
		}
	}
}

// shownWeight is the share of traffic the new revision gets in a cluster.
func shownWeight(c *cutoverv1.ClusterProgress) int32 {
	switch c.GetPhase() {
	case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED:
		return 100
	case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING:
		return c.GetCanaryWeight()
	}
	return 0
}

// bar draws pct percent of width cells.
func bar(pct int32, width int) string {
	full := int(pct) * width / 100
	return "[" + strings.Repeat("█", full) + strings.Repeat("░", width-full) + "]"
}

// isTerminal reports whether w is a character device, where redrawing in
// place makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
