package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/cutover-dev/cutover/test/harness"
)

// window is how far back the live traffic share looks.
const window = time.Second

// load sends requests at a steady rate to one URL, one at a time, and
// remembers which version answered each recent one.
type load struct {
	url    string
	every  time.Duration
	client *http.Client

	mu     sync.Mutex
	recent []hit
	total  int
	errors int
	done   chan struct{}
	once   sync.Once

	bad               string    // a revision to watch for
	firstBad, lastBad time.Time // its first error and last answer
}

type hit struct {
	at      time.Time
	version string
}

func newLoad(url string, rate int) *load {
	return &load{url: url, every: time.Second / time.Duration(rate), client: harness.NewClient(), done: make(chan struct{})}
}

// run sends requests until ctx ends or stop is called.
func (l *load) run(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.done:
			return
		case <-t.C:
		}
		v := harness.Hit(ctx, l.client, l.url)
		if ctx.Err() != nil {
			return
		}
		l.record(v)
	}
}

func (l *load) record(version string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if version == "error" {
		l.errors++
	}
	if l.bad != "" && (version == "error" || version == l.bad) {
		if l.firstBad.IsZero() && version == "error" {
			l.firstBad = now
		}
		l.lastBad = now
	}
	l.recent = append(l.recent, hit{now, version})
	cut := 0
	for cut < len(l.recent) && now.Sub(l.recent[cut].at) > window {
		cut++
	}
	l.recent = l.recent[cut:]
}

// share is the fraction of the last second's answers that came from version.
func (l *load) share(version string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) == 0 {
		return 0
	}
	n := 0
	for _, h := range l.recent {
		if h.version == version {
			n++
		}
	}
	return float64(n) / float64(len(l.recent))
}

func (l *load) totals() (total, errors int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.errors
}

func (l *load) stop() { l.once.Do(func() { close(l.done) }) }

// watchFor starts tracking answers from revision (and errors, which only
// it gives): the first error and the last answer.
func (l *load) watchFor(revision string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = revision
}

// badSpan returns the first error and the last answer of the watched
// revision.
func (l *load) badSpan() (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstBad, l.lastBad
}
