package hub

import (
	"context"
	"sync/atomic"
)

// session is one open agent stream. sent is touched only by the sending
// goroutine (and by open, before that goroutine starts).
type session struct {
	cluster  string
	cancel   context.CancelFunc
	notify   chan struct{}
	sent     map[string]int64
	tasks    map[string]bool // task ids sent on this stream
	replaced atomic.Bool
}

func newSession(cluster string, cancel context.CancelFunc) *session {
	return &session{cluster: cluster, cancel: cancel, notify: make(chan struct{}, 1), sent: map[string]int64{}, tasks: map[string]bool{}}
}

// wake asks the sender to look for pending desired states; wakes coalesce.
func (s *session) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
