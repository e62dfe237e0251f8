package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// clientAnswer is one request's outcome: the version that answered, and when.
type clientAnswer struct {
	version string
	at      time.Time
}

// clients sends requests to a cluster's proxy from a few goroutines, at
// most limit each, until stopped, and keeps every answer.
type clients struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	got    []clientAnswer
}

func (f *twoRegions) clients(ctx context.Context, cluster string, limit int) *clients {
	ctx, cancel := context.WithCancel(ctx)
	c := &clients{cancel: cancel}
	for range 4 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			client := harness.NewClient()
			defer client.CloseIdleConnections()
			for range limit {
				if ctx.Err() != nil {
					return
				}
				v := harness.Hit(ctx, client, harness.URL(f.listen[cluster]))
				if ctx.Err() != nil {
					return // cut short by stop, not an answer
				}
				c.mu.Lock()
				c.got = append(c.got, clientAnswer{v, time.Now()})
				c.mu.Unlock()
			}
		}()
	}
	return c
}

// stop ends the load and returns every answer.
func (c *clients) stop() []clientAnswer {
	c.cancel()
	c.wg.Wait()
	return c.got
}

// byVersion counts the answers received before (or, with after, from) t.
func byVersion(answers []clientAnswer, t time.Time, after bool) map[string]int {
	out := map[string]int{}
	for _, a := range answers {
		if a.at.Before(t) != after {
			out[a.version]++
		}
	}
	return out
}

// stepCompleted is when a step of a wave completed, per the timeline.
func stepCompleted(r *cutoverv1.Rollout, wave, step int32) (time.Time, string, bool) {
	for _, e := range r.GetStatus().GetTimeline() {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED && e.GetWave() == wave && e.GetStep() == step {
			return e.GetTime().AsTime(), e.GetMessage(), true
		}
	}
	return time.Time{}, "", false
}

// shadowed reports whether the cluster's agent reports the revision on the
// SHADOW track with mirrored copies answered.
func shadowed(r *cutoverv1.Rollout, cluster, revision string) bool {
	for _, cp := range r.GetStatus().GetClusters() {
		for _, o := range cp.GetObservedRevisions() {
			if cp.GetCluster() == cluster && o.GetRevision() == revision && o.GetTrack() == cutoverv1.Track_TRACK_SHADOW && o.GetRequests() > 0 {
				return true
			}
		}
	}
	return false
}

// watchWeights records, from the watch stream, the highest canary weight
// any cluster of the rollout was given; the watch may skip states, the
// timeline does not.
func (f *twoRegions) watchWeights(ctx context.Context, number int64) func() int32 {
	f.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	stream, err := f.env.Rollouts.WatchRollout(ctx, &cutoverv1.WatchRolloutRequest{Name: "demo"})
	if err != nil {
		f.t.Fatalf("watch: %v", err)
	}
	var top int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if st := resp.GetRollout().GetStatus(); st.GetRolloutNumber() == number {
				for _, cp := range st.GetClusters() {
					top = max(top, cp.GetCanaryWeight())
				}
			}
		}
	}()
	return func() int32 { cancel(); <-done; return top }
}

// The seed's trading flow on two regions: v2 first shadows 100% of live
// requests for 2 s, judged by a microsecond latency gate against v1, while
// clients only ever get v1's answers; then it takes 1, 5, 25 and 100% of
// real traffic, wave by wave, and ends healthy.
func TestCanaryShadowFirstThenWeights(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")

	// Given load on us-east and a canary of v2 that shadows first.
	load := f.clients(ctx, "us-east", 20000)
	defer load.stop()
	a := f.app("v2", "shadow: {mirrorPercent: 100, duration: 2s}",
		"setWeight: 1", "pause: {duration: 500ms}", "setWeight: 5", "pause: {duration: 500ms}",
		"setWeight: 25", "pause: {duration: 500ms}", "setWeight: 100")
	// Loose enough for fresh processes under -race on two cores; the
	// second test shows it catches a shadow 20 ms slower.
	a.Gates = []string{"name: p99, metric: latencyP99, condition: '<= stable + 2000us', window: 1s, minSamples: 50, failureLimit: 3, warmup: 1s"}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}

	// Then the new revision gets mirrored copies on the SHADOW track.
	f.wait(ctx, "v2 shadowing in us-east", func(r *cutoverv1.Rollout) bool {
		st := r.GetStatus()
		return st.GetCurrentWave() == 0 && st.GetCurrentStep() == 0 && shadowed(r, "us-east", "v2")
	})
	r := f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	answers := load.stop()

	// Clients got only v1's answers until the shadow step completed, and
	// v2's afterwards.
	shadowEnd, msg, ok := stepCompleted(r, 0, 0)
	if !ok || msg != "shadow 100% for 2s" {
		t.Fatalf("timeline of wave us-east: step 0 completed %t as %q, want \"shadow 100%% for 2s\"", ok, msg)
	}
	if during := byVersion(answers, shadowEnd, false); during["v1"] == 0 || len(during) != 1 {
		t.Errorf("during the shadow clients got %v, want v1 only", during)
	}
	if after := byVersion(answers, shadowEnd, true); after["v2"] == 0 || after["error"] > 0 {
		t.Errorf("after the shadow clients got %v, want v2 among them and no errors", after)
	}
	var steps []string
	for s := int32(0); s < 7; s++ {
		_, m, _ := stepCompleted(r, 0, s)
		steps = append(steps, m)
	}
	if got := fmt.Sprint(steps); got != "[shadow 100% for 2s setWeight 1 pause 500ms setWeight 5 pause 500ms setWeight 25 pause 500ms]" {
		t.Errorf("us-east steps completed: %s", got)
	}
	for _, cp := range r.GetStatus().GetClusters() {
		if cp.GetMirrorPercent() != 0 {
			t.Errorf("%s still mirrors %d%% after the promotion", cp.GetCluster(), cp.GetMirrorPercent())
		}
	}
	f.expectShare(ctx, "us-east", "v2", 1, 0)
	f.expectShare(ctx, "eu-west", "v2", 1, 0)
}

// A shadow 20 ms slower than stable fails the microsecond latency gate
// during the shadow step: the rollout aborts before any real traffic moved
// (no step completed, no cluster ever given a weight), clients only ever
// got v1, and the mirroring stops.
func TestGateAbortsASlowShadowBeforeTrafficMoves(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	before, err := f.env.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	weights := f.watchWeights(ctx, before.GetStatus().GetRolloutNumber()+1)

	load := f.clients(ctx, "us-east", 20000)
	defer load.stop()
	a := f.app("v2", "shadow: {mirrorPercent: 100, duration: 20s}", "setWeight: 1", "setWeight: 100")
	a.ExtraArgs = append(a.ExtraArgs, "--latency", "20ms")
	a.Gates = []string{"name: p99, metric: latencyP99, condition: '<= stable + 2000us', window: 1s, minSamples: 50, failureLimit: 2"}
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	answers := load.stop()

	st := r.GetStatus()
	if msg := st.GetMessage(); !containsAll(msg, "gate p99", "latencyP99", "failed in us-east") {
		t.Errorf("abort message lacks the evidence: %q", msg)
	}
	if st.GetCurrentWave() != 0 || st.GetCurrentStep() != 0 {
		t.Errorf("aborted at wave %d step %d, want during the shadow (wave 0 step 0)", st.GetCurrentWave(), st.GetCurrentStep())
	}
	for _, e := range st.GetTimeline() {
		if e.GetType() == cutoverv1.TimelineEventType_TIMELINE_EVENT_TYPE_STEP_COMPLETED {
			t.Errorf("a step completed before the abort: %v", e)
		}
	}
	if top := weights(); top > 0 {
		t.Errorf("a cluster was given %d%% of real traffic", top)
	}
	if got := byVersion(answers, time.Now(), false); got["v1"] == 0 || len(got) != 1 {
		t.Errorf("clients got %v, want v1 only", got)
	}
	for _, cp := range st.GetClusters() {
		if cp.GetCanaryWeight() != 0 || cp.GetMirrorPercent() != 0 {
			t.Errorf("%s after the abort: weight %d, mirror %d", cp.GetCluster(), cp.GetCanaryWeight(), cp.GetMirrorPercent())
		}
		for _, o := range cp.GetObservedRevisions() {
			if o.GetRevision() != "v1" {
				t.Errorf("%s still runs %s on %s after the abort", cp.GetCluster(), o.GetRevision(), o.GetTrack())
			}
		}
	}
}
