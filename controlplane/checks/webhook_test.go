package checks_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/controlplane/checks"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// noAgents is a control plane no agent has connected to.
type noAgents struct{}

func (noAgents) Connected(string) bool       { return false }
func (noAgents) Capable(string, string) bool { return false }
func (noAgents) RunTask(ctx context.Context, _ string, _ *cutoverv1.RunTask) (*cutoverv1.TaskResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func hookRollout(h *cutoverv1.Hook) (*cutoverv1.Rollout, *cutoverv1.CheckRun) {
	r := &cutoverv1.Rollout{
		Name:      "shop",
		AppliedBy: "alice",
		Spec: &cutoverv1.RolloutSpec{
			Revision: &cutoverv1.Revision{Name: "v2", Sha256: strings.Repeat("a", 64)},
			Targets:  &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{Name: "eu", Clusters: []string{"eu-1"}}}},
			Hooks:    &cutoverv1.Hooks{PreTrafficShift: []*cutoverv1.Hook{h}},
			Urgency:  "high",
		},
		Status: &cutoverv1.RolloutStatus{RolloutNumber: 7},
	}
	return r, &cutoverv1.CheckRun{Id: "preTrafficShift wave 0 step 1", Phase: rollout.CheckPreTrafficShift, Clusters: []string{"eu-1"}, Step: 1}
}

func TestWebhook(t *testing.T) {
	var calls atomic.Int32
	var last atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		last.Store(struct {
			key, auth, ct string
			body          []byte
		}{r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "scan clean")
		case "/flaky": // fails twice, then passes
			if n < 3 {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok now")
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.Error(w, "vulnerabilities found: CVE-2026-0001", http.StatusConflict)
		}
	}))
	defer srv.Close()
	runner := checks.New(noAgents{}, srv.Client(), time.Now, slog.New(slog.DiscardHandler))
	tests := []struct {
		name     string
		hook     *cutoverv1.Hook
		pass     bool
		msg      string
		output   string
		attempts int32
		calls    int32
	}{
		{"2xx passes", &cutoverv1.Hook{Name: "scan", Action: httpAction(srv.URL+"/ok", map[string]string{"Authorization": "Bearer s3cret"})}, true, "HTTP 200", "scan clean", 1, 1},
		{"4xx fails, body kept", &cutoverv1.Hook{Name: "scan", Action: httpAction(srv.URL+"/deny", nil)}, false, "HTTP 409", "CVE-2026-0001", 1, 1},
		{"retried until it passes", &cutoverv1.Hook{Name: "scan", Retries: 3, Action: httpAction(srv.URL+"/flaky", nil)}, true, "HTTP 200", "ok now", 3, 3},
		{"retries run out", &cutoverv1.Hook{Name: "scan", Retries: 1, Action: httpAction(srv.URL+"/deny", nil)}, false, "HTTP 409 (2 attempts)", "", 2, 2},
		{"times out", &cutoverv1.Hook{Name: "scan", Timeout: "200ms", Action: httpAction(srv.URL+"/slow", nil)}, false, "no answer within 200ms", "", 1, 1},
		{"unreachable", &cutoverv1.Hook{Name: "scan", Action: httpAction("http://127.0.0.1:1/x", nil)}, false, "connection refused", "", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			r, run := hookRollout(tt.hook)
			res := runner.Run(t.Context(), r, run)
			if len(res) != 1 {
				t.Fatalf("%d results, want 1", len(res))
			}
			got := res[0]
			if got.GetPassed() != tt.pass || !strings.Contains(got.GetMessage(), tt.msg) || !strings.Contains(got.GetOutput(), tt.output) {
				t.Errorf("passed %t message %q output %q; want %t, %q, %q", got.GetPassed(), got.GetMessage(), got.GetOutput(), tt.pass, tt.msg, tt.output)
			}
			if got.GetAttempts() != tt.attempts || calls.Load() != tt.calls {
				t.Errorf("attempts %d, calls %d; want %d, %d", got.GetAttempts(), calls.Load(), tt.attempts, tt.calls)
			}
			if got.GetName() != "scan" || got.GetKind() != checks.KindHTTP || got.GetStartTime() == nil {
				t.Errorf("result %v", got)
			}
		})
	}
	// What the service got: the rollout, phase and artifact, as JSON.
	calls.Store(0)
	r, run := hookRollout(tests[0].hook)
	runner.Run(t.Context(), r, run)
	seen := last.Load().(struct {
		key, auth, ct string
		body          []byte
	})
	var p checks.Payload
	if err := json.Unmarshal(seen.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Rollout != "shop" || p.RolloutNumber != 7 || p.Revision != "v2" || p.Phase != "preTrafficShift" || p.Wave != "eu" ||
		p.Step != 1 || p.AppliedBy != "alice" || p.SHA256 != strings.Repeat("a", 64) || p.Hook != "scan" {
		t.Errorf("payload %+v", p)
	}
	if seen.auth != "Bearer s3cret" || seen.ct != "application/json" || seen.key != "shop/7/preTrafficShift wave 0 step 1/hook:scan/1" {
		t.Errorf("headers: %+v", seen)
	}
}

// The pre-flight fails for a cluster whose agent is not connected and
// runs no custom check then.
func TestPreflightNeedsConnectedAgents(t *testing.T) {
	var called atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) }))
	defer srv.Close()
	runner := checks.New(noAgents{}, srv.Client(), time.Now, slog.New(slog.DiscardHandler))
	r, _ := hookRollout(&cutoverv1.Hook{Name: "x", Action: httpAction(srv.URL, nil)})
	r.Spec.Preflight = &cutoverv1.Preflight{Checks: []*cutoverv1.Hook{{Name: "compliance", Action: httpAction(srv.URL, nil)}}}
	res := runner.Run(t.Context(), r, &cutoverv1.CheckRun{Id: "preflight", Phase: rollout.CheckPreflight, Clusters: []string{"eu-1", "us-1"}})
	if len(res) != 2 {
		t.Fatalf("results %v, want one per cluster", res)
	}
	for _, c := range res {
		if c.GetPassed() || c.GetName() != "agent connected" || !strings.Contains(c.GetMessage(), "not connected") {
			t.Errorf("result %v", c)
		}
	}
	if called.Load() {
		t.Error("custom check ran although the built-in checks failed")
	}
}

func httpAction(url string, headers map[string]string) *cutoverv1.Hook_Http {
	return &cutoverv1.Hook_Http{Http: &cutoverv1.HTTPHook{Url: url, Headers: headers}}
}

// Secrets stay out of the spec and out of what results show: header
// values may name CUTOVER_HOOK_ variables of the control plane's
// environment (and no others), and URLs lose credentials and query.
func TestWebhookSecrets(t *testing.T) {
	t.Setenv("CUTOVER_HOOK_SCAN_TOKEN", "t0ken")
	t.Setenv("OTHER_SECRET", "leak")
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("X-Other"))
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	runner := checks.New(noAgents{}, srv.Client(), time.Now, slog.New(slog.DiscardHandler))
	u := strings.Replace(srv.URL, "http://", "http://user:pw@", 1) + "/scan?key=abc"
	r, run := hookRollout(&cutoverv1.Hook{Name: "scan", Action: httpAction(u, map[string]string{
		"Authorization": "Bearer ${CUTOVER_HOOK_SCAN_TOKEN}", "X-Other": "${OTHER_SECRET}"})})
	runner.Run(t.Context(), r, run)
	if h := got.Load(); h != "Bearer t0ken|${OTHER_SECRET}" {
		t.Errorf("headers sent: %v", h)
	}
	r, run = hookRollout(&cutoverv1.Hook{Name: "scan", Action: httpAction(srv.URL, map[string]string{"Authorization": "Bearer ${CUTOVER_HOOK_MISSING}"})})
	if res := runner.Run(t.Context(), r, run)[0]; res.GetPassed() || res.GetMessage() != "header Authorization: CUTOVER_HOOK_MISSING is not set in the control plane's environment" {
		t.Errorf("unset secret: %v", res)
	}
	r, run = hookRollout(&cutoverv1.Hook{Name: "scan", Timeout: "100ms", Action: httpAction("http://user:pw@127.0.0.1:1/x?key=abc", nil)})
	res := runner.Run(t.Context(), r, run)[0]
	if strings.Contains(res.GetMessage(), "pw") || strings.Contains(res.GetMessage(), "abc") || !strings.Contains(res.GetMessage(), "http://127.0.0.1:1/x") {
		t.Errorf("message %q", res.GetMessage())
	}
}
