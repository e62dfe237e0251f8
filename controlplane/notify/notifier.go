package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Defaults of Options.
const (
	DefaultQueueSize      = 1000
	DefaultInitialBackoff = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
)

// Options tune a Notifier; zero fields take the defaults.
type Options struct {
	// Logger receives a warning per notification that could not be
	// delivered and per burst of drops.
	Logger *slog.Logger
	// Registerer receives the cutover_notifications_* metrics; nil
	// exports none.
	Registerer prometheus.Registerer
	// QueueSize bounds each sink's queue (default DefaultQueueSize).
	QueueSize int
	// InitialBackoff is the wait after a first failed attempt, doubled
	// after each further one up to MaxBackoff.
	InitialBackoff, MaxBackoff time.Duration
}

// Status is what a sink has done since the Notifier started.
type Status struct {
	Name string
	// Queued notifications wait for delivery.
	Queued int
	// Sent, Failed (given up after retries or refused) and Dropped
	// (pushed out of a full queue, or left at shutdown) notifications.
	Sent, Failed, Dropped uint64
	// LastError is the last failed attempt's error, LastErrorTime when it
	// happened; empty and zero before the first.
	LastError     string
	LastErrorTime time.Time
}

// Notifier delivers audit records to the sinks that want them.
type Notifier struct {
	sinks   []*sink
	closing chan struct{} // closed by Close: drain, then stop
	abort   context.Context
	stop    context.CancelFunc // cancels deliveries in flight
	once    sync.Once
	running sync.WaitGroup
}

// New starts one goroutine per sink of cfg; Close stops them. It returns
// an error for a sink it cannot serve (unknown type, duplicate name, bad
// URL) or when the metrics cannot be registered.
func New(cfg Config, opts Options) (*Notifier, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	// One transport: a hung receiver holds only its own connections.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{
		Transport: transport,
		// A redirected POST would turn into a GET elsewhere: refuse it
		// and say so, rather than notify the wrong place.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	abort, stop := context.WithCancel(context.Background())
	n := &Notifier{closing: make(chan struct{}), abort: abort, stop: stop}
	names := map[string]bool{}
	for i, sc := range cfg.Sinks {
		s, err := newSink(sc, opts, client, m)
		if err == nil && names[sc.Name] {
			err = fmt.Errorf("the name of another sink")
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("notify: sinks[%d] (%s): %w", i, sc.Name, err)
		}
		names[sc.Name] = true
		n.sinks = append(n.sinks, s)
	}
	for _, s := range n.sinks {
		n.running.Add(1)
		go func() {
			defer n.running.Done()
			s.run(n.closing, n.abort)
		}()
	}
	return n, nil
}

// Publish queues a notification of each record for every sink whose
// events and apps match it. It never blocks on a receiver and never fails;
// it keeps its own copies, so the caller may reuse the records. Safe for
// concurrent use, also during and after Close (records then still queued
// are counted as dropped).
func (n *Notifier) Publish(recs []*cutoverv1.AuditRecord) {
	for _, r := range recs {
		var c *cutoverv1.AuditRecord // one read-only copy shared by the sinks
		for _, s := range n.sinks {
			if !s.cfg.Matches(r) {
				continue
			}
			if c == nil {
				c = proto.Clone(r).(*cutoverv1.AuditRecord)
			}
			s.enqueue(c)
		}
	}
}

// Close stops taking notifications, delivers what is queued until ctx
// ends, then cancels deliveries in flight and returns once every sink has
// stopped. What was left undelivered is counted as dropped. Idempotent.
func (n *Notifier) Close(ctx context.Context) {
	n.once.Do(func() { close(n.closing) })
	done := make(chan struct{})
	go func() {
		n.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.stop()
		<-done
	}
	n.stop()
}

// Status returns each sink's status, in configuration order. Safe for
// concurrent use.
func (n *Notifier) Status() []Status {
	out := make([]Status, 0, len(n.sinks))
	for _, s := range n.sinks {
		out = append(out, s.status())
	}
	return out
}

// metrics are the counters of every sink, labelled by its name: a label
// set bounded by the configuration.
type metrics struct {
	sent, failed, dropped, retries *prometheus.CounterVec
	queued                         *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_notifications_sent_total",
			Help: "Notifications delivered (2xx), by sink.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_notifications_failed_total",
			Help: "Notifications given up: refused (4xx other than 429) or still failing after the last attempt, by sink.",
		}, []string{"sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_notifications_dropped_total",
			Help: "Notifications never attempted: pushed out of a full queue, or still queued at shutdown, by sink.",
		}, []string{"sink"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_notifications_retries_total",
			Help: "Delivery attempts that failed and were retried, by sink.",
		}, []string{"sink"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cutover_notifications_queued",
			Help: "Notifications waiting in a sink's queue.",
		}, []string{"sink"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.dropped, m.retries, m.queued} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("notify: metrics: %w", err)
		}
	}
	return m, nil
}

// sinkMetrics are one sink's series.
type sinkMetrics struct {
	sent, failed, dropped, retries prometheus.Counter
	queued                         prometheus.Gauge
}

func (m *metrics) of(name string) sinkMetrics {
	// Created now, so every sink shows in /metrics at zero from the start.
	return sinkMetrics{
		sent: m.sent.WithLabelValues(name), failed: m.failed.WithLabelValues(name),
		dropped: m.dropped.WithLabelValues(name), retries: m.retries.WithLabelValues(name),
		queued: m.queued.WithLabelValues(name),
	}
}
