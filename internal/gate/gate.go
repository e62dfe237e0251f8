// Package gate evaluates a rollout's gates — metric conditions on the new
// revision — over sliding windows of the agents' samples. Everything here is
// pure; the control plane feeds it samples and acts on its verdicts.
package gate

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/histogram"
)

// Defaults of a gate's optional fields.
const (
	DefaultWindow       = time.Second
	DefaultMinSamples   = 100
	DefaultFailureLimit = 1
)

// ErrCondition is wrapped by every condition that does not parse.
var ErrCondition = errors.New("invalid gate condition")

// Metrics a gate can test.
var metrics = map[string]float64{
	"errorRate": 0, "throughput": 0,
	"latencyP50": 0.50, "latencyP90": 0.90, "latencyP99": 0.99, "latencyP999": 0.999,
}

// Condition is a parsed gate condition. Values are in the metric's unit:
// a fraction for errorRate, microseconds for latencies, requests per
// second for throughput.
type Condition struct {
	Less   bool    // "<=" (else ">=")
	Value  float64 // absolute threshold, or offset added to stable
	Factor float64 // multiple of stable; 0 when not relative by factor
	Stable bool    // relative to stable
}

var condRE = regexp.MustCompile(`^(<=|>=)\s*(?:(stable)\s*([+-])\s*(\S+)|(\S+?)x\s+stable|(\S+))$`)

// Parse reads a condition for a metric.
func Parse(metric, cond string) (Condition, error) {
	if _, ok := metrics[metric]; !ok {
		return Condition{}, fmt.Errorf("%w: unknown metric %q (errorRate, latencyP50, latencyP90, latencyP99, latencyP999, throughput)", ErrCondition, metric)
	}
	m := condRE.FindStringSubmatch(strings.TrimSpace(cond))
	if m == nil {
		return Condition{}, fmt.Errorf("%w: %q is not like \"<= 0.001\", \"<= 1.1x stable\" or \"<= stable + 5us\"", ErrCondition, cond)
	}
	c := Condition{Less: m[1] == "<="}
	var err error
	switch {
	case m[2] != "": // stable +/- value
		c.Stable = true
		if c.Value, err = quantity(metric, m[4]); err == nil && m[3] == "-" {
			c.Value = -c.Value
		}
	case m[5] != "": // factor x stable
		c.Stable = true
		c.Factor, err = strconv.ParseFloat(m[5], 64)
		if err == nil && c.Factor <= 0 {
			err = errors.New("factor must be positive")
		}
	default:
		c.Value, err = quantity(metric, m[6])
	}
	if err != nil {
		return Condition{}, fmt.Errorf("%w: %q: %v", ErrCondition, cond, err)
	}
	return c, nil
}

// quantity reads a value in the metric's unit: a fraction for errorRate,
// a duration for latencies (stored as µs), a rate ("900/s") for throughput.
func quantity(metric, s string) (float64, error) {
	switch {
	case metric == "errorRate":
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if strings.HasSuffix(s, "%") {
			v /= 100
		}
		return v, err
	case metric == "throughput":
		return strconv.ParseFloat(strings.TrimSuffix(s, "/s"), 64)
	default:
		d, err := time.ParseDuration(s)
		return float64(d) / float64(time.Microsecond), err
	}
}

// Window is what one series served over a window.
type Window struct {
	Requests, Errors int64
	Latency          histogram.Snapshot
	Seconds          float64
	// ShareSeconds sums each sample's traffic share (0..1) times its
	// length: the seconds the series would have taken to serve its
	// requests at 100% of the traffic.
	ShareSeconds float64
}

// Add merges a sample into the window.
func (w *Window) Add(s *cutoverv1.Sample) {
	w.Requests += s.GetRequests()
	w.Errors += s.GetErrors()
	w.Seconds += float64(s.GetIntervalMicros()) / 1e6
	w.ShareSeconds += float64(s.GetIntervalMicros()) / 1e6 * float64(s.GetWeight()) / 100
	for i, b := range s.GetLatencyBuckets() {
		if int(b) < histogram.Buckets && i < len(s.GetLatencyCounts()) {
			w.Latency.Counts[b] += s.GetLatencyCounts()[i]
			w.Latency.Total += s.GetLatencyCounts()[i]
		}
	}
}

// Value is the window's value of a metric, in the metric's unit.
func (w *Window) Value(metric string) float64 {
	switch metric {
	case "errorRate":
		if w.Requests == 0 {
			return 0
		}
		return float64(w.Errors) / float64(w.Requests)
	case "throughput":
		if w.Seconds == 0 {
			return 0
		}
		return float64(w.Requests) / w.Seconds
	default:
		return float64(w.Latency.Quantile(metrics[metric])) / float64(time.Microsecond)
	}
}

// perShare is the window's throughput per traffic share: requests per
// second at 100% of the app's traffic, 0 when it had no share.
func (w *Window) perShare() float64 {
	if w.ShareSeconds == 0 {
		return 0
	}
	return float64(w.Requests) / w.ShareSeconds
}

// Verdict of one evaluation.
type Verdict int

// Verdicts.
const (
	// Inconclusive: too few requests to decide; never a failure.
	Inconclusive Verdict = iota
	// Pass: the condition holds.
	Pass
	// Fail: the condition does not hold.
	Fail
)

// Evidence is what a verdict was based on.
type Evidence struct {
	Metric            string
	Canary, Threshold float64
	Stable            float64 // the stable value, for relative conditions
	Requests          int64   // the new revision's requests in the window
}

func (e Evidence) String() string {
	return fmt.Sprintf("%s %.6g (threshold %.6g, stable %.6g) over %d requests", e.Metric, e.Canary, e.Threshold, e.Stable, e.Requests)
}

// Evaluate judges the new revision's window against a condition, with the
// stable revision's window for relative conditions.
//
// Throughput relative to stable compares throughput per traffic share, so
// that a canary at 20% is held to stable's rate for the same share; a
// window without a share (header-route or preview traffic only) is
// inconclusive.
func Evaluate(metric string, c Condition, minSamples int64, canary, stable *Window) (Verdict, Evidence) {
	ev := Evidence{Metric: metric, Canary: canary.Value(metric), Requests: canary.Requests, Stable: stable.Value(metric)}
	if metric == "throughput" && c.Stable {
		ev.Metric = "throughput per 100% share"
		ev.Canary, ev.Stable = canary.perShare(), stable.perShare()
		if ev.Canary == 0 && canary.Requests > 0 || ev.Stable == 0 {
			return Inconclusive, ev
		}
	}
	if canary.Requests < minSamples || c.Stable && stable.Requests < minSamples {
		return Inconclusive, ev
	}
	ev.Threshold = c.Value
	if c.Stable {
		ev.Threshold = ev.Stable + c.Value
		if c.Factor > 0 {
			ev.Threshold = ev.Stable * c.Factor
		}
	}
	ok := ev.Canary <= ev.Threshold
	if !c.Less {
		ok = ev.Canary >= ev.Threshold
	}
	if ok {
		return Pass, ev
	}
	return Fail, ev
}

// Compiled is a gate ready to judge batch after batch: its condition is
// parsed once, not on the hot path.
type Compiled struct {
	Gate   *cutoverv1.Gate
	cond   Condition
	Window time.Duration
	Warmup time.Duration
}

// Compile parses a gate.
func Compile(g *cutoverv1.Gate) (*Compiled, error) {
	c := &Compiled{Gate: g, Window: DefaultWindow}
	if d, err := time.ParseDuration(g.GetWindow()); err == nil && d > 0 {
		c.Window = d
	}
	if d, err := time.ParseDuration(g.GetWarmup()); err == nil && d > 0 {
		c.Warmup = d
	}
	if g.GetJudge() != nil {
		return c, nil
	}
	cond, err := Parse(g.GetMetric(), g.GetCondition())
	if err != nil {
		return nil, err
	}
	c.cond = cond
	return c, nil
}

// Check judges the gate on the new revision's and stable's windows: a
// threshold condition, or with a judge, a Mann-Whitney comparison of the
// latency distributions. The evidence is formatted only when asked for:
// it is needed when the gate acts, not on every batch.
func (c *Compiled) Check(canary, stable *Window) (Verdict, fmt.Stringer) {
	g := c.Gate
	if j := g.GetJudge(); j != nil {
		v, r := Judge(canary, stable, j.GetConfidence(), j.GetMinEffect(), g.GetMinSamples())
		return v, r
	}
	return Evaluate(g.GetMetric(), c.cond, g.GetMinSamples(), canary, stable)
}

// Describe is a gate's test in a few words, e.g. "errorRate <= 0.01" or
// "latency judge at 0.99 confidence".
func Describe(g *cutoverv1.Gate) string {
	if j := g.GetJudge(); j != nil {
		return fmt.Sprintf("latency judge at %g confidence, min effect %g", j.GetConfidence(), j.GetMinEffect())
	}
	return g.GetMetric() + " " + g.GetCondition()
}

// Recent sets w to the samples (oldest first) that end within d of the
// newest one and after the time after, reusing w's storage. Windows are
// timed by the samples' own clock, so skew between an agent and the
// control plane does not matter.
func Recent(w *Window, samples []*cutoverv1.Sample, d time.Duration, after time.Time) {
	*w = Window{}
	if len(samples) == 0 {
		return
	}
	newest := samples[len(samples)-1].GetEndTime().AsTime()
	for i := len(samples) - 1; i >= 0; i-- {
		end := samples[i].GetEndTime().AsTime()
		if newest.Sub(end) >= d || !end.After(after) {
			break
		}
		w.Add(samples[i])
	}
}

// maxGap is the longest pause between two samples of a series that still
// counts as continuous traffic.
const maxGap = time.Second

// Shifted returns when the traffic of a series (oldest first) last
// shifted: the start of the newest run of samples with the same weight and
// no gap over maxGap. Computed once per evaluation and shared by every
// gate; the zero time for no samples.
func Shifted(samples []*cutoverv1.Sample) time.Time {
	if len(samples) == 0 {
		return time.Time{}
	}
	i := len(samples) - 1
	weight := samples[i].GetWeight()
	for ; i > 0; i-- {
		prev, cur := samples[i-1], samples[i]
		if prev.GetWeight() != weight || cur.GetEndTime().AsTime().Sub(prev.GetEndTime().AsTime()) > maxGap {
			break
		}
	}
	return samples[i].GetEndTime().AsTime().Add(-time.Duration(samples[i].GetIntervalMicros()) * time.Microsecond)
}

// After is when the gate may start judging a series that shifted at
// shifted: warmup later, or from the start when it has no warmup.
func (c *Compiled) After(shifted time.Time) time.Time {
	if c.Warmup <= 0 {
		return time.Time{}
	}
	return shifted.Add(c.Warmup)
}
