package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBinaries finds or builds the binaries for a test run; call it from
// TestMain and pass the result to TestEnv.
func TestBinaries() (Binaries, func(), error) {
	dir, err := os.MkdirTemp("", "cutover-bin-")
	if err != nil {
		return Binaries{}, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := FindBinaries(ctx, dir)
	if err != nil {
		cleanup()
		return Binaries{}, nil, err
	}
	return b, cleanup, nil
}

// Region is one agent to start: its cluster name and region.
type Region struct{ Cluster, Region string }

// TestEnv starts a control plane and one agent per region for a test, and
// stops them all (agents first, so their apps stop too) when it ends. On
// failure the processes' logs are printed.
func TestEnv(t testing.TB, bins Binaries, regions ...Region) *Env {
	t.Helper()
	return TestEnvWith(t, bins, nil, regions...)
}

// TestEnvWith is TestEnv with more cutover-server flags.
func TestEnvWith(t testing.TB, bins Binaries, serverFlags []string, regions ...Region) *Env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := NewEnvWith(ctx, bins, dir, serverFlags...)
	if err != nil {
		dumpLogs(t, dir)
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("stop processes: %v", err)
		}
		if t.Failed() {
			dumpLogs(t, dir)
		}
	})
	for _, r := range regions {
		if _, err := e.StartAgent(ctx, r.Cluster, r.Region); err != nil {
			t.Fatalf("start agent: %v", err)
		}
	}
	return e
}

func dumpLogs(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		t.Logf("==== %s (tail) ====\n%s", filepath.Base(l), b)
	}
}
