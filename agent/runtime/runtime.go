// Package runtime is the agent's seam to where apps run. Implementations
// live in sub-packages, one each: local supervises processes behind the
// agent's own proxy (Runtime); kubernetes drives Deployments, Services and
// HTTPRoutes, which carry instances and traffic themselves (Placer). Both
// check a desired state without applying it (DryRunner).
package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Runtime starts and adopts app instances.
type Runtime interface {
	// Start launches instance index of rev for app and begins checking its
	// readiness. Not idempotent: each call starts a new instance. Safe for
	// concurrent use.
	Start(ctx context.Context, app string, index int, rev *cutoverv1.Revision) (Instance, error)
	// Adopt returns the instances of app that a previous run of the agent
	// left running; rev looks a revision's spec up by its key (nil when
	// unknown). Idempotent per process start; safe for concurrent use.
	Adopt(ctx context.Context, app string, rev func(key string) *cutoverv1.Revision) ([]Instance, error)
}

// Placer runs apps on a platform with its own instances and traffic
// routing. The agent hands it an app's whole desired state on every pass;
// it moves the platform's objects one step towards it and says where they
// stand. Level-triggered: calling it again with the same state changes
// nothing.
type Placer interface {
	// Place moves app d.App towards d. With toStable, all traffic goes to
	// the STABLE revision whatever the weights (the local guard tripped).
	// Safe for concurrent use.
	Place(ctx context.Context, d *cutoverv1.DesiredApp, toStable bool) (Placement, error)
	// Changes receives a value (without blocking the sender) whenever an
	// object of the app may have changed.
	Changes(app string) <-chan struct{}
	// Forget stops watching objects for app; its objects stay as they are.
	Forget(app string)
}

// Placement is where an app's objects stand.
type Placement struct {
	// Per revision: instances wanted, ready and failed, and the weight in
	// force (Track and traffic counters are filled in by the caller).
	Revisions []*cutoverv1.ObservedRevision
	// Everything desired is in force and nothing else runs.
	Converged bool
	// Revision name to the host:port of its ready instances, for scraping.
	Targets map[string][]string
	// Where the PREVIEW revision is served (host:port), once it is ready.
	Preview string
	// Where clients reach the app, for the report.
	Listen string
	// PreviewListen is where the preview is served, for the report.
	PreviewListen string
}

// Instance is one running copy of a revision.
type Instance interface {
	// Revision is the key of the revision it runs (see RevisionKey).
	Revision() string
	// Index is its slot within the revision, 0-based.
	Index() int
	// Addr is the host:port it serves on.
	Addr() string
	// Ready reports whether it passed its readiness check and still runs.
	// Safe for concurrent use.
	Ready() bool
	// Exited reports whether it has stopped running. Safe for concurrent use.
	Exited() bool
	// Stop terminates it and forgets it. Idempotent; safe for concurrent use.
	Stop(ctx context.Context) error
}

// RevisionKey identifies a revision's exact spec: its name plus a hash, so
// a changed command under the same name is a different revision.
func RevisionKey(rev *cutoverv1.Revision) string {
	data, _ := proto.MarshalOptions{Deterministic: true}.Marshal(rev)
	sum := sha256.Sum256(data)
	return rev.GetName() + "-" + hex.EncodeToString(sum[:4])
}

// CheckKind is the kind of the checks a dry run returns.
const CheckKind = "builtin"

// DryRunner checks, changing nothing, whether the agent could run a desired
// state: the pre-flight dry run of a rollout.
type DryRunner interface {
	// DryRun returns one result per check (kind CheckKind, cluster set,
	// named for what it checks) of whether dr.Desired could run here;
	// held is what the agent holds now, which the desired state may reuse.
	// An app the agent does not know yet is fine (a first deploy). A check
	// that cannot be made fails with the reason. Changes nothing;
	// idempotent; safe for concurrent use.
	DryRun(ctx context.Context, cluster string, dr *cutoverv1.DryRun, held Held) []*cutoverv1.CheckResult
}

// Held is what the agent holds now, as its reconciler knows it.
type Held struct {
	// Instances is how many app instances the agent runs, across all apps
	// (those still stopping included).
	Instances int
	// Listens are the addresses the app's proxies listen on, as desired
	// (e.g. ":8080").
	Listens []string
}

// Check times one check: it returns a result named name, started at start
// and lasting until now, passed when err is nil, with msg or the error as
// its message.
func Check(cluster, name string, start time.Time, msg string, err error) *cutoverv1.CheckResult {
	c := &cutoverv1.CheckResult{
		Name:           name,
		Kind:           CheckKind,
		Cluster:        cluster,
		Passed:         err == nil,
		Message:        msg,
		StartTime:      timestamppb.New(start),
		DurationMillis: time.Since(start).Milliseconds(),
		Attempts:       1,
	}
	if err != nil {
		c.Message = err.Error()
	}
	return c
}
