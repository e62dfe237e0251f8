package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Names of the local runtime's dry-run checks.
const (
	CheckArtifact = "artifact"
	CheckPinned   = "pinned"
	CheckCapacity = "capacity"
	CheckListen   = "listen"
)

// WithMaxInstances bounds the instances the agent runs across all apps,
// as the dry run's capacity check counts them (0: no bound); call it
// before use.
func (rt *Runtime) WithMaxInstances(n int) *Runtime {
	rt.maxInstances = max(n, 0)
	return rt
}

var _ runtime.DryRunner = (*Runtime)(nil)

// DryRun implements runtime.DryRunner: every revision's command resolves
// to an executable file ("artifact") with the digest the spec pins
// ("pinned"), the instances fit under --max-instances ("capacity"), and
// the app's addresses are the agent's already or free ("listen").
func (rt *Runtime) DryRun(ctx context.Context, cluster string, dr *cutoverv1.DryRun, held runtime.Held) []*cutoverv1.CheckResult {
	d := dr.GetDesired()
	revs := distinctRevisions(d)
	if r := dr.GetRevision(); r != nil {
		revs = []*cutoverv1.Revision{r} // the stable revision already runs
	}
	var out []*cutoverv1.CheckResult
	check := func(name string, f func() (string, error)) {
		start := time.Now()
		msg, err := f()
		out = append(out, runtime.Check(cluster, name, start, msg, err))
	}
	check(CheckArtifact, func() (string, error) { return perRevision(revs, checkArtifact) })
	check(CheckPinned, func() (string, error) {
		return perRevision(revs, func(rev *cutoverv1.Revision) (string, error) {
			return checkPinned(rev, dr.GetRequirePinned())
		})
	})
	check(CheckCapacity, func() (string, error) {
		return capacity(held.Instances, int(dr.GetExtraInstances()), rt.maxInstances)
	})
	check(CheckListen, func() (string, error) { return listen(ctx, d, held.Listens) })
	return out
}

// distinctRevisions returns the desired state's revisions, each once.
func distinctRevisions(d *cutoverv1.DesiredApp) []*cutoverv1.Revision {
	var out []*cutoverv1.Revision
	seen := map[string]bool{}
	for _, r := range d.GetRevisions() {
		key := runtime.RevisionKey(r.GetRevision())
		if !seen[key] {
			seen[key] = true
			out = append(out, r.GetRevision())
		}
	}
	return out
}

// perRevision runs a check on each revision and joins what it says: it
// passes when every revision does.
func perRevision(revs []*cutoverv1.Revision, f func(*cutoverv1.Revision) (string, error)) (string, error) {
	if len(revs) == 0 {
		return "", errors.New("the desired state names no revision")
	}
	var oks, fails []string
	for _, rev := range revs {
		msg, err := f(rev)
		if err != nil {
			fails = append(fails, fmt.Sprintf("revision %s: %v", rev.GetName(), err))
		} else {
			oks = append(oks, fmt.Sprintf("revision %s: %s", rev.GetName(), msg))
		}
	}
	if len(fails) > 0 {
		return "", errors.New(strings.Join(fails, "; "))
	}
	return strings.Join(oks, "; "), nil
}

// resolve finds the executable file a revision's command runs.
func resolve(rev *cutoverv1.Revision) (string, error) {
	if rev.GetCommand() == "" {
		return "", errors.New("spec revision.command is empty")
	}
	path, err := exec.LookPath(rev.GetCommand())
	if err != nil {
		return "", fmt.Errorf("command %q: %w", rev.GetCommand(), err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", rev.GetCommand(), err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("command %q: %s is not an executable file", rev.GetCommand(), path)
	}
	return path, nil
}

func checkArtifact(rev *cutoverv1.Revision) (string, error) {
	path, err := resolve(rev)
	if err != nil {
		return "", err
	}
	return path + " is an executable file", nil
}

func checkPinned(rev *cutoverv1.Revision, required bool) (string, error) {
	path, err := resolve(rev)
	if err != nil {
		return "", fmt.Errorf("no digest: %w", err)
	}
	got, err := fileDigest(path)
	if err != nil {
		return "", err
	}
	want := strings.ToLower(rev.GetSha256())
	switch {
	case want != "" && got != want:
		return "", fmt.Errorf("%s has sha256 %s, but spec revision.sha256 pins %s", path, got, want)
	case want != "":
		return fmt.Sprintf("%s has the pinned sha256 %s", path, got), nil
	case required:
		return "", fmt.Errorf("spec revision.sha256 is required (requirePinned); %s has sha256 %s", path, got)
	}
	return fmt.Sprintf("%s has sha256 %s (not pinned)", path, got), nil
}

// fileDigest is the hex SHA-256 of a file's contents.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("digest %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func capacity(running, extra, limit int) (string, error) {
	if limit == 0 {
		return fmt.Sprintf("%d running + %d more: no limit (--max-instances 0)", running, extra), nil
	}
	if running+extra > limit {
		return "", fmt.Errorf("%d running + %d more = %d instances exceed --max-instances %d", running, extra, running+extra, limit)
	}
	return fmt.Sprintf("%d running + %d more = %d instances fit --max-instances %d", running, extra, running+extra, limit), nil
}

// listen checks the app's addresses: each is one the app's proxies hold
// already, or one that can be bound now (and is released at once).
func listen(ctx context.Context, d *cutoverv1.DesiredApp, held []string) (string, error) {
	var oks, fails []string
	for _, a := range []struct{ what, addr string }{{"listen", d.GetListen()}, {"preview listen", d.GetPreviewListen()}} {
		if a.addr == "" {
			continue
		}
		if slices.ContainsFunc(held, func(h string) bool { return sameAddr(h, a.addr) }) {
			oks = append(oks, fmt.Sprintf("%s %s is held by this agent for app %s", a.what, a.addr, d.GetApp()))
			continue
		}
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", a.addr)
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s %s: %v", a.what, a.addr, err))
			continue
		}
		_ = ln.Close()
		oks = append(oks, fmt.Sprintf("%s %s is free", a.what, a.addr))
	}
	if len(fails) > 0 {
		return "", errors.New(strings.Join(fails, "; "))
	}
	if len(oks) == 0 {
		return "no listen address to check", nil
	}
	return strings.Join(oks, "; "), nil
}

// sameAddr reports whether two listen addresses are the same socket:
// ":8080" and "0.0.0.0:8080" are.
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	unspec := func(h string, ip net.IP) bool { return h == "" || (ip != nil && ip.IsUnspecified()) }
	if unspec(ha, ia) || unspec(hb, ib) {
		return unspec(ha, ia) && unspec(hb, ib)
	}
	return ia != nil && ib != nil && ia.Equal(ib)
}
