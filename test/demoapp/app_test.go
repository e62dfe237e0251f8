package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// startApp serves a new App on a 127.0.0.1 listener for the test's lifetime
// and returns its base URL.
func startApp(t *testing.T, cfg Config) string {
	t.Helper()
	app, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// get fetches url and returns the response with its body read.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		flag string
	}{
		{"no version", Config{}, "--version"},
		{"negative error rate", Config{Version: "v2", ErrorRate: -0.1}, "--error-rate"},
		{"error rate above one", Config{Version: "v2", ErrorRate: 1.5}, "--error-rate"},
		{"negative latency", Config{Version: "v2", Latency: -time.Second}, "--latency"},
		{"negative ready delay", Config{Version: "v2", ReadyDelay: -time.Second}, "--ready-delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) succeeded, want an error", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.flag) {
				t.Errorf("New(%+v) = %q, want it to name %s", tt.cfg, err, tt.flag)
			}
		})
	}
}

func TestServesVersion(t *testing.T) {
	url := startApp(t, Config{Version: "v2"})
	for _, path := range []string{"/", "/any/other/path"} {
		resp, body := get(t, url+path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", path, resp.StatusCode)
		}
		if got := resp.Header.Get("X-Version"); got != "v2" {
			t.Errorf("GET %s: X-Version %q, want %q", path, got, "v2")
		}
		if body != "v2\n" {
			t.Errorf("GET %s: body %q, want %q", path, body, "v2\n")
		}
	}
}

func TestHealthzWaitsForReadyDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	start := time.Now()
	url := startApp(t, Config{Version: "v2", ReadyDelay: delay})

	if resp, _ := get(t, url+"/healthz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /healthz right after start: status %d, want 503", resp.StatusCode)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body := get(t, url+"/healthz")
		if resp.StatusCode == http.StatusOK {
			if elapsed := time.Since(start); elapsed < delay {
				t.Errorf("ready after %v, want at least %v", elapsed, delay)
			}
			if strings.TrimSpace(body) != "ok" {
				t.Errorf("GET /healthz: body %q, want ok", body)
			}
			return
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET /healthz: status %d, want 503 or 200", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still 503 %v after start", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestErrorRate(t *testing.T) {
	tests := []struct {
		rate           float64
		requests       int
		minErr, maxErr float64 // bounds on the observed fraction of 500s
	}{
		{rate: 0, requests: 100, minErr: 0, maxErr: 0},
		{rate: 1, requests: 100, minErr: 1, maxErr: 1},
		// 400 draws at p=0.5 have a standard deviation of 0.025, so these
		// bounds are six deviations out: a failure means a bug, not bad luck.
		{rate: 0.5, requests: 400, minErr: 0.35, maxErr: 0.65},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate=%v", tt.rate), func(t *testing.T) {
			url := startApp(t, Config{Version: "v3", ErrorRate: tt.rate})
			failed := 0
			for range tt.requests {
				resp, _ := get(t, url+"/")
				switch resp.StatusCode {
				case http.StatusOK:
				case http.StatusInternalServerError:
					failed++
				default:
					t.Fatalf("status %d, want 200 or 500", resp.StatusCode)
				}
				if got := resp.Header.Get("X-Version"); got != "v3" {
					t.Fatalf("status %d: X-Version %q, want v3", resp.StatusCode, got)
				}
			}
			frac := float64(failed) / float64(tt.requests)
			if frac < tt.minErr || frac > tt.maxErr {
				t.Errorf("error rate %v: %d of %d requests failed (%.3f), want %.2f..%.2f",
					tt.rate, failed, tt.requests, frac, tt.minErr, tt.maxErr)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	const latency = 150 * time.Millisecond
	url := startApp(t, Config{Version: "v2", Latency: latency})
	start := time.Now()
	resp, _ := get(t, url+"/")
	if elapsed := time.Since(start); elapsed < latency {
		t.Errorf("request took %v, want at least %v", elapsed, latency)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	tests := []struct {
		name      string
		errorRate float64
		want      []string
	}{
		{
			name:      "all succeed",
			errorRate: 0,
			want: []string{
				`cutover_demoapp_requests_total{code="200"} 3`,
				`cutover_demoapp_requests_total{code="500"} 0`,
			},
		},
		{
			name:      "all fail",
			errorRate: 1,
			want: []string{
				`cutover_demoapp_requests_total{code="200"} 0`,
				`cutover_demoapp_requests_total{code="500"} 3`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startApp(t, Config{Version: "v7", ErrorRate: tt.errorRate})
			for range 3 {
				get(t, url+"/")
			}
			// Probes and scrapes must not count as application traffic.
			get(t, url+"/healthz")
			get(t, url+"/metrics")

			resp, body := get(t, url+"/metrics")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /metrics: status %d, want 200", resp.StatusCode)
			}
			lines := strings.Split(body, "\n")
			want := []string{
				`cutover_demoapp_info{version="v7"} 1`,
				`cutover_demoapp_request_duration_seconds_count 3`,
				`cutover_demoapp_request_duration_seconds_bucket{le="+Inf"} 3`,
			}
			for _, w := range append(want, tt.want...) {
				if !slices.Contains(lines, w) {
					t.Errorf("/metrics lacks the line %q; got:\n%s", w, body)
				}
			}
			// The finest bucket must resolve a bare handler.
			finest := `cutover_demoapp_request_duration_seconds_bucket{le="5e-05"} `
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, finest) }) {
				t.Errorf("/metrics has no 50µs bucket; got:\n%s", body)
			}
		})
	}
}

// --ready-file: /healthz follows the file's existence, both ways.
func TestHealthzFollowsReadyFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ready")
	url := startApp(t, Config{Version: "v2", ReadyFile: file})
	status := func() int {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != http.StatusServiceUnavailable {
		t.Fatalf("without the file: %d", got)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusOK {
		t.Fatalf("with the file: %d", got)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusServiceUnavailable {
		t.Fatalf("after removing the file: %d", got)
	}
}

// --error-file: every answer is a 500 while the file exists.
func TestErrorFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad")
	url := startApp(t, Config{Version: "v2", ErrorFile: file})
	status := func() int {
		resp, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != http.StatusOK {
		t.Fatalf("without the file: %d", got)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusInternalServerError {
		t.Fatalf("with the file: %d", got)
	}
}
