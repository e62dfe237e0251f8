package gate_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/histogram"
)

func TestParse(t *testing.T) {
	tests := []struct {
		metric, cond string
		want         gate.Condition
	}{
		{"errorRate", "<= 0.001", gate.Condition{Less: true, Value: 0.001}},
		{"errorRate", "<= 0.1%", gate.Condition{Less: true, Value: 0.001}},
		{"latencyP99", "<= 250us", gate.Condition{Less: true, Value: 250}},
		{"throughput", ">= 900/s", gate.Condition{Value: 900}},
		{"latencyP99", "<= 1.1x stable", gate.Condition{Less: true, Factor: 1.1, Stable: true}},
		{"latencyP99", "<= stable + 5us", gate.Condition{Less: true, Value: 5, Stable: true}},
		{"throughput", ">= 0.8x stable", gate.Condition{Factor: 0.8, Stable: true}},
	}
	for _, tt := range tests {
		got, err := gate.Parse(tt.metric, tt.cond)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%s, %q) = %+v, %v; want %+v", tt.metric, tt.cond, got, err, tt.want)
		}
	}
	for _, bad := range [][2]string{{"errorRate", "< 0.1"}, {"latencyP99", "<= fast"}, {"latencyP95", "<= 1ms"}, {"latencyP99", "<= -1x stable"}} {
		if _, err := gate.Parse(bad[0], bad[1]); !errors.Is(err, gate.ErrCondition) {
			t.Errorf("Parse(%s, %q) = %v, want ErrCondition", bad[0], bad[1], err)
		}
	}
}

func window(requests, errs int64, latency time.Duration) *gate.Window {
	var h histogram.Histogram
	for range requests {
		h.Record(latency)
	}
	w := &gate.Window{}
	s := &cutoverv1.Sample{Requests: requests, Errors: errs, IntervalMicros: 1e6}
	snap := h.Snapshot()
	for i, n := range snap.Counts {
		if n > 0 {
			s.LatencyBuckets = append(s.LatencyBuckets, uint32(i))
			s.LatencyCounts = append(s.LatencyCounts, n)
		}
	}
	w.Add(s)
	return w
}

func TestEvaluate(t *testing.T) {
	errRate, _ := gate.Parse("errorRate", "<= 0.001")
	rel, _ := gate.Parse("latencyP99", "<= 1.1x stable")
	tests := []struct {
		name           string
		metric         string
		c              gate.Condition
		canary, stable *gate.Window
		want           gate.Verdict
	}{
		{"5% errors fail", "errorRate", errRate, window(1000, 50, time.Millisecond), window(1000, 0, time.Millisecond), gate.Fail},
		{"no errors pass", "errorRate", errRate, window(1000, 0, time.Millisecond), window(1000, 0, time.Millisecond), gate.Pass},
		{"below minSamples is inconclusive", "errorRate", errRate, window(50, 50, time.Millisecond), window(1000, 0, time.Millisecond), gate.Inconclusive},
		{"+10ms p99 fails 1.1x stable", "latencyP99", rel, window(1000, 0, 12*time.Millisecond), window(1000, 0, 2*time.Millisecond), gate.Fail},
		{"same latency passes 1.1x stable", "latencyP99", rel, window(1000, 0, 2*time.Millisecond), window(1000, 0, 2*time.Millisecond), gate.Pass},
		{"relative without stable samples is inconclusive", "latencyP99", rel, window(1000, 0, 12*time.Millisecond), window(10, 0, 2*time.Millisecond), gate.Inconclusive},
	}
	for _, tt := range tests {
		if got, ev := gate.Evaluate(tt.metric, tt.c, 100, tt.canary, tt.stable); got != tt.want {
			t.Errorf("%s: verdict %v (%s), want %v", tt.name, got, ev, tt.want)
		}
	}
}

// The work one batch costs per gate, as the control plane does it: merging
// a 1 s window of 100 ms samples (40 latency buckets each) for canary and
// stable into reused windows, and judging it with the compiled gate.
func BenchmarkEvaluateWindow(b *testing.B) {
	start := time.Now()
	samples := make([]*cutoverv1.Sample, 10)
	for i := range samples {
		s := &cutoverv1.Sample{Requests: 1000, Errors: 1, IntervalMicros: 100000,
			EndTime: timestamppb.New(start.Add(time.Duration(i) * 100 * time.Millisecond))}
		for j := range 40 {
			s.LatencyBuckets = append(s.LatencyBuckets, uint32(100+j))
			s.LatencyCounts = append(s.LatencyCounts, 25)
		}
		samples[i] = s
	}
	g, err := gate.Compile(&cutoverv1.Gate{Metric: "latencyP99", Condition: "<= 1.1x stable", Window: "1s", MinSamples: 100})
	if err != nil {
		b.Fatal(err)
	}
	var canary, stable gate.Window
	b.ReportAllocs()
	for b.Loop() {
		after := g.After(gate.Shifted(samples))
		gate.Recent(&canary, samples, g.Window, after)
		gate.Recent(&stable, samples, g.Window, after)
		if v, _ := g.Check(&canary, &stable); v != gate.Pass {
			b.Fatalf("verdict %v", v)
		}
	}
}

// Relative throughput compares rates per traffic share: a canary at 20%
// serving a quarter of stable's 80% rate is on par; one serving half of
// that is not; without a share it is inconclusive.
func TestThroughputRelativeToStableIsPerShare(t *testing.T) {
	cond, err := gate.Parse("throughput", ">= 0.8x stable")
	if err != nil {
		t.Fatal(err)
	}
	sample := func(requests int64, weight int32) *cutoverv1.Sample {
		return &cutoverv1.Sample{Requests: requests, IntervalMicros: 1e6, Weight: weight}
	}
	window := func(s *cutoverv1.Sample) *gate.Window {
		var w gate.Window
		w.Add(s)
		return &w
	}
	stable := window(sample(800, 80))
	if v, ev := gate.Evaluate("throughput", cond, 100, window(sample(200, 20)), stable); v != gate.Pass {
		t.Errorf("canary on par per share: %v %s", v, ev)
	}
	if v, ev := gate.Evaluate("throughput", cond, 100, window(sample(100, 20)), stable); v != gate.Fail || ev.Canary != 500 || ev.Stable != 1000 {
		t.Errorf("canary at half the rate per share: %v %s, want Fail at 500/s vs 1000/s", v, ev)
	}
	if v, _ := gate.Evaluate("throughput", cond, 100, window(sample(200, 0)), stable); v != gate.Inconclusive {
		t.Errorf("canary without a share: %v, want Inconclusive", v)
	}
	abs, _ := gate.Parse("throughput", ">= 900/s")
	if v, _ := gate.Evaluate("throughput", abs, 100, window(sample(200, 20)), stable); v != gate.Fail {
		t.Errorf("absolute throughput uses the raw rate: %v, want Fail at 200/s", v)
	}
}

// Warmup: after a weight change, samples are judged only from warmup on.
func TestJudgeableAfterWarmup(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var samples []*cutoverv1.Sample
	judgeable := func(warmup time.Duration) time.Time {
		return (&gate.Compiled{Warmup: warmup}).After(gate.Shifted(samples))
	}
	add := func(at time.Duration, weight int32) {
		samples = append(samples, &cutoverv1.Sample{Requests: 10, Weight: weight, IntervalMicros: 100_000, EndTime: timestamppb.New(t0.Add(at))})
	}
	for i := 1; i <= 20; i++ { // 2 s at 20%
		add(time.Duration(i)*100*time.Millisecond, 20)
	}
	if got, want := judgeable(time.Second), t0.Add(time.Second); !got.Equal(want) {
		t.Errorf("at 20%%: judgeable from %s, want %s", got.Sub(t0), want.Sub(t0))
	}
	for i := 21; i <= 25; i++ { // then 50%
		add(time.Duration(i)*100*time.Millisecond, 50)
	}
	after := judgeable(time.Second)
	if want := t0.Add(3 * time.Second); !after.Equal(want) {
		t.Errorf("after the shift to 50%%: judgeable from %s, want %s", after.Sub(t0), want.Sub(t0))
	}
	var w gate.Window
	gate.Recent(&w, samples, time.Second, after)
	if w.Requests != 0 {
		t.Errorf("window during warmup holds %d requests, want none", w.Requests)
	}
	add(3600*time.Millisecond, 50) // traffic resumes after a gap: a shift too
	if got, want := judgeable(time.Second), t0.Add(4500*time.Millisecond); !got.Equal(want) {
		t.Errorf("after a gap: judgeable from %s, want %s", got.Sub(t0), want.Sub(t0))
	}
	if got := judgeable(0); !got.IsZero() {
		t.Errorf("without warmup: %s, want the zero time", got)
	}
}
