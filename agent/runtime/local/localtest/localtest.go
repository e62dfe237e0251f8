// Package localtest helps tests run real app processes under the local
// runtime: it builds the demo app, tags every process a test starts with a
// marker in its environment (inherited by anything the process spawns), and
// finds those processes through /proc, so a test can tell which processes
// really run and kill any it left behind.
package localtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// MarkerEnv is the environment variable that carries a test's marker.
const MarkerEnv = "CUTOVER_TEST_MARKER"

// DemoAppPackage is the import path of the demo app.
const DemoAppPackage = "github.com/cutover-dev/cutover/test/demoapp"

// Run is a TestMain body: it builds the demo app into a temporary
// directory, sets *bin to its path, runs the tests and removes the
// directory. It returns the exit code for os.Exit.
func Run(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "cutover-demoapp-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildDemoApp(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// BuildDemoApp builds the demo app into dir and returns the binary's path.
// Call it once per test binary, from TestMain.
func BuildDemoApp(dir string) (string, error) {
	bin := filepath.Join(dir, "cutover-demoapp")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, DemoAppPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", DemoAppPackage, err, out)
	}
	return bin, nil
}

var markers atomic.Int64

// Marker returns a value for MarkerEnv unique to t. When t ends, after every
// cleanup registered later has run, any process still carrying the marker is
// killed with its process group and reported as an error: a test must stop
// what it starts.
func Marker(t testing.TB) string {
	t.Helper()
	m := fmt.Sprintf("%d-%d-%s", os.Getpid(), markers.Add(1), t.Name())
	t.Cleanup(func() {
		for _, pid := range Processes(m) {
			t.Errorf("process %d left running; killing it", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return m
}

// Processes returns, sorted, the pids of the live processes whose
// environment holds MarkerEnv=marker.
func Processes(marker string) []int {
	want := []byte(MarkerEnv + "=" + marker)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		if slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) && Running(pid) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// Running reports whether pid is a live process (neither gone nor a zombie).
func Running(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which may hold spaces and ')'.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return false
	}
	fields := strings.Fields(string(data[end+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// Environ returns the environment of a live process.
func Environ(pid int) ([]string, error) {
	return nulSeparated(pid, "environ")
}

// Cmdline returns the command line of a live process.
func Cmdline(pid int) ([]string, error) {
	return nulSeparated(pid, "cmdline")
}

func nulSeparated(pid int, file string) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00"), nil
}

// WaitFor polls cond every few milliseconds until it holds, and fails t if
// it does not within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Logger returns a logger that keeps what it is given and prints it when t
// fails. Goroutines that outlive t may keep logging to it safely.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
