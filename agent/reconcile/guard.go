package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// guardSamples bounds the samples each revision keeps for the local guard.
const guardSamples = 600

// remember keeps a revision's recent samples for the local guard.
func (w *worker) remember(s *cutoverv1.Sample) {
	ser := append(w.recent[s.GetRevision()], s)
	if len(ser) > guardSamples {
		ser = ser[len(ser)-guardSamples:]
	}
	w.recent[s.GetRevision()] = ser
}

// guard is the local guard: while the control plane is unreachable it
// evaluates the critical gates it was given on this agent's own samples,
// and on a failure routes all traffic to the stable revision by itself.
// The control plane learns what happened from the next report.
func (w *worker) guard() {
	if w.connected == nil || w.connected.Load() || w.guardTripped != "" {
		return
	}
	canary, stable := w.trackName(cutoverv1.Track_TRACK_CANARY), w.trackName(cutoverv1.Track_TRACK_STABLE)
	if canary == "" { // a shadow is judged on its mirrored copies
		canary = w.trackName(cutoverv1.Track_TRACK_SHADOW)
	}
	if canary == "" || stable == "" {
		return
	}
	if w.guardGates == nil { // parsed once per desired state, not per pass
		w.guardGates = []*gate.Compiled{}
		for _, g := range w.desired.GetGuardGates() {
			if c, err := gate.Compile(g); err == nil && g.GetSeverity() != spec.SeverityWarning {
				w.guardGates = append(w.guardGates, c) // a pause needs the control plane; only aborts are local
			}
		}
	}
	var shifted time.Time // only for gates with a warmup
	if slices.ContainsFunc(w.guardGates, func(c *gate.Compiled) bool { return c.Warmup > 0 }) {
		shifted = gate.Shifted(w.recent[canary])
	}
	for i, c := range w.guardGates {
		g, d := c.Gate, c.Window
		after := c.After(shifted)
		gate.Recent(&w.scratch[0], w.recent[canary], d, after)
		gate.Recent(&w.scratch[1], w.recent[stable], d, after)
		verdict, ev := c.Check(&w.scratch[0], &w.scratch[1])
		switch verdict {
		case gate.Pass:
			w.guardFails[i] = 0
		case gate.Fail:
			w.guardFails[i]++
		}
		if w.guardFails[i] >= max(g.GetFailureLimit(), 1) {
			w.guardTripped = fmt.Sprintf("gate %s (%s) failed over %s: %s", g.GetName(), gate.Describe(g), d, ev)
			w.log.Warn("local guard: all traffic to stable", "reason", w.guardTripped)
			return
		}
	}
}

// trackName is the name of the desired revision on a track.
func (w *worker) trackName(t cutoverv1.Track) string {
	for _, dr := range w.desired.GetRevisions() {
		if dr.GetTrack() == t {
			return dr.GetRevision().GetName()
		}
	}
	return ""
}
