package reconcile

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

func TestSmokeChecks(t *testing.T) {
	var health atomic.Int32
	health.Store(http.StatusServiceUnavailable)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(int(health.Load()))
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	preview := strings.TrimPrefix(srv.URL, "http://")
	checks := []*cutoverv1.SmokeCheck{
		{Name: "root", Url: "http://{{preview}}/"},
		{Name: "health", Url: "http://{{preview}}/health", Attempts: 2, Timeout: "1s"},
	}
	got := runSmoke(t.Context(), preview, checks, srv.Client())
	if !strings.HasPrefix(got, "health: GET http://"+preview+"/health: status 503, want 2xx (2 attempts)") {
		t.Errorf("failing check: %q", got)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (root once, health twice)", n)
	}
	health.Store(http.StatusOK)
	if got := runSmoke(t.Context(), preview, checks, srv.Client()); got != spec.SmokePassed {
		t.Errorf("passing checks: %q", got)
	}
	if got := runSmoke(t.Context(), preview, []*cutoverv1.SmokeCheck{{Url: "http://{{preview}}/teapot", ExpectStatus: 418}}, srv.Client()); got != spec.SmokePassed {
		t.Errorf("expected status: %q", got)
	}
	if got := runSmoke(t.Context(), "127.0.0.1:1", []*cutoverv1.SmokeCheck{{Url: "http://{{preview}}/", Attempts: 1}}, srv.Client()); !strings.Contains(got, "check 1: GET http://127.0.0.1:1/") {
		t.Errorf("unreachable preview: %q", got)
	}

	// The background runner: one run per key, its result kept.
	var s smoke
	defer s.stop()
	key := smokeKey("v2-abc", checks)
	if r := s.ensure(key, preview, checks, srv.Client(), false); r != "" {
		t.Fatalf("result before the preview is ready: %q", r)
	}
	if r := s.ensure(key, preview, checks, srv.Client(), true); r != "" {
		t.Fatalf("result before the run: %q", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.ensure(key, preview, checks, srv.Client(), true) == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := s.ensure(key, preview, checks, srv.Client(), true); r != spec.SmokePassed {
		t.Errorf("background result: %q", r)
	}
	if r := s.ensure(key, "", checks, srv.Client(), false); r != spec.SmokePassed {
		t.Errorf("result lost while the preview flickered: %q", r)
	}
	before := calls.Load()
	s.ensure(key, preview, checks, srv.Client(), true)
	if calls.Load() != before {
		t.Error("the same key ran the checks again")
	}
	if r := s.ensure("", "", nil, srv.Client(), true); r != "" {
		t.Errorf("no checks: %q", r)
	}
}
