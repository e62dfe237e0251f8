package gate

import (
	"fmt"
	"math"
)

// JudgeResult is the evidence of a Mann-Whitney comparison.
type JudgeResult struct {
	// U of the new revision against stable.
	U float64
	// Z is U standardised (with the tie correction).
	Z float64
	// P is the one-sided p-value that the new revision is not slower.
	P float64
	// Effect is the probability that a request of the new revision is
	// slower than one of stable (ties count half): 0.5 means no difference.
	Effect float64
	// N1, N2 are the sample sizes (new, stable).
	N1, N2 uint64
}

func (r JudgeResult) String() string {
	return fmt.Sprintf("Mann-Whitney U %.0f, z %.2f, p %.3g, P(new slower) %.3f, n %d vs %d", r.U, r.Z, r.P, r.Effect, r.N1, r.N2)
}

// Judge compares the new revision's latency distribution with stable's with
// a one-sided Mann-Whitney U test over the histograms' buckets (values in
// one bucket are ties). It fails when the new revision is slower with the
// given confidence and by at least minEffect; below minSamples on either
// side it is inconclusive.
func Judge(canary, stable *Window, confidence, minEffect float64, minSamples int64) (Verdict, JudgeResult) {
	n1, n2 := canary.Latency.Total, stable.Latency.Total
	res := JudgeResult{N1: n1, N2: n2, P: 1, Effect: 0.5}
	if int64(n1) < minSamples || int64(n2) < minSamples || n1 == 0 || n2 == 0 {
		return Inconclusive, res
	}
	// U counts, over every pair (new, stable), 1 when the new one is
	// slower and 0.5 when they tie; ties also shrink the variance.
	var below, ties float64
	for i := range canary.Latency.Counts {
		c, s := float64(canary.Latency.Counts[i]), float64(stable.Latency.Counts[i])
		res.U += c * (below + s/2)
		below += s
		t := c + s
		ties += t*t*t - t
	}
	N := float64(n1 + n2)
	mean := float64(n1) * float64(n2) / 2
	variance := float64(n1) * float64(n2) / 12 * ((N + 1) - ties/(N*(N-1)))
	if variance <= 0 {
		return Pass, res // every request in one bucket: no difference to find
	}
	res.Z = (res.U - mean) / math.Sqrt(variance)
	res.P = 0.5 * math.Erfc(res.Z/math.Sqrt2)
	res.Effect = res.U / (float64(n1) * float64(n2))
	if res.P < 1-confidence && res.Effect-0.5 >= minEffect {
		return Fail, res
	}
	return Pass, res
}
