package rollout

import (
	"strings"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Desired is the whole desired state of the rollout's app in one cluster,
// derived from the stored rollout alone. A nil result (or one without
// revisions) means the cluster should run nothing for the app.
func Desired(r *cutoverv1.Rollout, cp *cutoverv1.ClusterProgress) *cutoverv1.DesiredApp {
	s := r.GetSpec()
	d := &cutoverv1.DesiredApp{
		App:        r.GetName(),
		Generation: cp.GetDesiredGeneration(),
		Listen:     spec.ListenOf(s, cp.GetCluster()),
	}
	stable, next := cp.GetStableRevision(), s.GetRevision()
	switch cp.GetPhase() {
	case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING:
		// Nothing to shift when the cluster has no stable revision yet or
		// already runs exactly the new one (a spec change that kept it).
		strategy, err := StrategyOf(s)
		if stable == nil || proto.Equal(stable, next) || err != nil {
			d.Revisions = []*cutoverv1.DesiredRevision{track(cutoverv1.Track_TRACK_STABLE, next, 100)}
			break
		}
		strategy.Shift(s, cp, stable, next, d)
		d.GuardGates = s.GetGates() // for the agent's local guard
	case cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED:
		d.Revisions = []*cutoverv1.DesiredRevision{track(cutoverv1.Track_TRACK_STABLE, next, 100)}
	default: // pending or aborted: the revision served before
		if stable != nil {
			d.Revisions = []*cutoverv1.DesiredRevision{track(cutoverv1.Track_TRACK_STABLE, stable, 100)}
		}
	}
	if len(d.GetRevisions()) > 0 {
		d.Metrics = s.GetMetrics() // where the agent reads the app's samples
		d.Kubernetes = s.GetKubernetes()
		d.Strategy = StrategyName(s)
	}
	// A revision kept warm after a blue-green switch runs, without traffic,
	// until its scale-down, whatever rollout comes next.
	if prev := cp.GetPreviousRevision(); prev != nil && len(d.GetRevisions()) > 0 && !runs(d, prev) {
		d.Revisions = append(d.Revisions, track(cutoverv1.Track_TRACK_PREVIOUS, prev, 0))
	}
	return d
}

// StrategyName is the manifest's name of the spec's strategy, e.g.
// "blueGreen"; empty when none is set.
func StrategyName(s *cutoverv1.RolloutSpec) string {
	switch s.GetStrategy().GetStrategy().(type) {
	case *cutoverv1.Strategy_Canary:
		return "canary"
	case *cutoverv1.Strategy_BlueGreen:
		return "blueGreen"
	case *cutoverv1.Strategy_Rolling:
		return "rolling"
	case *cutoverv1.Strategy_Shadow:
		return "shadow"
	}
	return ""
}

func runs(d *cutoverv1.DesiredApp, rev *cutoverv1.Revision) bool {
	for _, dr := range d.GetRevisions() {
		if proto.Equal(dr.GetRevision(), rev) {
			return true
		}
	}
	return false
}

// sameDesired compares two desired states, ignoring their generations.
func sameDesired(a, b *cutoverv1.DesiredApp) bool {
	if len(a.GetRevisions()) == 0 && len(b.GetRevisions()) == 0 {
		return true // nothing to run either way, wherever it would listen
	}
	if a == nil || b == nil {
		return false
	}
	x := proto.Clone(a).(*cutoverv1.DesiredApp)
	y := proto.Clone(b).(*cutoverv1.DesiredApp)
	x.Generation, y.Generation = 0, 0
	return proto.Equal(x, y)
}

// Terminal reports whether a phase accepts no further steps.
func Terminal(p cutoverv1.RolloutPhase) bool {
	switch p {
	case cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY, cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED, cutoverv1.RolloutPhase_ROLLOUT_PHASE_SUPERSEDED:
		return true
	}
	return false
}

// PhaseName is the short display name of a phase, e.g. "Healthy" or
// "WaitingForWindow".
func PhaseName(p cutoverv1.RolloutPhase) string {
	n := strings.TrimPrefix(p.String(), "ROLLOUT_PHASE_")
	if n == "" {
		return ""
	}
	var b strings.Builder
	for _, w := range strings.Split(n, "_") {
		if w != "" {
			b.WriteString(w[:1] + strings.ToLower(w[1:]))
		}
	}
	return b.String()
}
