package server

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutover-dev/cutover/controlplane/controller"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// observerRef breaks the construction cycle hub -> controller -> hub: the
// hub is built first with this reference, which is set once the controller
// exists and before any stream is served.
type observerRef struct {
	ctrl atomic.Pointer[controller.Controller]
}

func (o *observerRef) set(c *controller.Controller) { o.ctrl.Store(c) }

func (o *observerRef) Observe(ctx context.Context, cluster string, app *cutoverv1.ObservedApp) {
	if c := o.ctrl.Load(); c != nil {
		c.Observe(ctx, cluster, app)
	}
}

func (o *observerRef) Samples(ctx context.Context, cluster string, batch *cutoverv1.SampleBatch) {
	if c := o.ctrl.Load(); c != nil {
		c.Samples(ctx, cluster, batch)
	}
}

// rolloutCollector reports rollouts by phase from the controller's snapshot,
// so the label set is bounded by the phase enum.
type rolloutCollector struct {
	ctrl *controller.Controller
	desc *prometheus.Desc
}

func newRolloutCollector(ctrl *controller.Controller) *rolloutCollector {
	return &rolloutCollector{ctrl: ctrl, desc: prometheus.NewDesc(
		"cutover_rollouts", "Rollouts by phase.", []string{"phase"}, nil)}
}

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[cutoverv1.RolloutPhase]int{}
	for _, r := range c.ctrl.List() {
		counts[r.GetStatus().GetPhase()]++
	}
	for v, name := range cutoverv1.RolloutPhase_name {
		if v == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue,
			float64(counts[cutoverv1.RolloutPhase(v)]), strings.ToLower(strings.TrimPrefix(name, "ROLLOUT_PHASE_")))
	}
}
