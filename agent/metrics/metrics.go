// Package metrics holds the sources of an app's samples beside the agent's
// own proxy: a Prometheus server queried with PromQL, and the instances'
// metrics pages scraped directly. Every source answers the same question
// as the proxy — what has each revision served so far — as cumulative
// Counters, so the agent turns all of them into samples the same way and
// every gate works with every source.
package metrics

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cutover-dev/cutover/internal/histogram"
)

// Counters is what one revision has served since a source began counting.
type Counters struct {
	Requests, Errors int64
	Latency          *histogram.Snapshot
}

// Source reports every revision's cumulative counters and when they were
// read. Counters never blocks: sources that read over the network do so in
// the background and return their latest read (nil before the first).
type Source interface {
	Counters() (map[string]Counters, time.Time)
}

// Series kinds a poller reads.
const (
	kindRequests = iota
	kindErrors
	kindBucket
)

// reading is one series' current value, as a source read it.
type reading struct {
	revision string
	kind     int
	id       string  // identifies the series within revision and kind
	le       float64 // bucket upper bound in seconds, for kindBucket
	value    float64 // cumulative
}

// totals turns readings of cumulative series, which may reset (an
// instance restarts, a series appears or disappears), into per-revision
// totals that only grow: each series contributes its increases, and a
// value below the previous one counts as a reset from zero.
type totals struct {
	last map[string]float64 // by revision/kind/id
	req  map[string]float64
	errs map[string]float64
	le   map[string]map[float64]float64 // per revision: bucket bound -> cumulative count
}

func newTotals() *totals {
	return &totals{last: map[string]float64{}, req: map[string]float64{}, errs: map[string]float64{}, le: map[string]map[float64]float64{}}
}

// add takes one series reading. The first reading of a series sets its
// baseline: what it counted before the source saw it is not new traffic.
func (t *totals) add(r reading, first bool) {
	key := r.revision + "\x00" + string(rune('0'+r.kind)) + "\x00" + r.id
	if r.kind == kindBucket {
		key += "\x00" + strconv.FormatFloat(r.le, 'g', -1, 64)
	}
	prev, seen := t.last[key]
	t.last[key] = r.value
	if !seen && first {
		return
	}
	inc := r.value - prev
	if r.value < prev || !seen { // a reset, or a series born since the last read
		inc = r.value
	}
	switch r.kind {
	case kindRequests:
		t.req[r.revision] += inc
	case kindErrors:
		t.errs[r.revision] += inc
	case kindBucket:
		if t.le[r.revision] == nil {
			t.le[r.revision] = map[float64]float64{}
		}
		t.le[r.revision][r.le] += inc
	}
}

// counters converts the totals. Buckets are cumulative (each counts every
// request up to its bound); the requests between two bounds are put in
// the histogram bucket of the upper bound, so quantiles read at most that
// bound, as Prometheus' own histogram_quantile would at worst. Requests
// above the highest finite bound are put at twice it.
func (t *totals) counters() map[string]Counters {
	out := map[string]Counters{}
	for rev, n := range t.req {
		c := Counters{Requests: int64(n), Errors: int64(t.errs[rev]), Latency: &histogram.Snapshot{}}
		bounds := make([]float64, 0, len(t.le[rev]))
		for le := range t.le[rev] {
			bounds = append(bounds, le)
		}
		slices.Sort(bounds)
		below, top := 0.0, 0.0
		for _, le := range bounds {
			cum := t.le[rev][le]
			n := cum - below
			if n <= 0 {
				continue
			}
			below = cum
			at := le
			if math.IsInf(le, 1) {
				at = 2 * top
			} else {
				top = le
			}
			i := histogram.Index(uint64(math.Round(at * 1e6)))
			c.Latency.Counts[i] += uint64(n)
			c.Latency.Total += uint64(n)
		}
		out[rev] = c
	}
	return out
}

// poller reads a source every interval in the background and keeps the
// latest totals for Counters.
type poller struct {
	interval time.Duration
	read     func(ctx context.Context) ([]reading, error)
	log      *slog.Logger

	mu     sync.Mutex
	latest map[string]Counters
	at     time.Time // of latest
	err    error
}

// Counters returns the totals of the latest successful read.
func (p *poller) Counters() (map[string]Counters, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest, p.at
}

// Err is the error of the latest read, nil when it succeeded.
func (p *poller) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// run reads until ctx ends. A failed read is logged once per new message
// and leaves the totals as they were: the gates see no traffic rather
// than wrong traffic.
func (p *poller) run(ctx context.Context) {
	t := newTotals()
	first := true
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	var lastErr string
	for {
		rctx, cancel := context.WithTimeout(ctx, max(p.interval, time.Second))
		at := time.Now()
		rs, err := p.read(rctx)
		cancel()
		if err == nil {
			for _, r := range rs {
				t.add(r, first)
			}
			first = false
		}
		if err != nil && err.Error() != lastErr && ctx.Err() == nil {
			p.log.Warn("read metrics", "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		p.mu.Lock()
		p.err = err
		if err == nil {
			p.latest, p.at = t.counters(), at
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
