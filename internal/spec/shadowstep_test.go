package spec_test

import (
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// A canary's shadow step: mirrorPercent 1-100, a positive duration or
// none, each error at the step's field.
func TestShadowStepValidation(t *testing.T) {
	t.Parallel()
	manifest := func(step string) []byte {
		return []byte(`apiVersion: cutover.dev/v1
kind: Rollout
metadata: {name: trading}
spec:
  revision: {name: v2, command: ./engine}
  endpoint: {listen: "127.0.0.1:8100"}
  targets: {waves: [{clusters: [us-east]}]}
  strategy:
    canary:
      steps:
        - ` + step + `
        - setWeight: 1
`)
	}
	tests := []struct {
		step string
		want []string // nil: valid
	}{
		{"shadow: {mirrorPercent: 100, duration: 60s}", nil},
		{"shadow: {mirrorPercent: 1}", nil},
		{"shadow: {mirrorPercent: 0, duration: 60s}",
			[]string{"spec.strategy.canary.steps[0].shadow.mirrorPercent: must be between 1 and 100, got 0"}},
		{"shadow: {}",
			[]string{"spec.strategy.canary.steps[0].shadow.mirrorPercent: must be between 1 and 100, got 0"}},
		{"shadow: {mirrorPercent: 101}",
			[]string{"spec.strategy.canary.steps[0].shadow.mirrorPercent: must be between 1 and 100, got 101"}},
		{"shadow: {mirrorPercent: 50, duration: soon}",
			[]string{`spec.strategy.canary.steps[0].shadow.duration: must be a positive duration such as 30s or 500ms, got "soon"`}},
		{"shadow: {mirrorPercent: 50, duration: -1s}",
			[]string{`spec.strategy.canary.steps[0].shadow.duration: must be a positive duration such as 30s or 500ms, got "-1s"`}},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			t.Parallel()
			m, err := spec.Parse(manifest(tt.step))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if m.Spec.GetStrategy().GetCanary().GetSteps()[0].GetShadow() == nil {
					t.Fatalf("step 0 is not a shadow step: %v", m.Spec.GetStrategy().GetCanary().GetSteps()[0])
				}
				return
			}
			wantErrors(t, err, tt.want)
		})
	}
}

func TestShadowDuration(t *testing.T) {
	t.Parallel()
	if d := spec.ShadowDuration(&cutoverv1.ShadowStep{MirrorPercent: 5, Duration: "60s"}); d != time.Minute {
		t.Errorf("60s: %s", d)
	}
	if d := spec.ShadowDuration(&cutoverv1.ShadowStep{MirrorPercent: 5}); d != 0 {
		t.Errorf("none: %s, want 0 (until promoted)", d)
	}
}

// The trading example follows the seed: shadow 100% for 60 s first, then
// each weight validated for 30 s, with latency gates in microseconds
// relative to stable.
func TestExampleTradingShadowsFirst(t *testing.T) {
	t.Parallel()
	s := parseExample(t, "trading-canary.yaml").Spec
	steps := s.GetStrategy().GetCanary().GetSteps()
	if sh := steps[0].GetShadow(); sh.GetMirrorPercent() != 100 || sh.GetDuration() != "60s" {
		t.Errorf("first step %v, want shadow 100%% for 60s", steps[0])
	}
	for i, st := range steps[1:] {
		if st.GetSetWeight() > 0 && st.GetSetWeight() < 100 {
			if next := steps[i+2]; next.GetPause().GetDuration() != "30s" {
				t.Errorf("setWeight %d is followed by %v, want pause 30s", st.GetSetWeight(), next)
			}
		}
	}
	micro := 0
	for _, g := range s.GetGates() {
		if g.GetMetric() == "latencyP99" && strings.Contains(g.GetCondition(), "stable +") && strings.HasSuffix(g.GetCondition(), "us") {
			micro++
		}
	}
	if micro == 0 {
		t.Errorf("no latencyP99 gate relative to stable in microseconds: %v", s.GetGates())
	}
}
