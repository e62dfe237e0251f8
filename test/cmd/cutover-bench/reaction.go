package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// The gates of the two rollout benchmarks.
var (
	// reactionGates: the critical error gate a bad canary trips.
	reactionGates = []string{"name: errors, metric: errorRate, condition: '<= 0.01', window: 1s, minSamples: 50"}
	// goodGates: the banking example's gates plus the latency judge, which
	// a good canary with the same noise as stable must pass. The judge's
	// minimum effect is 0.15: on this shared 2-core machine, identical
	// builds at 20% and 80% of the traffic already differ by P(new slower)
	// of about 0.6 (the canary's process is less busy and wakes up for
	// each request), which a minimum effect of 0.1 takes for a regression.
	// The p99 and throughput gates wait for 500 requests over 3 s: a p99 of
	// a few hundred requests is their second or third slowest, and the
	// share of a 20% canary over 1 s varies by several percent (each
	// request is routed at random by weight), both too noisy to compare.
	goodGates = []string{
		"name: errors, metric: errorRate, condition: '<= 0.001', window: 1s, minSamples: 100",
		"name: latency, metric: latencyP99, condition: '<= 1.5x stable', window: 3s, minSamples: 500, failureLimit: 3, warmup: 1s",
		"name: throughput, metric: throughput, condition: '>= 0.8x stable', window: 3s, minSamples: 500, failureLimit: 3, warmup: 1s",
		"name: judge, metric: latency, judge: {confidence: 0.99, minEffect: 0.15}, window: 1s, minSamples: 100, warmup: 1s",
	}
)

// rig is a real control plane and one agent (processes, on loopback)
// with the demo app behind the agent's proxy.
type rig struct {
	env    *harness.Env
	dir    string
	listen string
	app    string
	load   *traffic
}

func newRig(ctx context.Context, dir, app string, rate int) (*rig, error) {
	bins, err := harness.FindBinaries(ctx, dir)
	if err != nil {
		return nil, err
	}
	env, err := harness.NewEnv(ctx, bins, dir)
	if err != nil {
		return nil, err
	}
	if _, err := env.StartAgent(ctx, "bench", "local"); err != nil {
		_ = env.Close()
		return nil, err
	}
	listen, err := harness.FreeAddr()
	if err != nil {
		_ = env.Close()
		return nil, err
	}
	return &rig{env: env, dir: dir, listen: listen, app: app, load: newTraffic(harness.URL(listen), rate)}, nil
}

func (r *rig) close() error {
	r.load.stop()
	return r.env.Close()
}

func (r *rig) manifest(rev string, gates []string, args []string, steps ...string) string {
	return harness.App{
		Name: r.app, Revision: rev, Command: r.env.Bins.Path(harness.DemoApp), Instances: 1,
		ExtraArgs: args, Waves: [][]string{{"bench"}}, Listen: map[string]string{"bench": r.listen},
		Steps: steps, Gates: gates,
	}.Manifest()
}

func (r *rig) apply(ctx context.Context, manifest string) error {
	_, err := r.env.Apply(ctx, manifest)
	return err
}

func (r *rig) wait(ctx context.Context, what string, cond func(*cutoverv1.Rollout) bool) (*cutoverv1.Rollout, error) {
	return r.env.WaitRollout(ctx, r.app, what, cond)
}

// gateReaction runs bad canaries one after another under load: each
// canary serves 20% of the traffic, healthy at first, until an error file
// turns every one of its answers into a 500. It returns, per trial, the
// time from the first failed request the canary served to the first
// request sent after the last one the proxy routed to the canary.
//
// It also returns each trial's pre-flight: from the apply to the
// results of every agent's dry run being recorded.
func gateReaction(ctx context.Context, trials, rate int) (reaction, preflight []time.Duration, err error) {
	dir, err := os.MkdirTemp("", "cutover-bench-reaction-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	r, err := newRig(ctx, dir, "fast", rate)
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	if err := r.apply(ctx, r.manifest("s0", nil, nil, "setWeight: 20")); err != nil {
		return nil, nil, err
	}
	if _, err := r.wait(ctx, "stable", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY)); err != nil {
		return nil, nil, err
	}
	go r.load.run(ctx)
	for i := range trials {
		rev := fmt.Sprintf("c%03d", i)
		bad := filepath.Join(dir, "bad-"+rev)
		if err := r.apply(ctx, r.manifest(rev, reactionGates, []string{"--error-file", bad}, "setWeight: 20", "pause: {}")); err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w", i, err)
		}
		at, err := r.wait(ctx, rev+" at 20%", harness.AtStepSettled(0, 1))
		if err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w", i, err)
		}
		for _, run := range at.GetStatus().GetChecks() {
			if run.GetPhase() == "preflight" && run.GetEndTime() != nil {
				preflight = append(preflight, run.GetEndTime().AsTime().Sub(run.GetStartTime().AsTime()))
			}
		}
		// Healthy canary traffic first, so the gate has a full window.
		start := time.Now()
		if err := harness.Poll(ctx, 20*time.Millisecond, rev+" serving", func() (bool, error) {
			return r.load.served(rev, start) >= 200, nil
		}); err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w", i, err)
		}
		if err := os.WriteFile(bad, nil, 0o644); err != nil {
			return nil, nil, err
		}
		if _, err := r.wait(ctx, rev+" aborted", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED)); err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w", i, err)
		}
		time.Sleep(200 * time.Millisecond) // requests in flight at the switch are answered
		d, err := r.load.reaction(rev, start)
		if err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w", i, err)
		}
		reaction = append(reaction, d)
	}
	return reaction, preflight, nil
}

// falseRollbacks runs good canaries, with the same noise as stable, through
// 20% and 50% under the goodGates, and counts those aborted or paused by
// a gate.
func falseRollbacks(ctx context.Context, canaries, rate int) (int, error) {
	dir, err := os.MkdirTemp("", "cutover-bench-false-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	r, err := newRig(ctx, dir, "steady", rate)
	if err != nil {
		return 0, err
	}
	defer r.close()
	noise := []string{"--latency", "2ms", "--jitter", "1ms"}
	if err := r.apply(ctx, r.manifest("n0", nil, noise, "setWeight: 20")); err != nil {
		return 0, err
	}
	if _, err := r.wait(ctx, "stable", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY)); err != nil {
		return 0, err
	}
	go r.load.run(ctx)
	rolledBack := 0
	for i := range canaries {
		rev := fmt.Sprintf("n%03d", i+1)
		if err := r.apply(ctx, r.manifest(rev, goodGates, noise, "setWeight: 20", "pause: {duration: 4s}", "setWeight: 50", "pause: {duration: 3s}")); err != nil {
			return 0, fmt.Errorf("canary %d: %w", i, err)
		}
		res, err := r.wait(ctx, rev+" finished", func(ro *cutoverv1.Rollout) bool {
			p := ro.GetStatus().GetPhase()
			return ro.GetSpec().GetRevision().GetName() == rev && harness.Settled(ro) &&
				(p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY || p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || p == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED)
		})
		if err != nil {
			return 0, fmt.Errorf("canary %d: %w", i, err)
		}
		if res.GetStatus().GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY {
			rolledBack++
			st := res.GetStatus()
			fmt.Fprintf(os.Stderr, "cutover-bench: good canary %s ended %s at step %d, %s into it: %s\n", rev, st.GetPhase(), st.GetCurrentStep(),
				st.GetEndTime().AsTime().Sub(st.GetStepStartTime().AsTime()).Round(time.Millisecond), st.GetMessage())
			if res.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_PAUSED {
				if _, err := r.env.Rollouts.AbortRollout(ctx, &cutoverv1.AbortRolloutRequest{Name: r.app}); err != nil {
					return 0, err
				}
			}
		}
	}
	return rolledBack, nil
}

// traffic sends requests at a steady rate through the proxy from a pool
// of workers and records which revision answered each, and how.
type traffic struct {
	url    string
	rate   int
	client *http.Client
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	hits []hitRecord
}

type hitRecord struct {
	sent     time.Time
	revision string
	failed   bool
}

func newTraffic(url string, rate int) *traffic {
	return &traffic{url: url, rate: rate, done: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (t *traffic) stop() { t.once.Do(func() { close(t.done) }) }

// run sends rate requests per second until stopped: a ticker hands out
// one token per request, and 32 workers take them, so a slow answer does
// not slow the rate. Bounded by ctx and stop.
func (t *traffic) run(ctx context.Context) {
	tokens := make(chan time.Time, 1024)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent := range tokens {
				t.hit(ctx, sent)
			}
		}()
	}
	defer wg.Wait()
	defer close(tokens)
	tick := time.NewTicker(time.Second / time.Duration(t.rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.done:
			return
		case <-tick.C:
			select {
			case tokens <- time.Now():
			default: // the workers are saturated: drop rather than burst
			}
		}
	}
}

func (t *traffic) hit(ctx context.Context, _ time.Time) {
	sent := time.Now()
	rec := hitRecord{sent: sent, failed: true}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err == nil {
		if resp, err := t.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			rec.revision = resp.Header.Get("X-Cutover-Revision")
			rec.failed = resp.StatusCode >= 500
		}
	}
	t.mu.Lock()
	t.hits = append(t.hits, rec)
	t.mu.Unlock()
}

// since returns the records of requests sent at or after from, by send
// time, and forgets older ones.
func (t *traffic) since(from time.Time) []hitRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hits = slices.DeleteFunc(t.hits, func(h hitRecord) bool { return h.sent.Before(from.Add(-time.Second)) })
	out := slices.DeleteFunc(slices.Clone(t.hits), func(h hitRecord) bool { return h.sent.Before(from) })
	slices.SortFunc(out, func(a, b hitRecord) int { return a.sent.Compare(b.sent) })
	return out
}

// served counts the successful answers from rev to requests sent since from.
func (t *traffic) served(rev string, from time.Time) int {
	n := 0
	for _, h := range t.since(from) {
		if h.revision == rev && !h.failed {
			n++
		}
	}
	return n
}

// reaction measures one trial: from the first failed answer of rev to
// the first request sent after the last one routed to rev.
func (t *traffic) reaction(rev string, from time.Time) (time.Duration, error) {
	hits := t.since(from)
	first, last := -1, -1
	for i, h := range hits {
		if h.revision == rev && h.failed && first < 0 {
			first = i
		}
		if h.revision == rev {
			last = i
		}
	}
	switch {
	case first < 0:
		return 0, errors.New("the canary never answered an error")
	case last+1 >= len(hits):
		return 0, errors.New("the canary still had traffic at the end")
	}
	return hits[last+1].sent.Sub(hits[first].sent), nil
}

// quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
