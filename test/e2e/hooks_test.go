package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// hookService is a real HTTP service on loopback that the hooks call.
type hookService struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newHookService(t *testing.T) *hookService {
	h := &hookService{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.paths = append(h.paths, r.URL.Path)
		h.mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "fine")
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			http.Error(w, "smoke test failed: checkout returned 502", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookService) calls() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.paths, " ")
}

// hooksYAML renders spec.hooks with one hook per phase given.
func hooksYAML(phases map[string]string) string {
	var b strings.Builder
	b.WriteString("  hooks:\n")
	for _, p := range []string{"preRollout", "preTrafficShift", "postPromotion", "onAbort"} {
		if h, ok := phases[p]; ok {
			fmt.Fprintf(&b, "    %s:\n      - %s\n", p, h)
		}
	}
	return b.String()
}

// Hooks gate the rollout at their phases: a failing or timing-out webhook
// and a command exiting non-zero each stop it, with the failure and the
// hook's output in history; passing command hooks see the rollout's and
// the cluster's environment.
func TestHooksGateTheRollout(t *testing.T) {
	f := newTwoRegions(t)
	ctx := f.ctx()
	recv := newHookService(t)
	// Command hooks run only where an agent allows them: elsewhere they
	// fail at once, saying how to allow them.
	a := f.app("v1", "setWeight: 50")
	a.Spec = hooksYAML(map[string]string{"preRollout": `{name: env, command: {command: "true"}}`})
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted: hooks not allowed", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "env in us-east: the agent does not run command hooks: start it with --allow-command-hooks") {
		t.Errorf("abort message %q", msg)
	}
	for _, r := range regions {
		if err := f.env.Agents[r.Cluster].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := f.env.StartAgentWith(ctx, r.Cluster, r.Region, "--runtime", "local", "--allow-command-hooks"); err != nil {
			t.Fatal(err)
		}
	}
	f.deploy(ctx, "v1")

	// 1. Pre-rollout command hooks pass in both clusters; the webhook
	// before the first traffic shift answers 500: aborted, nothing moved.
	a = f.app("v2", "setWeight: 50")
	a.Spec = hooksYAML(map[string]string{
		"preRollout":      `{name: env, command: {command: sh, args: ["-c", "echo $CUTOVER_ROLLOUT $CUTOVER_REVISION $CUTOVER_PHASE $CUTOVER_CLUSTER $ENDPOINT"]}}`,
		"preTrafficShift": fmt.Sprintf(`{name: smoke, retries: 1, http: {url: %q}}`, recv.URL+"/fail"),
	})
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r = f.wait(ctx, "aborted by the webhook", func(r *cutoverv1.Rollout) bool {
		return r.GetSpec().GetRevision().GetName() == "v2" && r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "pre-traffic-shift hooks failed: smoke: HTTP 500 (2 attempts)") {
		t.Errorf("abort message %q", msg)
	}
	neverServed(t, r, "v2")
	pre := results(r, "preRollout")
	if len(pre) != 2 {
		t.Fatalf("pre-rollout results %v, want one per cluster", pre)
	}
	for _, c := range pre {
		want := fmt.Sprintf("demo v2 preRollout %s 127.0.0.1:", c.GetCluster())
		if !c.GetPassed() || c.GetKind() != "command" || !strings.Contains(c.GetOutput(), want) {
			t.Errorf("pre-rollout in %s: %v, want output %q", c.GetCluster(), c, want)
		}
	}
	if s := results(r, "preTrafficShift"); len(s) != 1 || !strings.Contains(s[0].GetOutput(), "checkout returned 502") || s[0].GetAttempts() != 2 {
		t.Errorf("pre-traffic-shift results %v", s)
	}
	if got := recv.calls(); got != "/fail /fail" {
		t.Errorf("receiver got %q", got)
	}

	// 2. A webhook that does not answer within its timeout.
	a = f.app("v3", "setWeight: 50")
	a.Spec = hooksYAML(map[string]string{"preTrafficShift": fmt.Sprintf(`{name: slow, timeout: 300ms, http: {url: %q}}`, recv.URL+"/slow")})
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r = f.wait(ctx, "aborted by the timeout", func(r *cutoverv1.Rollout) bool {
		return r.GetSpec().GetRevision().GetName() == "v3" && r.GetStatus().GetPhase() == cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED
	})
	if msg := r.GetStatus().GetMessage(); !strings.Contains(msg, "slow: POST "+recv.URL+"/slow: no answer within 300ms") {
		t.Errorf("abort message %q", msg)
	}
	neverServed(t, r, "v3")
	// The first failure is in history, with the service's answer.
	hist, err := f.env.Rollouts.ListRolloutHistory(ctx, &cutoverv1.ListRolloutHistoryRequest{Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	var v2 *cutoverv1.Rollout
	for _, h := range hist.GetRollouts() {
		if h.GetSpec().GetRevision().GetName() == "v2" {
			v2 = h
		}
	}
	if s := results(v2, "preTrafficShift"); len(s) != 1 || s[0].GetPassed() || !strings.Contains(s[0].GetOutput(), "checkout returned 502") {
		t.Errorf("v2 in history: %v", s)
	}
	if out := f.cli(ctx, "get", "rollout", "demo"); !strings.Contains(out, "slow: POST "+recv.URL+"/slow: no answer within 300ms") {
		t.Errorf("cutover get demo shows no failed hook:\n%s", out)
	}

	// 3. The first wave is promoted; its post-promotion command fails:
	// the rollout aborts, us-east returns to v1, and the on-abort hook
	// runs there, its output kept.
	a = f.app("v4", "setWeight: 50")
	a.Spec = hooksYAML(map[string]string{
		"preTrafficShift": fmt.Sprintf(`{name: ok, http: {url: %q}}`, recv.URL+"/ok"),
		"postPromotion":   `{name: verify, command: {command: sh, args: ["-c", "echo verifying $CUTOVER_CLUSTER; echo ledger mismatch >&2; exit 3"]}}`,
		"onAbort":         `{name: page, command: {command: sh, args: ["-c", "echo paged on-call for $CUTOVER_REVISION"]}}`,
	})
	if _, err := f.env.Apply(ctx, a.Manifest()); err != nil {
		t.Fatal(err)
	}
	r = f.wait(ctx, "on-abort hooks done", func(r *cutoverv1.Rollout) bool {
		return r.GetSpec().GetRevision().GetName() == "v4" && len(results(r, "onAbort")) > 0
	})
	st := r.GetStatus()
	if st.GetPhase() != cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED || !strings.Contains(st.GetMessage(), "post-promotion hooks failed: verify in us-east: exit code 3") {
		t.Errorf("phase %s message %q", st.GetPhase(), st.GetMessage())
	}
	if v := results(r, "postPromotion"); len(v) != 1 || !strings.Contains(v[0].GetOutput(), "verifying us-east") || !strings.Contains(v[0].GetOutput(), "ledger mismatch") {
		t.Errorf("post-promotion results %v", v)
	}
	if p := results(r, "onAbort"); len(p) != 1 || p[0].GetCluster() != "us-east" || !p[0].GetPassed() || !strings.Contains(p[0].GetOutput(), "paged on-call for v4") {
		t.Errorf("on-abort results %v", p)
	}
	f.wait(ctx, "v1 back in force", func(r *cutoverv1.Rollout) bool {
		for _, cp := range r.GetStatus().GetClusters() {
			if !cp.GetConverged() || cp.GetObservedGeneration() != cp.GetDesiredGeneration() {
				return false
			}
		}
		return true
	})
	f.expectShare(ctx, "us-east", "v1", 1, 0)
	f.expectShare(ctx, "eu-west", "v1", 1, 0)
}
