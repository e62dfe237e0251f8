package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/cutover-dev/cutover/test/harness"
)

// A setHeaderRoute step sends every request carrying the header to the new
// revision while everyone else stays on stable; a weight step keeps it.
func TestHeaderRouteSendsMatchingRequestsToTheCanary(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	f.deploy(ctx, "v1")
	if _, err := f.env.Apply(ctx, f.app("v2", "setHeaderRoute: {header: X-Canary, value: always}", "pause: {}",
		"setWeight: 50", "pause: {}").Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "header route in force", harness.AtStep(0, 1))
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectHeaderShare(ctx, "us-east", "always", "v2", 100)
	f.expectHeaderShare(ctx, "us-east", "never", "v1", 100)
	f.expectHeaderShare(ctx, "eu-west", "always", "v1", 100) // wave 2 has not started

	f.promote(ctx)
	f.wait(ctx, "at 50%", harness.AtStep(0, 3))
	f.expectShare(ctx, "us-east", "v2", 0.5, tolerance)
	f.expectHeaderShare(ctx, "us-east", "always", "v2", 100)
}

// expectHeaderShare sends n requests with X-Canary: value and asserts that
// all are served by version.
func (f *twoRegions) expectHeaderShare(ctx context.Context, cluster, value, version string, n int) {
	f.t.Helper()
	got := 0
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, harness.URL(f.listen[cluster]), nil)
		if err != nil {
			f.t.Fatal(err)
		}
		req.Header.Set("X-Canary", value)
		resp, err := f.client.Do(req)
		if err != nil {
			f.t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.Header.Get("X-Version") == version {
			got++
		}
	}
	if got != n {
		f.t.Errorf("%s with X-Canary: %s: %d of %d requests served by %s", cluster, value, got, n, version)
	}
}
