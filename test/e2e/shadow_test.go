package e2e

import (
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// time0 is a moment before any test: no eu-west ordering constraint.
var time0 time.Time

// Given v1 stable, a shadow of v2 with 50% mirroring: clients only ever get
// v1's answers while v2 receives about half of the requests as copies, and
// the rollout reports the shadow's status codes and latency.
func TestShadowMirrorsWithoutAffectingClients(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	a := f.app("v2")
	a.Shadow = &harness.Shadow{MirrorPercent: 50}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "shadow up in us-east", harness.AtStep(0, 1))
	f.expectShare(ctx, "us-east", "v1", 1, 0) // 400 requests, every answer from v1

	var shadow *cutoverv1.ObservedRevision
	f.wait(ctx, "shadow stats reported", func(r *cutoverv1.Rollout) bool {
		for _, cp := range r.GetStatus().GetClusters() {
			for _, o := range cp.GetObservedRevisions() {
				if cp.GetCluster() == "us-east" && o.GetRevision() == "v2" && o.GetRequests() >= 120 {
					shadow = o
					return true
				}
			}
		}
		return false
	})
	if n := shadow.GetRequests(); n < 120 || n > 280 {
		t.Errorf("the shadow got %d copies of 400 requests at 50%%, want about 200", n)
	}
	if shadow.GetStatusCodes()[200] != shadow.GetRequests() || shadow.GetLatencyP99Micros() <= 0 {
		t.Errorf("shadow stats: codes %v, p99 %dµs", shadow.GetStatusCodes(), shadow.GetLatencyP99Micros())
	}
	// The stable revision's own answers are counted the same way, for the
	// comparison.
	f.wait(ctx, "stable stats reported", func(r *cutoverv1.Rollout) bool {
		for _, cp := range r.GetStatus().GetClusters() {
			for _, o := range cp.GetObservedRevisions() {
				if cp.GetCluster() == "us-east" && o.GetRevision() == "v1" {
					return o.GetRequests() >= 400 && o.GetStatusCodes()[200] == o.GetRequests() && o.GetLatencyP99Micros() > 0
				}
			}
		}
		return false
	})
	if shadow.GetTrack() != cutoverv1.Track_TRACK_SHADOW || shadow.GetWeight() != 0 {
		t.Errorf("shadow revision reported on track %s with weight %d", shadow.GetTrack(), shadow.GetWeight())
	}

	f.promote(ctx)
	f.wait(ctx, "shadow up in eu-west", harness.AtStep(1, 1))
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Gates judge a shadow on its mirrored copies: a shadow answering 30% of
// them with errors is aborted, while clients only ever saw stable.
func TestGateAbortsAFailingShadow(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	stop := f.hammer(ctx, "us-east")
	defer stop()
	a := f.app("v2")
	a.Shadow = &harness.Shadow{MirrorPercent: 50, Duration: "20s"}
	a.ExtraArgs = append(a.ExtraArgs, "--error-rate", "0.3")
	a.Gates = []string{"name: shadow-errors, metric: errorRate, condition: '<= 0.05', window: 1s, minSamples: 50"}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !containsAll(msg, "gate shadow-errors", "errorRate", "failed in us-east") {
		t.Errorf("abort message lacks the evidence: %q", msg)
	}
	f.expectShare(ctx, "us-east", "v1", 1, 0)
}
