package local_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/agent/runtime"
	"github.com/cutover-dev/cutover/agent/runtime/local"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// script writes an executable shell script and returns its path and digest.
func script(t *testing.T, body string) (path, digest string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "app.sh")
	data := []byte("#!/bin/sh\n" + body + "\n")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

func dryRun(rev *cutoverv1.Revision, listen string, extra int32, requirePinned bool) *cutoverv1.DryRun {
	return &cutoverv1.DryRun{
		Desired: &cutoverv1.DesiredApp{
			App: "api", Generation: 1, Listen: listen,
			Revisions: []*cutoverv1.DesiredRevision{{Track: cutoverv1.Track_TRACK_STABLE, Revision: rev, Weight: 100}},
		},
		ExtraInstances: extra,
		RequirePinned:  requirePinned,
	}
}

// result returns the check named name, failing the test when it is not
// there exactly once, or not builtin for cluster "c1".
func result(t *testing.T, results []*cutoverv1.CheckResult, name string) *cutoverv1.CheckResult {
	t.Helper()
	var found *cutoverv1.CheckResult
	for _, r := range results {
		if r.GetName() == name {
			if found != nil {
				t.Fatalf("check %q twice in %v", name, results)
			}
			found = r
		}
	}
	if found == nil {
		t.Fatalf("no check %q in %v", name, results)
	}
	if found.GetKind() != runtime.CheckKind || found.GetCluster() != "c1" || found.GetStartTime() == nil || found.GetAttempts() != 1 {
		t.Errorf("check %q: kind %q cluster %q start %v attempts %d, want builtin, c1, set, 1", name, found.GetKind(), found.GetCluster(), found.GetStartTime(), found.GetAttempts())
	}
	return found
}

func TestDryRunPinned(t *testing.T) {
	rt := newFixture(t).rt
	path, digest := script(t, "exit 0")
	other := strings.Repeat("ab", 32)
	ctx := context.Background()

	got := rt.DryRun(ctx, "c1", dryRun(&cutoverv1.Revision{Name: "v2", Command: path, Sha256: other}, "", 0, false), runtime.Held{})
	pin := result(t, got, local.CheckPinned)
	if pin.GetPassed() || !strings.Contains(pin.GetMessage(), digest) || !strings.Contains(pin.GetMessage(), other) {
		t.Errorf("pinned with another digest: passed %v, message %q; want a failure naming %s and %s", pin.GetPassed(), pin.GetMessage(), digest, other)
	}
	if a := result(t, got, local.CheckArtifact); !a.GetPassed() {
		t.Errorf("artifact of an existing script failed: %s", a.GetMessage())
	}

	got = rt.DryRun(ctx, "c1", dryRun(&cutoverv1.Revision{Name: "v2", Command: path, Sha256: strings.ToUpper(digest)}, "", 0, true), runtime.Held{})
	if pin := result(t, got, local.CheckPinned); !pin.GetPassed() || !strings.Contains(pin.GetMessage(), digest) {
		t.Errorf("pinned with its own digest: passed %v, message %q", pin.GetPassed(), pin.GetMessage())
	}

	got = rt.DryRun(ctx, "c1", dryRun(&cutoverv1.Revision{Name: "v2", Command: path}, "", 0, true), runtime.Held{})
	if pin := result(t, got, local.CheckPinned); pin.GetPassed() || !strings.Contains(pin.GetMessage(), "spec revision.sha256 is required") {
		t.Errorf("requirePinned without sha256: passed %v, message %q", pin.GetPassed(), pin.GetMessage())
	}

	got = rt.DryRun(ctx, "c1", dryRun(&cutoverv1.Revision{Name: "v2", Command: path}, "", 0, false), runtime.Held{})
	if pin := result(t, got, local.CheckPinned); !pin.GetPassed() || !strings.Contains(pin.GetMessage(), digest) {
		t.Errorf("unpinned, not required: passed %v, message %q; want a pass naming the digest found", pin.GetPassed(), pin.GetMessage())
	}
}

func TestDryRunArtifact(t *testing.T) {
	rt := newFixture(t).rt
	missing := filepath.Join(t.TempDir(), "no-such-binary")
	got := rt.DryRun(context.Background(), "c1", dryRun(&cutoverv1.Revision{Name: "v2", Command: missing}, "", 0, false), runtime.Held{})
	if a := result(t, got, local.CheckArtifact); a.GetPassed() || !strings.Contains(a.GetMessage(), missing) {
		t.Errorf("missing command: passed %v, message %q", a.GetPassed(), a.GetMessage())
	}

	notExec := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = rt.DryRun(context.Background(), "c1", dryRun(&cutoverv1.Revision{Name: "v2", Command: notExec}, "", 0, false), runtime.Held{})
	if a := result(t, got, local.CheckArtifact); a.GetPassed() {
		t.Errorf("a file that is not executable passed: %s", a.GetMessage())
	}
}

func TestDryRunCapacity(t *testing.T) {
	rt := newFixture(t).rt.WithMaxInstances(4)
	path, _ := script(t, "exit 0")
	rev := &cutoverv1.Revision{Name: "v2", Command: path}
	for _, tc := range []struct {
		running int
		extra   int32
		pass    bool
	}{
		{running: 2, extra: 2, pass: true},
		{running: 3, extra: 2, pass: false},
		{running: 0, extra: 5, pass: false},
	} {
		got := rt.DryRun(context.Background(), "c1", dryRun(rev, "", tc.extra, false), runtime.Held{Instances: tc.running})
		c := result(t, got, local.CheckCapacity)
		if c.GetPassed() != tc.pass || !strings.Contains(c.GetMessage(), "--max-instances 4") {
			t.Errorf("%d running + %d: passed %v, message %q; want passed %v", tc.running, tc.extra, c.GetPassed(), c.GetMessage(), tc.pass)
		}
	}
	unlimited := newFixture(t).rt
	got := unlimited.DryRun(context.Background(), "c1", dryRun(rev, "", 1000, false), runtime.Held{Instances: 1000})
	if c := result(t, got, local.CheckCapacity); !c.GetPassed() {
		t.Errorf("no --max-instances: %s", c.GetMessage())
	}
}

func TestDryRunListen(t *testing.T) {
	rt := newFixture(t).rt
	path, _ := script(t, "exit 0")
	rev := &cutoverv1.Revision{Name: "v2", Command: path}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()

	got := rt.DryRun(context.Background(), "c1", dryRun(rev, addr, 0, false), runtime.Held{})
	if l := result(t, got, local.CheckListen); l.GetPassed() || !strings.Contains(l.GetMessage(), addr) {
		t.Errorf("a port another process holds: passed %v, message %q", l.GetPassed(), l.GetMessage())
	}

	// The same port held by the app's own proxy is the app's to keep.
	got = rt.DryRun(context.Background(), "c1", dryRun(rev, addr, 0, false), runtime.Held{Listens: []string{addr}})
	if l := result(t, got, local.CheckListen); !l.GetPassed() {
		t.Errorf("a port the app holds: %s", l.GetMessage())
	}

	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	_ = free.Close()
	d := dryRun(rev, freeAddr, 0, false)
	d.Desired.PreviewListen = addr
	got = rt.DryRun(context.Background(), "c1", d, runtime.Held{})
	if l := result(t, got, local.CheckListen); l.GetPassed() || !strings.Contains(l.GetMessage(), "preview listen "+addr) {
		t.Errorf("a taken preview port: passed %v, message %q", l.GetPassed(), l.GetMessage())
	}
	// The check binds and lets go: the free port is still free.
	ln, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Errorf("the dry run kept %s: %v", freeAddr, err)
	} else {
		_ = ln.Close()
	}
}

// Only the revision under test is checked: an unpinned (or since removed)
// stable binary does not fail a pinned new one under requirePinned.
func TestDryRunChecksTheRevisionUnderTest(t *testing.T) {
	rt := newFixture(t).rt
	path, digest := script(t, "exit 0")
	stable := &cutoverv1.Revision{Name: "v1", Command: filepath.Join(t.TempDir(), "gone")}
	next := &cutoverv1.Revision{Name: "v2", Command: path, Sha256: digest}
	dr := dryRun(stable, "", 2, true)
	dr.Desired.Revisions = append(dr.Desired.Revisions, &cutoverv1.DesiredRevision{Track: cutoverv1.Track_TRACK_CANARY, Revision: next})
	dr.Revision = next
	got := rt.DryRun(context.Background(), "c1", dr, runtime.Held{})
	for _, name := range []string{local.CheckPinned, local.CheckArtifact} {
		if r := result(t, got, name); !r.GetPassed() || strings.Contains(r.GetMessage(), "v1") {
			t.Errorf("%s: passed %v, message %q; want v2 alone checked", name, r.GetPassed(), r.GetMessage())
		}
	}
}
