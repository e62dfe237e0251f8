package reconcile

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/agent/metrics"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// defaultPrometheusInterval is how often a Prometheus source is read by
// default: Prometheus itself scrapes every few seconds at best.
const defaultPrometheusInterval = time.Second

// source is the app's metrics source other than the proxy, running in
// the background.
type source struct {
	cfg        *cutoverv1.MetricsSource
	src        metrics.Source
	scrape     *metrics.Scrape
	prometheus *metrics.Prometheus
	stop       context.CancelFunc
	done       chan struct{}
}

func (s *source) close() {
	if s == nil {
		return
	}
	s.stop()
	<-s.done
}

// ensureSource starts, replaces or stops the background source as the
// desired state's spec.metrics says, and tells it what to read.
func (w *worker) ensureSource() {
	cfg := w.desired.GetMetrics()
	if p := cfg.GetProvider(); p == "" || p == spec.ProviderProxy {
		cfg = nil
	}
	if w.source == nil && cfg != nil || w.source != nil && !proto.Equal(cfg, w.source.cfg) {
		w.source.close()
		w.source = nil
		w.counters, w.sampled = nil, time.Time{} // a new baseline
		if cfg != nil {
			w.source = w.startSource(cfg)
		}
	}
	if w.source == nil {
		return
	}
	switch {
	case w.source.scrape != nil:
		targets := map[string][]string{}
		if w.placer != nil {
			targets = w.placement.Targets
		}
		for key, slots := range w.slots {
			for _, in := range slots {
				if in.Ready() {
					targets[w.revName(key)] = append(targets[w.revName(key)], in.Addr())
				}
			}
		}
		w.source.scrape.SetTargets(targets)
	case w.source.prometheus != nil:
		var revs []string
		for _, dr := range w.desired.GetRevisions() {
			revs = append(revs, dr.GetRevision().GetName())
		}
		w.source.prometheus.SetRevisions(revs)
	}
}

// startSource starts a source; one that cannot start is reported as the
// app's error, and the app then has no samples (its gates stay
// inconclusive) rather than wrong ones.
func (w *worker) startSource(cfg *cutoverv1.MetricsSource) *source {
	interval := w.sampleEvery
	if cfg.GetProvider() == spec.ProviderPrometheus {
		interval = defaultPrometheusInterval
	}
	if d, err := time.ParseDuration(cfg.GetInterval()); err == nil && d > 0 {
		interval = max(d, MinSampleInterval)
	}
	s := &source{cfg: cfg, done: make(chan struct{})}
	var run func(context.Context)
	var err error
	switch cfg.GetProvider() {
	case spec.ProviderScrape:
		s.scrape, err = metrics.NewScrape(cfg.GetScrape(), interval, w.log)
		if err == nil {
			s.src, run = s.scrape, s.scrape.Run
		}
	case spec.ProviderPrometheus:
		s.prometheus, err = metrics.NewPrometheus(cfg.GetPrometheus(), w.prometheusURL, w.app, interval, w.log)
		if err == nil {
			s.src, run = s.prometheus, s.prometheus.Run
		}
	default:
		err = errUnknownProvider(cfg.GetProvider())
	}
	if err != nil {
		w.sourceErr = "metrics: " + err.Error()
		close(s.done)
		s.stop = func() {}
		return s
	}
	w.sourceErr = ""
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		defer close(s.done)
		run(ctx)
	}()
	w.log.Info("metrics source started", "provider", cfg.GetProvider(), "interval", interval)
	return s
}

type errUnknownProvider string

func (e errUnknownProvider) Error() string {
	return "unknown provider " + string(e) + " (proxy, prometheus, scrape)"
}

// readCounters returns every revision's cumulative counters and when they
// were read: from the background source, or from the proxies (the main
// one and the preview one added together).
func (w *worker) readCounters(now time.Time) (map[string]metrics.Counters, time.Time) {
	if w.source != nil {
		if w.source.src == nil {
			return nil, time.Time{}
		}
		return w.source.src.Counters()
	}
	if w.main.px == nil {
		return nil, time.Time{}
	}
	cur, _ := w.main.px.Counters()
	if w.preview.px != nil {
		more, _ := w.preview.px.Counters()
		for rev, c := range more {
			sum := cur[rev]
			sum.Requests += c.Requests
			sum.Errors += c.Errors
			if sum.Latency == nil {
				sum.Latency = c.Latency
			} else {
				for i, n := range c.Latency.Counts {
					sum.Latency.Counts[i] += n
				}
				sum.Latency.Total += c.Latency.Total
			}
			cur[rev] = sum
		}
	}
	return cur, now
}
