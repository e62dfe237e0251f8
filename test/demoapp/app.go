package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what an App serves and which faults it injects. Its fields
// mirror the command-line flags one to one, so validation errors name the
// flag the operator has to fix.
type Config struct {
	// Version is returned in the X-Version header and the body of every
	// application response. Required.
	Version string
	// ErrorRate is the probability, in [0, 1], that an application request
	// is answered 500.
	ErrorRate float64
	// Latency is added to every application request. Zero adds none.
	Latency time.Duration
	// Jitter adds noise on top of Latency: a random delay, exponentially
	// distributed with this mean (capped at ten times it), per request.
	Jitter time.Duration
	// MetricsListen, when set, is a second address serving only /metrics,
	// as apps with a separate admin port do.
	MetricsListen string
	// ReadyDelay is how long after New /healthz answers 503.
	ReadyDelay time.Duration
	// ReadyFile, when set, makes /healthz answer 503 while no file exists
	// at that path (a test switches an app's readiness from outside).
	ReadyFile string
	// ErrorFile, when set, makes every request answer 500 while a file
	// exists at that path (a test turns an app bad from outside).
	ErrorFile string
}

func (c Config) validate() error {
	var errs []error
	if c.Version == "" {
		errs = append(errs, errors.New("--version is required"))
	}
	// Written so that NaN is rejected too.
	if !(c.ErrorRate >= 0 && c.ErrorRate <= 1) {
		errs = append(errs, fmt.Errorf("--error-rate must be between 0 and 1, got %v", c.ErrorRate))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("--latency must not be negative, got %v", c.Latency))
	}
	if c.Jitter < 0 {
		errs = append(errs, fmt.Errorf("--jitter must not be negative, got %v", c.Jitter))
	}
	if c.ReadyDelay < 0 {
		errs = append(errs, fmt.Errorf("--ready-delay must not be negative, got %v", c.ReadyDelay))
	}
	return errors.Join(errs...)
}

// App is the demo workload. It holds its own Prometheus registry, so any
// number of Apps can live in one process (as they do in tests) without
// their metrics colliding. An App is safe for concurrent use.
type App struct {
	cfg     Config
	readyAt time.Time

	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

// New validates cfg and returns an App whose ready delay starts now.
func New(cfg Config) (*App, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &App{
		cfg:      cfg,
		readyAt:  time.Now().Add(cfg.ReadyDelay),
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_demoapp_requests_total",
			Help: "Application requests answered, by HTTP status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cutover_demoapp_request_duration_seconds",
			Help: "Time taken to answer application requests, injected latency included.",
			// 50µs doubling to ~6.5s: resolves a bare handler as well as
			// any latency a demo injects.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
		}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "cutover_demoapp_info",
		Help:        "Always 1; the version label says which version this instance serves.",
		ConstLabels: prometheus.Labels{"version": cfg.Version},
	})
	info.Set(1)
	// Both codes exist from the start so that an error-ratio query sees
	// 0 rather than no data before the first failure.
	for _, code := range []int{http.StatusOK, http.StatusInternalServerError} {
		a.requests.WithLabelValues(strconv.Itoa(code))
	}
	a.registry.MustRegister(a.requests, a.duration, info)
	return a, nil
}

// Handler returns the HTTP handler serving the application, /healthz and
// /metrics.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", a.serveHealthz)
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", a.serveApp)
	return mux
}

// MetricsHandler serves /metrics only.
func (a *App) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	return mux
}

func (a *App) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if a.cfg.ReadyFile != "" {
		if _, err := os.Stat(a.cfg.ReadyFile); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "starting\n")
			return
		}
	}
	if time.Now().Before(a.readyAt) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "starting\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

func (a *App) serveApp(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	delay := a.cfg.Latency
	if a.cfg.Jitter > 0 {
		delay += min(time.Duration(rand.ExpFloat64()*float64(a.cfg.Jitter)), 10*a.cfg.Jitter)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client has gone; nobody will see an answer, so none
			// is counted either.
			return
		}
	}

	code := http.StatusOK
	// rand.Float64 is in [0, 1): a rate of 0 never fails, 1 always does.
	if rand.Float64() < a.cfg.ErrorRate {
		code = http.StatusInternalServerError
	}
	if a.cfg.ErrorFile != "" {
		if _, err := os.Stat(a.cfg.ErrorFile); err == nil {
			code = http.StatusInternalServerError
		}
	}

	h := w.Header()
	h.Set("X-Version", a.cfg.Version)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	if code == http.StatusOK {
		_, _ = io.WriteString(w, a.cfg.Version+"\n")
	} else {
		_, _ = io.WriteString(w, "injected error\n")
	}

	a.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	a.duration.Observe(time.Since(start).Seconds())
}
