package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/agent/metrics"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// The demo app's metrics, as every source reads them.
const (
	demoRequests = "cutover_demoapp_requests_total"
	demoLatency  = "cutover_demoapp_request_duration_seconds"
)

// With spec.metrics.provider scrape, the agent reads the instances'
// /metrics pages instead of its proxy's counters, and the gates act on
// them: a canary answering 20% errors is aborted.
func TestScrapeSourceGateAbortsACanary(t *testing.T) {
	f := newTwoRegions(t)
	f.metrics = fmt.Sprintf("provider: scrape, interval: 100ms, scrape: {requests: {name: %s}, errors: {name: %s, labels: {code: '5..'}}, latency: {name: %s}}",
		demoRequests, demoRequests, demoLatency)
	ctx := f.ctx()
	r := f.gated(ctx, []string{"name: errors, metric: errorRate, condition: '<= 0.05', window: 2s, minSamples: 50"}, "--error-rate", "0.2")
	if r.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !containsAll(r.GetStatus().GetMessage(), "gate errors", "errorRate") {
		t.Fatalf("a canary with 20%% errors read by scraping ended %s: %s", r.GetStatus().GetPhase(), r.GetStatus().GetMessage())
	}
}

// The Prometheus source against a real Prometheus server scraping two
// demo apps: what it reports per revision is exactly what the apps
// served, errors and latency included.
func TestPrometheusSourceReadsWhatPrometheusScraped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	apps := map[string]string{} // address -> revision
	for _, a := range []struct{ rev, flags string }{{"v1", ""}, {"v2", "--error-rate 0.25 --latency 5ms"}} {
		listen, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--version", a.rev, "--listen", listen}, strings.Fields(a.flags)...)
		p, err := harness.StartProcess("demoapp-"+a.rev, bins.Path(harness.DemoApp), filepath.Join(dir, a.rev+".log"), args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
		apps[listen] = a.rev
	}
	url := harness.StartPrometheus(t, apps)
	src, err := metrics.NewPrometheus(&cutoverv1.PrometheusSource{
		Address:  url,
		Requests: demoRequests + `{revision="{{revision}}"}`,
		Errors:   demoRequests + `{revision="{{revision}}",code=~"5.."}`,
		Latency:  demoLatency + `_bucket{revision="{{revision}}"}`,
	}, "", "demo", 100*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	src.SetRevisions([]string{"v1", "v2"})
	done := make(chan struct{})
	sctx, stop := context.WithCancel(ctx)
	go func() { defer close(done); src.Run(sctx) }()
	defer func() { stop(); <-done }()

	// The baseline: both apps scraped at least once (a request counter
	// series exists for each) before any traffic.
	if err := harness.Poll(ctx, 50*time.Millisecond, "both revisions in Prometheus", func() (bool, error) {
		c, _ := src.Counters()
		_, ok1 := c["v1"]
		_, ok2 := c["v2"]
		return ok1 && ok2, nil
	}); err != nil {
		t.Fatalf("%v (source error: %v)", err, src.Err())
	}
	const n = 200
	client := harness.NewClient()
	for addr := range apps {
		for range n {
			harness.Hit(ctx, client, harness.URL(addr))
		}
	}
	var got map[string]metrics.Counters
	if err := harness.Poll(ctx, 50*time.Millisecond, "all requests counted", func() (bool, error) {
		got, _ = src.Counters()
		return got["v1"].Requests == n && got["v2"].Requests == n, nil
	}); err != nil {
		t.Fatalf("%v: got %+v (source error: %v)", err, got, src.Err())
	}
	if e := got["v1"].Errors; e != 0 {
		t.Errorf("v1 errors = %d, want 0", e)
	}
	if e := got["v2"].Errors; e < n/10 || e > n*2/5 {
		t.Errorf("v2 errors = %d of %d, want about 25%%", e, n)
	}
	if l := got["v2"].Latency; l.Total != n || l.Quantile(0.5) < 5*time.Millisecond {
		t.Errorf("v2 latency: %d requests, p50 %s; want %d at 5ms or more", l.Total, l.Quantile(0.5), n)
	}
	if p50 := got["v1"].Latency.Quantile(0.5); p50 >= 5*time.Millisecond {
		t.Errorf("v1 p50 = %s, want under 5ms", p50)
	}
}

// A rollout whose gates read Prometheus: the agent queries a real
// Prometheus server that scrapes each revision's demo app, and a canary
// answering 20% errors is aborted on that evidence.
func TestPrometheusSourceGateAbortsACanary(t *testing.T) {
	env := harness.TestEnv(t, bins, harness.Region{Cluster: "us-east", Region: "us-east"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	listen, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// Each revision's single instance also serves /metrics on a fixed
	// port, where Prometheus finds it with the revision's label.
	metricsAddr := map[string]string{}
	targets := map[string]string{}
	for _, rev := range []string{"v1", "v2"} {
		if metricsAddr[rev], err = harness.FreeAddr(); err != nil {
			t.Fatal(err)
		}
		targets[metricsAddr[rev]] = rev
	}
	url := harness.StartPrometheus(t, targets)
	app := func(rev string, extra ...string) harness.App {
		return harness.App{
			Name: "demo", Revision: rev, Command: bins.Path(harness.DemoApp), Instances: 1,
			ExtraArgs: append([]string{"--metrics-listen", metricsAddr[rev]}, extra...),
			Waves:     [][]string{{"us-east"}}, Listen: map[string]string{"us-east": listen},
			Steps: []string{"setWeight: 50", "pause: {duration: 20s}"},
			Metrics: fmt.Sprintf(`provider: prometheus, interval: 200ms, prometheus: {address: %q, requests: '%s{revision="{{revision}}"}', errors: '%s{revision="{{revision}}",code=~"5.."}'}`,
				url, demoRequests, demoRequests),
			Gates: []string{"name: errors, metric: errorRate, condition: '<= 0.05', window: 3s, minSamples: 50"},
		}
	}
	if _, err := env.Apply(ctx, app("v1").Manifest()); err != nil {
		t.Fatal(err)
	}
	if _, err := env.WaitRollout(ctx, "demo", "v1 healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY)); err != nil {
		t.Fatal(err)
	}
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go func() {
		client := harness.NewClient()
		for lctx.Err() == nil {
			harness.Hit(lctx, client, harness.URL(listen))
		}
	}()
	if _, err := env.Apply(ctx, app("v2", "--error-rate", "0.2").Manifest()); err != nil {
		t.Fatal(err)
	}
	r, err := env.WaitRollout(ctx, "demo", "v2 aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if err != nil {
		t.Fatal(err)
	}
	if msg := r.GetStatus().GetMessage(); !containsAll(msg, "gate errors", "errorRate", "failed in us-east") {
		t.Errorf("abort message lacks the evidence: %q", msg)
	}
}
