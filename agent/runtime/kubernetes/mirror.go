package kubernetes

import (
	"errors"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Mirroring is the agent's proxy's job, and this runtime routes through
// Services and HTTPRoutes instead.
var (
	errShadowStrategy = errors.New("strategy shadow mirrors requests through the agent's proxy: the kubernetes runtime has none (use the local runtime)")
	errShadowStep     = errors.New("a canary shadow step mirrors requests through the agent's proxy: the kubernetes runtime has none (use the local runtime, or start the canary with setWeight)")
)

// refuseMirror explains why a desired state that mirrors requests to a
// shadow (the shadow strategy, or a canary's shadow step) cannot be placed;
// nil when it mirrors nothing.
func refuseMirror(d *cutoverv1.DesiredApp) error {
	if d.GetStrategy() == "shadow" {
		return errShadowStrategy
	}
	if d.GetMirrorPercent() > 0 {
		return errShadowStep
	}
	for _, dr := range d.GetRevisions() {
		if dr.GetTrack() == cutoverv1.Track_TRACK_SHADOW {
			return errShadowStep
		}
	}
	return nil
}
