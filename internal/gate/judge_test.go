package gate_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/histogram"
)

// noisy is a window of n latencies around base with exponential noise.
func noisy(rng *rand.Rand, n int, base time.Duration) *gate.Window {
	var h histogram.Histogram
	for range n {
		h.Record(base + time.Duration(rng.ExpFloat64()*float64(base)/4))
	}
	s := &cutoverv1.Sample{Requests: int64(n), IntervalMicros: 1e6}
	snap := h.Snapshot()
	for i, c := range snap.Counts {
		if c > 0 {
			s.LatencyBuckets = append(s.LatencyBuckets, uint32(i))
			s.LatencyCounts = append(s.LatencyCounts, c)
		}
	}
	w := &gate.Window{}
	w.Add(s)
	return w
}

func TestJudge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	// The same distribution: never a failure, over many trials.
	for trial := range 50 {
		if v, r := gate.Judge(noisy(rng, 500, time.Millisecond), noisy(rng, 500, time.Millisecond), 0.99, 0.1, 100); v != gate.Pass {
			t.Fatalf("trial %d: same distributions judged %v (%s)", trial, v, r)
		}
	}
	// 30% slower: a failure, with a large effect.
	v, r := gate.Judge(noisy(rng, 500, 1300*time.Microsecond), noisy(rng, 500, time.Millisecond), 0.99, 0.1, 100)
	if v != gate.Fail || r.Effect < 0.7 || r.P > 0.001 {
		t.Errorf("30%% slower judged %v (%s)", v, r)
	}
	// Faster is never a failure of a one-sided test.
	if v, r := gate.Judge(noisy(rng, 500, 700*time.Microsecond), noisy(rng, 500, time.Millisecond), 0.99, 0.1, 100); v != gate.Pass {
		t.Errorf("faster judged %v (%s)", v, r)
	}
	// Too few requests: inconclusive.
	if v, _ := gate.Judge(noisy(rng, 50, 2*time.Millisecond), noisy(rng, 500, time.Millisecond), 0.99, 0.1, 100); v != gate.Inconclusive {
		t.Errorf("50 requests judged %v, want inconclusive", v)
	}
	// A tiny but significant difference below the minimum effect passes.
	if v, r := gate.Judge(noisy(rng, 20000, 1020*time.Microsecond), noisy(rng, 20000, time.Millisecond), 0.99, 0.1, 100); v != gate.Pass {
		t.Errorf("2%% slower with minEffect 0.1 judged %v (%s)", v, r)
	}
}
