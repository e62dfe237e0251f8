package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover-dev/cutover/agent/metrics"
	"github.com/cutover-dev/cutover/internal/histogram"
)

// Mirroring limits: copies are best effort and never slow the client down.
const (
	maxMirrorBody     = 1 << 20 // larger bodies are not mirrored
	maxMirrorInFlight = 64      // copies beyond this are dropped
	mirrorTimeout     = 10 * time.Second
	maxStatusCode     = 599 // codes above are counted as 0, like a failure
)

// Stats describes the answers of one revision: the requests it served, or
// for a shadow the copies it got.
type Stats struct {
	// Requests is the number of answers since the proxy started.
	Requests int64
	// Codes counts answers by status code; 0 is a failed connection.
	Codes map[int]int64
	// P99 is the 99th percentile latency since the proxy started, within
	// 1/16 (see package histogram).
	P99 time.Duration
}

type mirrors struct {
	client *http.Client
	slots  chan struct{}
	stats  sync.Map // revision -> *revisionStats
}

// revisionStats is updated with atomics only: recording never blocks.
type revisionStats struct {
	requests atomic.Int64
	codes    [maxStatusCode + 1]atomic.Int64
	latency  histogram.Histogram
}

func newMirrors() mirrors {
	return mirrors{
		client: &http.Client{Timeout: mirrorTimeout},
		slots:  make(chan struct{}, maxMirrorInFlight),
	}
}

// send copies r to backend in the background and returns r with a body the
// primary can still read. A body too large to buffer is not mirrored.
func (m *mirrors) send(r *http.Request, revision, backend string) *http.Request {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxMirrorBody+1))
		rest := io.MultiReader(bytes.NewReader(b), r.Body)
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(rest)
		if err != nil || len(b) > maxMirrorBody {
			return r
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	select {
	case m.slots <- struct{}{}:
	default:
		return r // saturated: drop the copy, not the request
	}
	ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", backend
	out.Body = io.NopCloser(bytes.NewReader(body))
	if body == nil {
		out.Body = http.NoBody
	}
	go func() {
		defer func() { <-m.slots }()
		defer cancel()
		start := time.Now()
		code := 0
		if resp, err := m.client.Do(out); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			code = resp.StatusCode
		}
		m.record(revision, code, time.Since(start))
	}()
	return r
}

func (m *mirrors) record(revision string, code int, latency time.Duration) {
	v, ok := m.stats.Load(revision)
	if !ok {
		v, _ = m.stats.LoadOrStore(revision, &revisionStats{})
	}
	s := v.(*revisionStats)
	s.requests.Add(1)
	if code < 0 || code > maxStatusCode {
		code = 0
	}
	s.codes[code].Add(1)
	s.latency.Record(latency)
}

// Stats returns the answers recorded per revision: those served to clients,
// and for a shadow the mirrored copies.
func (p *Proxy) Stats() map[string]Stats {
	out := map[string]Stats{}
	p.mirrors.stats.Range(func(k, v any) bool {
		s := v.(*revisionStats)
		codes := map[int]int64{}
		for c := range s.codes {
			if n := s.codes[c].Load(); n > 0 {
				codes[c] = n
			}
		}
		out[k.(string)] = Stats{Requests: s.requests.Load(), Codes: codes, P99: s.latency.Snapshot().Quantile(0.99)}
		return true
	})
	return out
}

// Counters returns what every revision answered since the proxy started,
// as of now; errors are answers with status 500 or above, or none at all.
// The proxy is a metrics.Source.
func (p *Proxy) Counters() (map[string]metrics.Counters, time.Time) {
	now := time.Now()
	out := map[string]metrics.Counters{}
	p.mirrors.stats.Range(func(k, v any) bool {
		s := v.(*revisionStats)
		c := metrics.Counters{Requests: s.requests.Load(), Latency: s.latency.Snapshot()}
		c.Errors = s.codes[0].Load()
		for code := 500; code <= maxStatusCode; code++ {
			c.Errors += s.codes[code].Load()
		}
		out[k.(string)] = c
		return true
	})
	return out, now
}
