package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cutover-dev/cutover/internal/audit"
	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
)

// seriesCap bounds the samples kept per series: hot data stays in memory,
// in a bounded window (a minute at the default 100 ms).
const seriesCap = 600

// gates keeps the recent samples of every series and the consecutive
// failures of every gate. Safe for concurrent use.
type gates struct {
	mu       sync.Mutex
	series   map[seriesKey][]*cutoverv1.Sample // oldest first
	failures map[failureKey]int32
	acted    map[failureKey]bool
	compiled map[compiledKey][]*gate.Compiled // per rollout, parsed once
	windows  sync.Pool                        // *gate.Window scratch (6 KB each)
}

type compiledKey struct {
	rollout string
	number  int64
}

type seriesKey struct{ cluster, app, revision string }

type failureKey struct {
	rollout string
	number  int64
	gate    int
	cluster string
}

func newGates() *gates {
	return &gates{
		series: map[seriesKey][]*cutoverv1.Sample{}, failures: map[failureKey]int32{}, acted: map[failureKey]bool{},
		compiled: map[compiledKey][]*gate.Compiled{},
		windows:  sync.Pool{New: func() any { return &gate.Window{} }},
	}
}

// Samples records an agent's samples and evaluates the gates of the
// rollouts they concern. A gate that fails failureLimit times in a row
// aborts the rollout (critical) or pauses it (warning), with its evidence.
func (c *Controller) Samples(ctx context.Context, cluster string, batch *cutoverv1.SampleBatch) {
	apps := map[string]bool{}
	c.gates.mu.Lock()
	for _, s := range batch.GetSamples() {
		k := seriesKey{cluster, s.GetApp(), s.GetRevision()}
		ser := append(c.gates.series[k], s)
		if len(ser) > seriesCap {
			ser = ser[len(ser)-seriesCap:]
		}
		c.gates.series[k] = ser
		apps[s.GetApp()] = true
	}
	c.gates.mu.Unlock()
	for app := range apps {
		if r := c.snapshot(app); r != nil && len(r.GetSpec().GetGates()) > 0 {
			c.evaluate(ctx, r, cluster)
		}
	}
}

// evaluate judges every gate of r in one cluster carrying the new revision.
func (c *Controller) evaluate(ctx context.Context, r *cutoverv1.Rollout, cluster string) {
	st := r.GetStatus()
	if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING && st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED &&
		st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_WAITING_FOR_WINDOW { // traffic on the canary is judged while it waits
		return
	}
	var cp *cutoverv1.ClusterProgress
	for _, p := range st.GetClusters() {
		if p.GetCluster() == cluster && p.GetPhase() == cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING && p.GetStableRevision() != nil {
			cp = p
		}
	}
	if cp == nil || cp.GetStableRevision().GetName() == r.GetSpec().GetRevision().GetName() {
		return
	}
	canary, stable := c.gates.windows.Get().(*gate.Window), c.gates.windows.Get().(*gate.Window)
	defer c.gates.windows.Put(canary)
	defer c.gates.windows.Put(stable)
	newKey := seriesKey{cluster, r.GetName(), r.GetSpec().GetRevision().GetName()}
	gs := c.gates.compile(r)
	var shifted time.Time // once per batch, and only for gates with a warmup
	if slices.ContainsFunc(gs, func(g *gate.Compiled) bool { return g.Warmup > 0 }) {
		shifted = c.gates.shifted(newKey)
	}
	for i, g := range gs {
		after := g.After(shifted)
		c.gates.window(canary, newKey, g.Window, after)
		c.gates.window(stable, seriesKey{cluster, r.GetName(), cp.GetStableRevision().GetName()}, g.Window, after)
		verdict, ev := g.Check(canary, stable)
		c.recordEvaluation(r, cluster, i, g, verdict, ev, canary, stable)
		key := failureKey{r.GetName(), st.GetRolloutNumber(), i, cluster}
		if act := c.gates.count(key, verdict, max(g.Gate.GetFailureLimit(), 1)); act {
			c.act(ctx, r.GetName(), g.Gate, cluster, g.Window, ev.String())
		}
	}
}

// compile returns the rollout's gates, parsed once per rollout. Gates
// that do not parse (validation refuses them at apply) are left out.
func (g *gates) compile(r *cutoverv1.Rollout) []*gate.Compiled {
	key := compiledKey{r.GetName(), r.GetStatus().GetRolloutNumber()}
	g.mu.Lock()
	defer g.mu.Unlock()
	if cs, ok := g.compiled[key]; ok {
		return cs
	}
	cs := []*gate.Compiled{}
	for _, gs := range r.GetSpec().GetGates() {
		if c, err := gate.Compile(gs); err == nil {
			cs = append(cs, c)
		}
	}
	for k := range g.compiled { // one rollout of an app at a time
		if k.rollout == key.rollout {
			delete(g.compiled, k)
		}
	}
	g.compiled[key] = cs
	return cs
}

// count records a verdict and reports whether the gate must act now: the
// failure limit was just reached for the first time.
func (g *gates) count(key failureKey, v gate.Verdict, limit int32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch v {
	case gate.Pass:
		g.failures[key] = 0
	case gate.Fail:
		g.failures[key]++
	}
	if g.failures[key] < limit || g.acted[key] {
		return false
	}
	g.acted[key] = true
	return true
}

func (c *Controller) act(ctx context.Context, name string, g *cutoverv1.Gate, cluster string, window time.Duration, ev string) {
	reason := fmt.Sprintf("gate %s (%s) failed in %s over %s: %s", g.GetName(), gate.Describe(g), cluster, window, ev)
	c.log.Warn("gate failed", "rollout", name, "gate", g.GetName(), "cluster", cluster, "severity", g.GetSeverity(), "evidence", ev)
	var event rollout.Event = rollout.Abort{Reason: reason, Actor: "gate " + g.GetName()}
	// The decision is the engine's; the timeline names the gate.
	cause := audit.Cause{Event: cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_ABORTED,
		Action: audit.ActionGateTripped, Actor: audit.ActorEngine, Cluster: cluster}
	if g.GetSeverity() == spec.SeverityWarning {
		event = rollout.Pause{Actor: "gate " + g.GetName(), Reason: reason}
		cause.Event = cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_PAUSED
	}
	// Not on the agent's receive path: the decision goes through the
	// rollout's supervisor like any operator action.
	go func() {
		if _, _, err := c.do(ctx, name, event, cause); err != nil {
			c.log.Error("gate action", "rollout", name, "err", err)
		}
	}()
}

// window sets w to a series' samples that end within d of its newest one
// and after after.
func (g *gates) window(w *gate.Window, k seriesKey, d time.Duration, after time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate.Recent(w, g.series[k], d, after)
}

// shifted is when the traffic of a series last shifted.
func (g *gates) shifted(k seriesKey) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gate.Shifted(g.series[k])
}
