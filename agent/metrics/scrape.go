package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// maxPage bounds how much of one metrics page is read.
const maxPage = 8 << 20

// Scrape reads every ready instance's metrics page directly.
type Scrape struct {
	poller
	path     string
	requests selector
	errors   selector
	latency  selector
	client   *http.Client

	mu      sync.Mutex
	targets map[string][]string // revision -> instance addresses
}

// selector is a compiled MetricSelector; the zero value matches nothing.
type selector struct {
	name   string
	labels map[string]*regexp.Regexp
}

func compileSelector(field string, s *cutoverv1.MetricSelector) (selector, error) {
	sel := selector{name: s.GetName(), labels: map[string]*regexp.Regexp{}}
	for k, v := range s.GetLabels() {
		re, err := regexp.Compile("^(?:" + v + ")$")
		if err != nil {
			return selector{}, fmt.Errorf("%s.labels.%s: %w", field, k, err)
		}
		sel.labels[k] = re
	}
	return sel, nil
}

func (s selector) matches(m *dto.Metric) bool {
	if len(s.labels) == 0 {
		return true
	}
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, re := range s.labels {
		if !re.MatchString(got[k]) {
			return false
		}
	}
	return true
}

// NewScrape returns a scrape source; Run starts it.
func NewScrape(cfg *cutoverv1.ScrapeSource, interval time.Duration, log *slog.Logger) (*Scrape, error) {
	s := &Scrape{path: cfg.GetPath(), client: &http.Client{Timeout: max(interval, time.Second)}, targets: map[string][]string{}}
	if s.path == "" {
		s.path = "/metrics"
	}
	var err error
	if s.requests, err = compileSelector("scrape.requests", cfg.GetRequests()); err != nil {
		return nil, err
	}
	if s.errors, err = compileSelector("scrape.errors", cfg.GetErrors()); err != nil {
		return nil, err
	}
	if s.latency, err = compileSelector("scrape.latency", cfg.GetLatency()); err != nil {
		return nil, err
	}
	if s.requests.name == "" {
		return nil, errors.New("scrape.requests.name is required")
	}
	s.poller = poller{interval: interval, read: s.read, log: log}
	return s, nil
}

// Run reads the targets every interval until ctx ends.
func (s *Scrape) Run(ctx context.Context) { s.run(ctx) }

// SetTargets sets the instances to read, by revision.
func (s *Scrape) SetTargets(t map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = t
}

func (s *Scrape) read(ctx context.Context) ([]reading, error) {
	s.mu.Lock()
	targets := s.targets
	s.mu.Unlock()
	var out []reading
	var errs []error
	for rev, addrs := range targets {
		for _, addr := range addrs {
			fams, err := s.page(ctx, addr)
			if err != nil {
				// One instance's page missing (it may be stopping) is not
				// the whole source failing: its series simply pause.
				errs = append(errs, err)
				continue
			}
			out = append(out, s.readings(rev, addr, fams)...)
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (s *Scrape) page(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+s.path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s%s: status %d", addr, s.path, resp.StatusCode)
	}
	dec := expfmt.NewDecoder(io.LimitReader(resp.Body, maxPage), expfmt.ResponseFormat(resp.Header))
	fams := map[string]*dto.MetricFamily{}
	for {
		var f dto.MetricFamily
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return fams, nil
			}
			return nil, fmt.Errorf("scrape %s%s: %w", addr, s.path, err)
		}
		fams[f.GetName()] = &f
	}
}

// readings picks the selected series out of one instance's page.
func (s *Scrape) readings(rev, addr string, fams map[string]*dto.MetricFamily) []reading {
	var out []reading
	counter := func(sel selector, kind int) {
		for _, m := range fams[sel.name].GetMetric() {
			if sel.matches(m) {
				v := m.GetCounter().GetValue()
				if m.Untyped != nil {
					v = m.GetUntyped().GetValue()
				}
				out = append(out, reading{revision: rev, kind: kind, id: addr + labelString(m), value: v})
			}
		}
	}
	counter(s.requests, kindRequests)
	if s.errors.name != "" {
		counter(s.errors, kindErrors)
	}
	if s.latency.name != "" {
		for _, m := range fams[s.latency.name].GetMetric() {
			if !s.latency.matches(m) || m.Histogram == nil {
				continue
			}
			id := addr + labelString(m)
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				if math.IsInf(b.GetUpperBound(), 1) {
					continue // the sample count below
				}
				out = append(out, reading{revision: rev, kind: kindBucket, id: id, le: b.GetUpperBound(), value: float64(b.GetCumulativeCount())})
			}
			out = append(out, reading{revision: rev, kind: kindBucket, id: id, le: math.Inf(1), value: float64(h.GetSampleCount())})
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, lp := range m.GetLabel() {
		parts = append(parts, lp.GetName()+"="+lp.GetValue())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
