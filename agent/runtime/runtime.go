// Package runtime is the agent's seam to where apps run. Implementations
// live in sub-packages, one each (local today; kubernetes next).
package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"google.golang.org/protobuf/proto"

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
