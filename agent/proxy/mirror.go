package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Mirroring limits: copies are best effort and never slow the client down.
const (
	maxMirrorBody     = 1 << 20 // larger bodies are not mirrored
	maxMirrorInFlight = 64      // copies beyond this are dropped
	mirrorTimeout     = 10 * time.Second
	latencyWindow     = 1024 // recent answers kept per revision for percentiles
)

// Stats describes the answers of one revision: the requests it served, or
// for a shadow the copies it got.
type Stats struct {
	// Requests is the number of answers since the proxy started.
	Requests int64
	// Codes counts answers by status code; 0 is a failed connection.
	Codes map[int]int64
	// P99 is the 99th percentile latency over the recent window.
	P99 time.Duration
}

type mirrors struct {
	client *http.Client
	slots  chan struct{}
	mu     sync.Mutex
	stats  map[string]*revisionStats
}

type revisionStats struct {
	requests int64
	codes    map[int]int64
	recent   []time.Duration // ring of the latest latencyWindow latencies
	next     int
}

func newMirrors() mirrors {
	return mirrors{
		client: &http.Client{Timeout: mirrorTimeout},
		slots:  make(chan struct{}, maxMirrorInFlight),
		stats:  map[string]*revisionStats{},
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
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats[revision]
	if s == nil {
		s = &revisionStats{codes: map[int]int64{}}
		m.stats[revision] = s
	}
	s.requests++
	s.codes[code]++
	if len(s.recent) < latencyWindow {
		s.recent = append(s.recent, latency)
	} else {
		s.recent[s.next] = latency
		s.next = (s.next + 1) % latencyWindow
	}
}

// Stats returns the answers recorded per revision: those served to clients,
// and for a shadow the mirrored copies.
func (p *Proxy) Stats() map[string]Stats {
	m := &p.mirrors
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Stats, len(m.stats))
	for rev, s := range m.stats {
		sorted := slices.Clone(s.recent)
		slices.Sort(sorted)
		var p99 time.Duration
		if n := len(sorted); n > 0 {
			p99 = sorted[(n*99+99)/100-1] // nearest rank
		}
		codes := make(map[int]int64, len(s.codes))
		for c, n := range s.codes {
			codes[c] = n
		}
		out[rev] = Stats{Requests: s.requests, Codes: codes, P99: p99}
	}
	return out
}
