package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/version"
)

// encoder turns a record into the body a sink posts.
type encoder func(*cutoverv1.AuditRecord) ([]byte, error)

// encoderOf is the factory of sink kinds.
func encoderOf(k Kind) (encoder, error) {
	switch k {
	case KindSlack:
		return slackBody, nil
	case KindWebhook:
		return webhookBody, nil
	}
	return nil, fmt.Errorf("unknown type %q", k)
}

// dropLogEvery spaces the warnings about a full queue.
const dropLogEvery = time.Minute

// sink delivers one receiver's notifications, in order, from its queue.
type sink struct {
	cfg     Sink
	encode  encoder
	client  *http.Client
	log     *slog.Logger
	m       sinkMetrics
	size    int
	initial time.Duration
	max     time.Duration
	wake    chan struct{} // capacity 1: "the queue is not empty"

	mu          sync.Mutex
	queue       []*cutoverv1.AuditRecord
	stopped     bool // the goroutine has ended: nothing will be delivered
	abandoned   int  // deliveries cut short by Close, counted but not yet logged
	st          Status
	lastDropLog time.Time
}

func newSink(c Sink, opts Options, client *http.Client, m *metrics) (*sink, error) {
	enc, err := encoderOf(c.Kind)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("url must be an http or https URL")
	}
	if !nameRE.MatchString(c.Name) {
		return nil, fmt.Errorf("name %q must be 1-64 letters, digits, '.', '_' or '-'", c.Name)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	return &sink{
		cfg: c, encode: enc, client: client, m: m.of(c.Name),
		log:  opts.Logger.With("sink", c.Name),
		size: opts.QueueSize, initial: opts.InitialBackoff, max: opts.MaxBackoff,
		wake: make(chan struct{}, 1),
		st:   Status{Name: c.Name},
	}, nil
}

// enqueue adds r, dropping the oldest notification when the queue is full:
// the newest say most about where a rollout stands now.
func (s *sink) enqueue(r *cutoverv1.AuditRecord) {
	s.mu.Lock()
	if s.stopped {
		s.dropLocked(1, "the notifier is closed")
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.size {
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.dropLocked(1, "the queue is full")
	}
	s.queue = append(s.queue, r)
	s.m.queued.Set(float64(len(s.queue)))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sink) dropLocked(n int, why string) {
	s.st.Dropped += uint64(n)
	s.m.dropped.Add(float64(n))
	if now := time.Now(); now.Sub(s.lastDropLog) >= dropLogEvery {
		s.lastDropLog = now
		s.log.Warn("notifications dropped", "why", why, "dropped_total", s.st.Dropped)
	}
}

// run delivers until closing is closed and the queue is empty, or abort
// ends; what is left then is dropped.
func (s *sink) run(closing <-chan struct{}, abort context.Context) {
	defer s.finish()
	for {
		r, ok := s.next(closing)
		if !ok || !s.deliver(abort, r) {
			return
		}
	}
}

// next pops the oldest notification, waiting for one; false once closing
// is closed and the queue is empty.
func (s *sink) next(closing <-chan struct{}) (*cutoverv1.AuditRecord, bool) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			r := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.m.queued.Set(float64(len(s.queue)))
			s.mu.Unlock()
			return r, true
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-closing:
			s.mu.Lock()
			empty := len(s.queue) == 0
			s.mu.Unlock()
			if empty {
				return nil, false
			}
		}
	}
}

// finish drops what is left and says once what shutdown lost.
func (s *sink) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	n := len(s.queue)
	s.queue = nil
	s.m.queued.Set(0)
	s.st.Dropped += uint64(n)
	s.m.dropped.Add(float64(n))
	if lost := n + s.abandoned; lost > 0 {
		s.log.Warn("notifications left undelivered at shutdown", "count", lost, "dropped_total", s.st.Dropped)
	}
}

// abandon counts a delivery cut short by Close; finish logs it.
func (s *sink) abandon() {
	s.mu.Lock()
	s.abandoned++
	s.st.Dropped++
	s.mu.Unlock()
	s.m.dropped.Inc()
}

// deliver posts r, retrying with backoff; false when abort ended it, in
// which case r is counted as dropped.
func (s *sink) deliver(abort context.Context, r *cutoverv1.AuditRecord) bool {
	body, err := s.encode(r)
	if err != nil {
		s.failed(r, 0, fmt.Errorf("encode: %w", err))
		return true
	}
	for attempt := 1; ; attempt++ {
		retryAfter, err := s.post(abort, body)
		if err == nil {
			s.mu.Lock()
			s.st.Sent++
			s.mu.Unlock()
			s.m.sent.Inc()
			return true
		}
		if abort.Err() != nil {
			s.abandon()
			return false
		}
		s.noteError(err)
		var final *finalError
		if errors.As(err, &final) || attempt >= s.cfg.MaxAttempts {
			s.failed(r, attempt, err)
			return true
		}
		s.m.retries.Inc()
		wait := min(s.initial<<(attempt-1), s.max)
		if retryAfter > wait {
			wait = min(retryAfter, s.max)
		}
		s.log.Debug("notification attempt failed; retrying", "event", r.GetAction(), "app", r.GetApp(),
			"seq", r.GetSeq(), "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-abort.Done():
			t.Stop()
			s.abandon()
			return false
		}
	}
}

func (s *sink) noteError(err error) {
	s.mu.Lock()
	s.st.LastError, s.st.LastErrorTime = err.Error(), time.Now()
	s.mu.Unlock()
}

func (s *sink) failed(r *cutoverv1.AuditRecord, attempts int, err error) {
	if attempts == 0 {
		s.noteError(err)
	}
	s.mu.Lock()
	s.st.Failed++
	s.mu.Unlock()
	s.m.failed.Inc()
	s.log.Warn("notification not delivered", "event", r.GetAction(), "app", r.GetApp(), "cluster", r.GetCluster(),
		"seq", r.GetSeq(), "attempts", attempts, "err", err)
}

func (s *sink) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Queued = len(s.queue)
	return st
}

// finalError is a failure that retrying cannot fix.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }
func (e *finalError) Unwrap() error { return e.err }

// post makes one attempt. It returns how long the receiver asked to wait
// (Retry-After of a 429), and an error that never quotes the URL or the
// headers: a *finalError when retrying cannot help.
func (s *sink) post(ctx context.Context, body []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, &finalError{errors.New("cannot build a request to the sink's URL")}
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover/"+version.Version)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, redact(ctx, err, s.cfg.Timeout)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusTooManyRequests:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("status %d%s", code, quote(snippet))
	case code >= 500:
		return 0, fmt.Errorf("status %d%s", code, quote(snippet))
	case code >= 300 && code < 400:
		return 0, &finalError{fmt.Errorf("status %d: redirected; configure the URL it redirects to", code)}
	default:
		return 0, &finalError{fmt.Errorf("status %d%s", code, quote(snippet))}
	}
}

// redact drops the URL a *url.Error quotes: a webhook's path is its secret.
func redact(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToUpper(ue.Op), ue.Err)
	}
	return err
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// quote shows the start of a receiver's answer (Slack says why there,
// e.g. "invalid_token") on one line.
func quote(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.TrimSpace(string(b)))
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return ": " + strconv.Quote(s)
}
