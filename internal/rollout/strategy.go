package rollout

import (
	"errors"
	"fmt"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Strategy is how a rollout moves traffic. It turns a spec into the steps
// every wave (or group) goes through, and a cluster's progress into what its
// agent must run. Implementations (one per file: canary.go, bluegreen.go,
// rolling.go, shadow.go) are stateless; every method is pure, idempotent
// and safe for concurrent use.
type Strategy interface {
	// Steps is the step list each wave goes through; completing the last
	// one promotes the wave.
	Steps(s *cutoverv1.RolloutSpec) []*cutoverv1.CanaryStep
	// Shift fills d for a cluster in progress that serves stable and moves
	// to next: the revisions with their weights and instance counts, and
	// any preview address, header route or mirror share.
	Shift(s *cutoverv1.RolloutSpec, cp *cutoverv1.ClusterProgress, stable, next *cutoverv1.Revision, d *cutoverv1.DesiredApp)
	// KeepWarm is how long the revision a wave's promotion replaces keeps
	// running without traffic, for an instant switch back; 0 stops it at
	// once.
	KeepWarm(s *cutoverv1.RolloutSpec) time.Duration
	// Failure describes why the wave's clusters failed, or "" when they
	// did not.
	Failure(s *cutoverv1.RolloutSpec, wave []*cutoverv1.ClusterProgress) string
}

// ErrUnknownStrategy is returned for a spec whose strategy this build does
// not know; validation refuses such a spec before it reaches the engine.
var ErrUnknownStrategy = errors.New("unknown strategy")

// StrategyOf returns the strategy of a spec. It never falls back silently.
func StrategyOf(s *cutoverv1.RolloutSpec) (Strategy, error) {
	switch x := s.GetStrategy().GetStrategy().(type) {
	case *cutoverv1.Strategy_Canary:
		return canary{}, nil
	case *cutoverv1.Strategy_BlueGreen:
		return blueGreen{}, nil
	case *cutoverv1.Strategy_Rolling:
		return rolling{}, nil
	case *cutoverv1.Strategy_Shadow:
		return shadow{}, nil
	default:
		return nil, fmt.Errorf("%w %T", ErrUnknownStrategy, x)
	}
}

// Steps is the step list every wave of the spec goes through; nil for a
// spec without a known strategy.
func Steps(s *cutoverv1.RolloutSpec) []*cutoverv1.CanaryStep {
	st, err := StrategyOf(s)
	if err != nil {
		return nil
	}
	return st.Steps(s)
}

func track(t cutoverv1.Track, rev *cutoverv1.Revision, w int32) *cutoverv1.DesiredRevision {
	return &cutoverv1.DesiredRevision{Track: t, Revision: rev, Weight: w}
}

func step(x any) *cutoverv1.CanaryStep {
	switch v := x.(type) {
	case *cutoverv1.CanaryStep_SetWeight:
		return &cutoverv1.CanaryStep{Step: v}
	case *cutoverv1.CanaryStep_Pause:
		return &cutoverv1.CanaryStep{Step: v}
	case *cutoverv1.CanaryStep_Analysis:
		return &cutoverv1.CanaryStep{Step: v}
	case *cutoverv1.CanaryStep_SetCanaryScale:
		return &cutoverv1.CanaryStep{Step: v}
	}
	panic(fmt.Sprintf("step: %T is not a step", x))
}
