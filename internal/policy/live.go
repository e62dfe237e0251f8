package policy

import (
	"sync/atomic"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Live is the set of policies in force, replaced whole when the files are
// loaded again (cutover-server reloads them on SIGHUP). An apply resolves
// against one set from start to end. Safe for concurrent use.
type Live struct {
	set atomic.Pointer[Set]
}

// NewLive returns a Live holding s.
func NewLive(s *Set) *Live {
	l := &Live{}
	l.Store(s)
	return l
}

// Store puts s in force.
func (l *Live) Store(s *Set) {
	if s == nil {
		s = &Set{}
	}
	l.set.Store(s)
}

// Resolve is Set.Resolve on the set in force.
func (l *Live) Resolve(name string, in *cutoverv1.RolloutSpec) (*cutoverv1.RolloutSpec, error) {
	return l.set.Load().Resolve(name, in)
}

// Names is Set.Names of the set in force.
func (l *Live) Names() []string { return l.set.Load().Names() }
