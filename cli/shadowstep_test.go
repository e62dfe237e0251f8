package cli

import (
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

func TestStepActionShadow(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		step *cutoverv1.ShadowStep
		want string
	}{
		{&cutoverv1.ShadowStep{MirrorPercent: 100, Duration: "60s"}, "shadow 100% for 60s"},
		{&cutoverv1.ShadowStep{MirrorPercent: 20}, "shadow 20% until promoted"},
	} {
		if got := rollout.DescribeStep(&cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Shadow{Shadow: tt.step}}); got != tt.want {
			t.Errorf("DescribeStep(%v) = %q, want %q", tt.step, got, tt.want)
		}
	}
}
