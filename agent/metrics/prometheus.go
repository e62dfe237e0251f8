package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Prometheus reads counters from a Prometheus server with PromQL instant
// queries, one per revision and counter.
type Prometheus struct {
	poller
	api                       promv1.API
	app                       string
	requests, errors, latency string

	mu        sync.Mutex
	revisions []string
}

// NewPrometheus returns a Prometheus source; Run starts it. address
// overrides cfg.Address when cfg has none.
func NewPrometheus(cfg *cutoverv1.PrometheusSource, address, app string, interval time.Duration, log *slog.Logger) (*Prometheus, error) {
	if cfg.GetAddress() != "" {
		address = cfg.GetAddress()
	}
	if address == "" {
		return nil, errors.New("prometheus.address is not set and the agent has no --prometheus-url")
	}
	if cfg.GetRequests() == "" {
		return nil, errors.New("prometheus.requests is required")
	}
	c, err := api.NewClient(api.Config{Address: address})
	if err != nil {
		return nil, fmt.Errorf("prometheus.address: %w", err)
	}
	p := &Prometheus{api: promv1.NewAPI(c), app: app, requests: cfg.GetRequests(), errors: cfg.GetErrors(), latency: cfg.GetLatency()}
	p.poller = poller{interval: interval, read: p.read, log: log}
	return p, nil
}

// Run queries every interval until ctx ends.
func (p *Prometheus) Run(ctx context.Context) { p.run(ctx) }

// SetRevisions sets the revisions to query.
func (p *Prometheus) SetRevisions(revs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revisions = revs
}

func (p *Prometheus) read(ctx context.Context) ([]reading, error) {
	p.mu.Lock()
	revs := p.revisions
	p.mu.Unlock()
	now := time.Now()
	var out []reading
	for _, rev := range revs {
		for _, q := range []struct {
			kind  int
			query string
		}{{kindRequests, p.requests}, {kindErrors, p.errors}, {kindBucket, p.latency}} {
			if q.query == "" {
				continue
			}
			query := strings.NewReplacer("{{revision}}", rev, "{{app}}", p.app).Replace(q.query)
			v, _, _, err := p.api.Query(ctx, query, now)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", query, err)
			}
			vec, ok := v.(model.Vector)
			if !ok {
				return nil, fmt.Errorf("query %q: want an instant vector, got a %s", query, v.Type())
			}
			for _, s := range vec {
				r := reading{revision: rev, kind: q.kind, id: s.Metric.String(), value: float64(s.Value)}
				if q.kind == kindBucket {
					le, err := strconv.ParseFloat(string(s.Metric[model.BucketLabel]), 64)
					if err != nil {
						return nil, fmt.Errorf("query %q: series %s has no numeric le label", query, s.Metric)
					}
					r.le = le
				}
				if !math.IsNaN(r.value) {
					out = append(out, r)
				}
			}
		}
	}
	return out, nil
}
