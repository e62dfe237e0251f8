package reconcile

import (
	"sort"
	"sync"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Outbox holds the latest observed state of every app for the link to the
// control plane. Publishing never blocks; a reader that falls behind sees
// only the latest state of each app. Safe for concurrent use.
type Outbox struct {
	mu      sync.Mutex
	latest  map[string]*cutoverv1.ObservedApp
	version map[string]uint64
	samples []*cutoverv1.Sample
	dropped int
	notify  chan struct{}
}

// maxPendingSamples bounds the samples waiting for the link: with the
// control plane gone, the oldest are dropped, never the proxy slowed.
const maxPendingSamples = 10000

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox {
	return &Outbox{latest: map[string]*cutoverv1.ObservedApp{}, version: map[string]uint64{}, notify: make(chan struct{}, 1)}
}

// Publish replaces an app's observed state.
func (o *Outbox) Publish(a *cutoverv1.ObservedApp) {
	o.mu.Lock()
	o.latest[a.GetApp()] = a
	o.version[a.GetApp()]++
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// AddSamples queues samples for the link; it never blocks.
func (o *Outbox) AddSamples(s []*cutoverv1.Sample) {
	if len(s) == 0 {
		return
	}
	o.mu.Lock()
	o.samples = append(o.samples, s...)
	if over := len(o.samples) - maxPendingSamples; over > 0 {
		o.samples = o.samples[over:]
		o.dropped += over
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// TakeSamples returns and forgets the queued samples.
func (o *Outbox) TakeSamples() []*cutoverv1.Sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.samples
	o.samples = nil
	return s
}

// Changed is signalled after Publish and AddSamples; signals coalesce.
func (o *Outbox) Changed() <-chan struct{} { return o.notify }

// All returns the latest observed state of every app.
func (o *Outbox) All() []*cutoverv1.ObservedApp {
	return o.Since(map[string]uint64{})
}

// Since returns every app whose state is newer than seen records, and
// records the versions returned in seen.
func (o *Outbox) Since(seen map[string]uint64) []*cutoverv1.ObservedApp {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*cutoverv1.ObservedApp
	for app, v := range o.version {
		if v > seen[app] {
			out = append(out, o.latest[app])
			seen[app] = v
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetApp() < out[j].GetApp() })
	return out
}
