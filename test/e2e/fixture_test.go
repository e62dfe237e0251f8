package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// twoRegions is the fixture most tests use: a control plane, agents in
// us-east and eu-west, and the demo app's proxy address in each.
type twoRegions struct {
	t      *testing.T
	env    *harness.Env
	listen map[string]string
	client *http.Client
	id     string // marks this test's app processes in their environment
	// metrics is spec.metrics of every app rendered (YAML flow style).
	metrics string
	// args are demo-app flags of every revision, e.g. its noise.
	args []string
}

var regions = []harness.Region{{Cluster: "us-east", Region: "us-east"}, {Cluster: "eu-west", Region: "eu-west"}}

func newTwoRegions(t *testing.T) *twoRegions {
	t.Helper()
	return newTwoRegionsWith(t, nil)
}

// newTwoRegionsWith is newTwoRegions with more cutover-server flags.
func newTwoRegionsWith(t *testing.T, serverFlags []string) *twoRegions {
	t.Helper()
	env := harness.TestEnvWith(t, bins, serverFlags, regions...)
	listen := map[string]string{}
	addrs, err := harness.FreeAddrs(len(regions))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range regions {
		listen[r.Cluster] = addrs[i]
	}
	return &twoRegions{t: t, env: env, listen: listen, client: harness.NewClient(),
		id: fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())}
}

// app is the demo app at revision rev with the given canary steps, wave
// us-east first, then eu-west.
func (f *twoRegions) app(rev string, steps ...string) harness.App {
	return harness.App{
		Name:      "demo",
		Revision:  rev,
		Command:   f.env.Bins.Path(harness.DemoApp),
		Instances: 2,
		Env:       map[string]string{"CUTOVER_TEST_ID": f.id},
		Waves:     [][]string{{"us-east"}, {"eu-west"}},
		WaveNames: []string{"us-east", "eu-west"},
		Listen:    f.listen,
		Steps:     steps,
		Metrics:   f.metrics,
		ExtraArgs: f.args,
	}
}

func (f *twoRegions) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

// deploy applies rev as the first revision and waits until it is healthy.
func (f *twoRegions) deploy(ctx context.Context, rev string) {
	f.t.Helper()
	if _, err := f.env.Apply(ctx, f.app(rev, "setWeight: 50").Manifest()); err != nil {
		f.t.Fatalf("apply %s: %v", rev, err)
	}
	f.wait(ctx, "healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
}

func (f *twoRegions) wait(ctx context.Context, what string, cond func(*cutoverv1.Rollout) bool) *cutoverv1.Rollout {
	f.t.Helper()
	r, err := f.env.WaitRollout(ctx, "demo", what, cond)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// share measures, from real responses through a cluster's proxy, the
// fraction served by version.
func (f *twoRegions) share(ctx context.Context, cluster, version string, n int) float64 {
	f.t.Helper()
	counts := harness.Sample(ctx, f.client, harness.URL(f.listen[cluster]), n)
	if counts["error"] > 0 {
		f.t.Errorf("%s: %d of %d requests failed: %v", cluster, counts["error"], n, counts)
	}
	return harness.Share(counts, version)
}

// expectShare asserts the share of version at cluster within tolerance.
func (f *twoRegions) expectShare(ctx context.Context, cluster, version string, want, tolerance float64) {
	f.t.Helper()
	const n = 400
	got := f.share(ctx, cluster, version, n)
	if math.Abs(got-want) > tolerance {
		f.t.Errorf("%s: %.1f%% of %d requests served by %s, want %.0f%% ± %.0f", cluster, 100*got, n, version, 100*want, 100*tolerance)
	}
}

func (f *twoRegions) promote(ctx context.Context) {
	f.t.Helper()
	if _, err := f.env.Rollouts.PromoteRollout(ctx, &cutoverv1.PromoteRolloutRequest{Name: "demo"}); err != nil {
		f.t.Fatalf("promote: %v", err)
	}
}
