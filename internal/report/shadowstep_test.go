package report

import (
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// The seed's trading flow reads as it is meant: shadow first, then weights.
func TestStrategyWithShadowStep(t *testing.T) {
	t.Parallel()
	s := &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{Steps: []*cutoverv1.CanaryStep{
		{Step: &cutoverv1.CanaryStep_Shadow{Shadow: &cutoverv1.ShadowStep{MirrorPercent: 100, Duration: "60s"}}},
		{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: 1}},
		{Step: &cutoverv1.CanaryStep_Shadow{Shadow: &cutoverv1.ShadowStep{MirrorPercent: 5}}},
	}}}}
	if got, want := strategy(s), "canary: shadow 100% for 60s → setWeight 1% → shadow 5% until promoted"; got != want {
		t.Errorf("strategy = %q, want %q", got, want)
	}
}
