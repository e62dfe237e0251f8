package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseFlagsListenDefault(t *testing.T) {
	tests := []struct {
		name string
		port string
		args []string
		want string
	}{
		{"no PORT", "", nil, "127.0.0.1:8080"},
		{"PORT set", "9123", nil, "127.0.0.1:9123"},
		{"flag wins over PORT", "9123", []string{"--listen", "127.0.0.1:0"}, "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(key string) string {
				if key == "PORT" {
					return tt.port
				}
				return ""
			}
			_, listen, err := parseFlags(append([]string{"--version", "v2"}, tt.args...), getenv, io.Discard)
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if listen != tt.want {
				t.Errorf("listen = %q, want %q", listen, tt.want)
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{}, "--version"},
		{[]string{"--version", "v2", "--error-rate", "1.01"}, "--error-rate"},
		{[]string{"--version", "v2", "--error-rate", "-1"}, "--error-rate"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.args), func(t *testing.T) {
			err := run(t.Context(), tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.flag) {
				t.Errorf("run(%q) = %v, want an error naming %s", tt.args, err, tt.flag)
			}
		})
	}
}

// TestServeDrainsInFlightRequests checks that ending ctx lets a request
// already being answered finish before serve returns.
func TestServeDrainsInFlightRequests(t *testing.T) {
	app, err := New(Config{Version: "v2", Latency: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	arrived := make(chan struct{})
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		app.Handler().ServeHTTP(w, r)
	})
	go func() { served <- serve(ctx, ln, h, slog.New(slog.DiscardHandler)) }()

	type result struct {
		code int
		err  error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			answered <- result{err: err}
			return
		}
		resp.Body.Close()
		answered <- result{code: resp.StatusCode}
	}()
	// Once the handler has the request it is busy for 200ms: shut down
	// while it is.
	select {
	case <-arrived:
	case r := <-answered:
		t.Fatalf("request answered before reaching the handler: %+v", r)
	}
	cancel()

	select {
	case r := <-answered:
		if r.err != nil || r.code != http.StatusOK {
			t.Errorf("in-flight request: status %d, error %v; want 200", r.code, r.err)
		}
	case <-time.After(shutdownTimeout):
		t.Fatal("in-flight request not answered")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve = %v, want nil after a clean shutdown", err)
		}
	case <-time.After(shutdownTimeout):
		t.Fatal("serve did not return")
	}
}

// TestBinary runs the built command the way the demo supervisor does: PORT
// in the environment, /healthz polled until ready, SIGTERM to stop.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "cutover-demoapp")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	port := freePort(t)
	cmd := exec.Command(bin, "--version", "v9", "--ready-delay", "100ms")
	cmd.Env = append(os.Environ(), "PORT="+port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	// waitErr is written before done is closed; stderr is only read after.
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // harmless once the process has exited
		<-done
	})

	base := "http://" + net.JoinHostPort("127.0.0.1", port)
	if err := waitHealthy(base+"/healthz", done, 10*time.Second); err != nil {
		select {
		case <-done:
			t.Fatalf("%v (exit: %v)\nstderr:\n%s", err, waitErr, &stderr)
		default:
			t.Fatal(err)
		}
	}

	resp, body := get(t, base+"/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Version") != "v9" || body != "v9\n" {
		t.Errorf("GET /: status %d, X-Version %q, body %q; want 200, v9, %q",
			resp.StatusCode, resp.Header.Get("X-Version"), body, "v9\n")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	// Shutdown may take up to shutdownTimeout; allow for a slow machine.
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0\nstderr:\n%s", waitErr, &stderr)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("still running after SIGTERM")
	}

	log := stderr.String()
	for _, want := range []string{"msg=listening", "version=v9", "addr=127.0.0.1:" + port} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
}

// freePort returns a port that was free a moment ago. The binary takes its
// port from the environment, so it cannot be handed a listener; the window
// in which another process could take the port is accepted.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatalf("split %s: %v", ln.Addr(), err)
	}
	return port
}

// waitHealthy polls url until it answers 200. It gives up when the process
// exits (done is closed) or timeout passes.
func waitHealthy(url string, done <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-done:
			return errors.New("process exited before /healthz answered 200")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s not 200 within %v; last: %w", url, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
