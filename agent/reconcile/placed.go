package reconcile

import (
	"context"
	"time"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// placeTimeout bounds one pass of a placer over an app's objects.
const placeTimeout = 30 * time.Second

// passPlaced is a pass for a runtime that places apps itself: it hands the
// placer the desired state, runs the preview's smoke checks, and samples,
// guards and reports as for the local runtime.
func (w *worker) passPlaced(ctx context.Context) {
	w.load()
	pctx, cancel := context.WithTimeout(ctx, placeTimeout)
	pl, err := w.placer.Place(pctx, w.desired, w.guardTripped != "")
	cancel()
	w.placeErr = ""
	if err != nil {
		w.placeErr = err.Error()
	}
	// Gates without samples would never decide anything: say so rather
	// than let the rollout pass unmeasured.
	if p := w.desired.GetMetrics().GetProvider(); (p == "" || p == spec.ProviderProxy) && len(w.desired.GetGuardGates()) > 0 && w.placeErr == "" {
		w.placeErr = "gates need spec.metrics.provider scrape or prometheus here: the kubernetes runtime has no proxy that measures requests"
	}
	w.placement = pl
	byName := map[string]string{}
	for key, rev := range w.revs {
		byName[rev.GetName()] = key
	}
	w.inForce = map[string]int32{}
	for _, o := range pl.Revisions {
		if key, ok := byName[o.GetRevision()]; ok {
			w.inForce[key] = o.GetWeight()
		}
	}
	w.ensureSmoke(w.previewKey(), pl.Preview, pl.Preview != "")
	w.ensureSource()
	w.noteErrors()
	w.reportPlaced(pl)
	w.sample()
	w.guard()
	w.noteHolding()
}

// reportPlaced publishes the placer's view of the app.
func (w *worker) reportPlaced(pl runtime.Placement) {
	obs := &cutoverv1.ObservedApp{
		App:                w.app,
		ObservedGeneration: w.desired.GetGeneration(),
		Error:              w.lastErr,
		GuardTripped:       w.guardTripped,
		Listen:             pl.Listen,
		PreviewListen:      pl.PreviewListen,
	}
	tracks := map[string]cutoverv1.Track{}
	for _, dr := range w.desired.GetRevisions() {
		tracks[dr.GetRevision().GetName()] = dr.GetTrack()
	}
	smoke, passed := w.smokeResult()
	for _, o := range pl.Revisions {
		o.Track = tracks[o.GetRevision()]
		if o.GetTrack() == cutoverv1.Track_TRACK_PREVIEW {
			o.Smoke = smoke
		}
		obs.Revisions = append(obs.Revisions, o)
	}
	obs.Converged = pl.Converged && w.lastErr == "" && passed
	w.publish(obs)
}
