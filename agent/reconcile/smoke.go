package reconcile

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// smokeRetry is the pause between attempts of one check.
const smokeRetry = time.Second

// smoke runs a blue-green preview's smoke checks in the background, once
// per preview revision and set of checks, and keeps the result.
type smoke struct {
	mu     sync.Mutex
	key    string // preview revision key and checks the result is for
	result string // "" while running; spec.SmokePassed, or why one failed
	cancel context.CancelFunc
	done   chan struct{}
}

// ensure starts the checks for key against preview unless they ran or
// run for it already, and returns their result so far. With start false
// (the preview is not ready at the moment) it only returns the result for
// key, kept across such flickers. An empty key (no preview, or no checks)
// stops them.
func (s *smoke) ensure(key, preview string, checks []*cutoverv1.SmokeCheck, client *http.Client, start bool) string {
	s.mu.Lock()
	if s.key == key || (!start && key != "") {
		r := ""
		if s.key == key {
			r = s.result
		}
		s.mu.Unlock()
		return r
	}
	s.mu.Unlock()
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.result = key, ""
	if key == "" {
		return ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		r := runSmoke(ctx, preview, checks, client)
		s.mu.Lock()
		if s.key == key && ctx.Err() == nil {
			s.result = r
		}
		s.mu.Unlock()
	}(s.done)
	return ""
}

// stop cancels checks in flight and waits for them.
func (s *smoke) stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done, s.key = nil, nil, ""
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// smokeKey identifies a run: the preview revision and the checks.
func smokeKey(revKey string, checks []*cutoverv1.SmokeCheck) string {
	if revKey == "" || len(checks) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(revKey)
	for _, c := range checks {
		data, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		fmt.Fprintf(&b, "|%x", data)
	}
	return b.String()
}

// runSmoke runs the checks in order and returns spec.SmokePassed or the first
// failure.
func runSmoke(ctx context.Context, preview string, checks []*cutoverv1.SmokeCheck, client *http.Client) string {
	for i, c := range checks {
		name := c.GetName()
		if name == "" {
			name = fmt.Sprintf("check %d", i+1)
		}
		var err error
		for attempt := range spec.SmokeAttempts(c) {
			if attempt > 0 {
				select {
				case <-ctx.Done():
					return ""
				case <-time.After(smokeRetry):
				}
			}
			if err = smokeOnce(ctx, preview, c, client); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			return ""
		}
		if err != nil {
			return fmt.Sprintf("%s: %v (%d attempts)", name, err, spec.SmokeAttempts(c))
		}
	}
	return spec.SmokePassed
}

func smokeOnce(ctx context.Context, preview string, c *cutoverv1.SmokeCheck, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, spec.SmokeTimeout(c))
	defer cancel()
	url := strings.ReplaceAll(c.GetUrl(), spec.PreviewPlaceholder, preview)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	want := int(c.GetExpectStatus())
	if (want == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299)) || (want != 0 && resp.StatusCode != want) {
		expect := "2xx"
		if want != 0 {
			expect = fmt.Sprint(want)
		}
		return fmt.Errorf("GET %s: status %d, want %s", url, resp.StatusCode, expect)
	}
	return nil
}
