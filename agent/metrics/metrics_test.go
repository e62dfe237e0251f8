package metrics

import (
	"context"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/histogram"
)

func TestTotalsBaselineResetsAndBuckets(t *testing.T) {
	tt := newTotals()
	// The first read is the baseline: traffic from before is not counted.
	tt.add(reading{revision: "v2", kind: kindRequests, id: "a", value: 1000}, true)
	tt.add(reading{revision: "v2", kind: kindRequests, id: "a", value: 1100}, false)
	// A series born later counts from zero; one that resets, too.
	tt.add(reading{revision: "v2", kind: kindRequests, id: "b", value: 30}, false)
	tt.add(reading{revision: "v2", kind: kindRequests, id: "a", value: 5}, false)
	if got := tt.counters()["v2"].Requests; got != 100+30+5 {
		t.Fatalf("requests = %d, want 135", got)
	}
	// Cumulative buckets: 10 at or below 1ms, 40 more up to 10ms, 5 above.
	for _, b := range []struct{ le, v float64 }{{0.001, 0}, {0.01, 0}, {math.Inf(1), 0}} {
		tt.add(reading{revision: "v2", kind: kindBucket, id: "x", le: b.le, value: b.v}, false)
	}
	for _, b := range []struct{ le, v float64 }{{0.001, 10}, {0.01, 50}, {math.Inf(1), 55}} {
		tt.add(reading{revision: "v2", kind: kindBucket, id: "x", le: b.le, value: b.v}, false)
	}
	lat := tt.counters()["v2"].Latency
	if lat.Total != 55 {
		t.Fatalf("latency total = %d, want 55", lat.Total)
	}
	for _, want := range []struct {
		us uint64
		n  uint64
	}{{1000, 10}, {10000, 40}, {20000, 5}} {
		if got := lat.Counts[histogram.Index(want.us)]; got != want.n {
			t.Errorf("bucket of %dus holds %d, want %d", want.us, got, want.n)
		}
	}
}

// instance is an app exposing the usual client_golang metrics on loopback.
type instance struct {
	srv      *httptest.Server
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

func newInstance(t *testing.T) *instance {
	reg := prometheus.NewRegistry()
	in := &instance{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "h"}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "h", Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18)}),
	}
	reg.MustRegister(in.requests, in.duration)
	in.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *instance) serve(n, errors int, latency time.Duration) {
	for i := range n {
		code := "200"
		if i < errors {
			code = "500"
		}
		in.requests.WithLabelValues(code).Inc()
		in.duration.Observe(latency.Seconds())
	}
}

func TestScrapeReadsEveryInstanceOfEveryRevision(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v1a, v1b, v2 := newInstance(t), newInstance(t), newInstance(t)
	v1a.serve(5, 0, time.Millisecond) // before the source starts: not counted
	s, err := NewScrape(&cutoverv1.ScrapeSource{
		Requests: &cutoverv1.MetricSelector{Name: "http_requests_total"},
		Errors:   &cutoverv1.MetricSelector{Name: "http_requests_total", Labels: map[string]string{"code": "5.."}},
		Latency:  &cutoverv1.MetricSelector{Name: "http_request_duration_seconds"},
	}, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := func(in *instance) string { return strings.TrimPrefix(in.srv.URL, "http://") }
	s.SetTargets(map[string][]string{"v1": {addr(v1a), addr(v1b)}, "v2": {addr(v2)}})
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, s, func(c map[string]Counters) bool { return c != nil })

	v1a.serve(100, 0, 200*time.Microsecond)
	v1b.serve(100, 1, 200*time.Microsecond)
	v2.serve(100, 30, 20*time.Millisecond)
	got := waitFor(t, s, func(c map[string]Counters) bool { return c["v1"].Requests == 200 && c["v2"].Requests == 100 })
	if got["v1"].Errors != 1 || got["v2"].Errors != 30 {
		t.Errorf("errors v1 %d v2 %d, want 1 and 30", got["v1"].Errors, got["v2"].Errors)
	}
	if p99 := got["v2"].Latency.Quantile(0.99); p99 < 20*time.Millisecond || p99 > 30*time.Millisecond {
		t.Errorf("v2 p99 = %s, want the 25.6ms bucket bound", p99)
	}
	if p99 := got["v1"].Latency.Quantile(0.99); p99 > time.Millisecond {
		t.Errorf("v1 p99 = %s, want under 1ms", p99)
	}
}

func TestScrapeSelectorErrorsNameTheField(t *testing.T) {
	_, err := NewScrape(&cutoverv1.ScrapeSource{
		Requests: &cutoverv1.MetricSelector{Name: "r"},
		Errors:   &cutoverv1.MetricSelector{Name: "r", Labels: map[string]string{"code": "5(("}},
	}, time.Second, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "scrape.errors.labels.code") {
		t.Fatalf("err = %v, want it to name scrape.errors.labels.code", err)
	}
	if _, err := NewScrape(&cutoverv1.ScrapeSource{}, time.Second, nil); err == nil || !strings.Contains(err.Error(), "scrape.requests.name") {
		t.Fatalf("err = %v, want it to name scrape.requests.name", err)
	}
}

func TestScrapeUnreachableInstanceKeepsTotals(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := newInstance(t)
	s, err := NewScrape(&cutoverv1.ScrapeSource{Requests: &cutoverv1.MetricSelector{Name: "http_requests_total"}}, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.SetTargets(map[string][]string{"v1": {strings.TrimPrefix(in.srv.URL, "http://")}})
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, s, func(c map[string]Counters) bool { return c != nil })
	in.serve(10, 0, time.Millisecond)
	waitFor(t, s, func(c map[string]Counters) bool { return c["v1"].Requests == 10 })
	in.srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Err() == nil {
		t.Fatal("no error reported for a closed instance")
	}
	if c, _ := s.Counters(); c["v1"].Requests != 10 {
		t.Fatalf("totals after a failed read = %d, want the last good 10", c["v1"].Requests)
	}
}

// waitFor polls a source until cond holds, bounded in time.
func waitFor(t *testing.T, s Source, cond func(map[string]Counters) bool) map[string]Counters {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := s.Counters()
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("source never reached the condition; last %+v", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPrometheusNeedsAnAddressAndRequests(t *testing.T) {
	if _, err := NewPrometheus(&cutoverv1.PrometheusSource{Requests: "x"}, "", "app", time.Second, nil); err == nil || !strings.Contains(err.Error(), "--prometheus-url") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewPrometheus(&cutoverv1.PrometheusSource{}, "http://127.0.0.1:9", "app", time.Second, nil); err == nil || !strings.Contains(err.Error(), "prometheus.requests") {
		t.Fatalf("err = %v", err)
	}
}
