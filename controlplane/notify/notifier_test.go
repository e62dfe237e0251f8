package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cutover-dev/cutover/controlplane/notify"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// deadline bounds every wait of these tests; none is expected to come close.
const deadline = 10 * time.Second

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func rec(seq uint64, action, app string) *cutoverv1.AuditRecord {
	return &cutoverv1.AuditRecord{
		Seq: seq, Time: timestamppb.New(t0.Add(time.Duration(seq) * time.Second)),
		Actor: "alice", Action: action, Target: "rollout/" + app, App: app, Cluster: "eu-1",
		Before: "progressing v2 wave 2 step 2", After: "healthy v2", Reason: "all waves promoted",
	}
}

// receiver is a real HTTP server on 127.0.0.1 that records what it is
// sent and answers with reply (200 when nil).
type receiver struct {
	srv   *httptest.Server
	reply func(n int, w http.ResponseWriter) // n counts requests from 1

	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
}

func newReceiver(t *testing.T, reply func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rv := &receiver{reply: reply}
	rv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		rv.bodies = append(rv.bodies, body)
		rv.headers = append(rv.headers, r.Header.Clone())
		n := len(rv.bodies)
		rv.mu.Unlock()
		if rv.reply != nil {
			rv.reply(n, w)
		}
	}))
	t.Cleanup(rv.srv.Close)
	return rv
}

func (rv *receiver) url(path string) string { return rv.srv.URL + path }

func (rv *receiver) received() [][]byte {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.bodies)
}

// webhookEvents decodes what a webhook receiver got: "<event> <app> <seq>".
func (rv *receiver) webhookEvents(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, b := range rv.received() {
		var m struct {
			Event, App string
			Record     json.RawMessage
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("webhook body %s: %v", b, err)
		}
		r := &cutoverv1.AuditRecord{}
		if err := protojson.Unmarshal(m.Record, r); err != nil {
			t.Fatalf("webhook record %s: %v", m.Record, err)
		}
		out = append(out, fmt.Sprintf("%s %s %d", m.Event, m.App, r.GetSeq()))
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waiting for %s: gave up after %s", what, deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs a notifier with fast retries and closes it when the test ends.
func start(t *testing.T, opts notify.Options, sinks ...notify.Sink) *notify.Notifier {
	t.Helper()
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff, opts.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	n, err := notify.New(notify.Config{Sinks: sinks}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

func webhook(name, url string) notify.Sink {
	return notify.Sink{Name: name, Kind: notify.KindWebhook, URL: url}
}

func statusOf(n *notify.Notifier, name string) notify.Status {
	for _, s := range n.Status() {
		if s.Name == name {
			return s
		}
	}
	return notify.Status{}
}

// counter reads a cutover_notifications_* counter of a sink from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{sink=%q}", name, sink)
	return 0
}

// Each sink gets the records whose action and app match its patterns,
// in order; a sink with no apps also gets records about no app.
func TestSinksGetTheEventsAndAppsTheyAskFor(t *testing.T) {
	t.Parallel()
	all, rollouts, gates := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	rs := webhook("rollouts", rollouts.url("/"))
	rs.Events, rs.Apps = []string{"rollout.*"}, []string{"pay*"}
	gs := webhook("gates", gates.url("/"))
	gs.Events = []string{"gate.tripped", "rollout.failed"}
	n := start(t, notify.Options{}, webhook("all", all.url("/")), rs, gs)

	agent := &cutoverv1.AuditRecord{Seq: 7, Action: "agent.connect", Target: "cluster/eu-1", Cluster: "eu-1", Time: timestamppb.New(t0)}
	n.Publish([]*cutoverv1.AuditRecord{rec(1, "rollout.apply", "payments"), rec(2, "rollout.apply", "web"), rec(3, "wave.started", "payments")})
	n.Publish([]*cutoverv1.AuditRecord{rec(4, "gate.tripped", "web"), rec(5, "rollout.abort", "payments"), rec(6, "rollout.failed", "payouts"), agent})

	want := map[*receiver][]string{
		all:      {"rollout.apply payments 1", "rollout.apply web 2", "wave.started payments 3", "gate.tripped web 4", "rollout.abort payments 5", "rollout.failed payouts 6", "agent.connect  7"},
		rollouts: {"rollout.apply payments 1", "rollout.abort payments 5", "rollout.failed payouts 6"},
		gates:    {"gate.tripped web 4", "rollout.failed payouts 6"},
	}
	for rv, w := range want {
		waitFor(t, "deliveries", func() bool { return len(rv.received()) >= len(w) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	n.Close(ctx)
	for rv, w := range want {
		if got := rv.webhookEvents(t); !slices.Equal(got, w) {
			t.Errorf("received %q\nwant     %q", got, w)
		}
	}
}

func TestSinkMatches(t *testing.T) {
	t.Parallel()
	s := notify.Sink{Events: []string{"rollout.*"}, Apps: []string{"*"}}
	if !s.Matches(rec(1, "rollout.healthy", "web")) || s.Matches(rec(1, "wave.started", "web")) {
		t.Error("events filter")
	}
	if s.Matches(&cutoverv1.AuditRecord{Action: "rollout.apply"}) {
		t.Error("a sink with apps matched a record about no app")
	}
	if !(notify.Sink{}).Matches(&cutoverv1.AuditRecord{Action: "auth.denied"}) {
		t.Error("a sink without filters refused a record")
	}
}

// A Slack sink posts a message a person can read: what happened to which
// app, by whom, the state before and after, and why.
func TestSlackPayload(t *testing.T) {
	t.Parallel()
	rv := newReceiver(t, nil)
	n := start(t, notify.Options{}, notify.Sink{Name: "chat", Kind: notify.KindSlack, URL: rv.url("/services/T0/B0/X")})
	r := rec(42, "rollout.healthy", "demo")
	r.Actor, r.Reason = "cutover", "all waves promoted <@here> & done"
	n.Publish([]*cutoverv1.AuditRecord{r})
	waitFor(t, "the message", func() bool { return len(rv.received()) == 1 })

	var msg struct {
		Text   string
		Blocks []struct {
			Type   string
			Text   struct{ Text string }
			Fields []struct{ Text string }
		}
	}
	body := rv.received()[0]
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	for _, want := range []string{"✅ Rollout successful: demo", "*State:* progressing v2 wave 2 step 2 → healthy v2",
		"*By:* cutover", "*Cluster:* eu-1", "*Reason:* all waves promoted &lt;@here&gt; &amp; done", "`rollout.healthy`", "audit record 42"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, msg.Text)
		}
	}
	if len(msg.Blocks) != 3 || msg.Blocks[0].Type != "section" || len(msg.Blocks[0].Fields) != 3 || msg.Blocks[2].Type != "context" {
		t.Errorf("blocks: %s", body)
	}
	if ct := rv.headers[0].Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

// A webhook sink posts the record as `cutover audit export` prints it,
// with the event, app, cluster and time on top, and the configured headers.
func TestWebhookPayload(t *testing.T) {
	t.Parallel()
	rv := newReceiver(t, nil)
	s := webhook("tracker", rv.url("/deployments"))
	s.Headers = map[string]string{"Authorization": "Bearer t0ken"}
	n := start(t, notify.Options{}, s)
	r := rec(42, "gate.tripped", "demo")
	r.Hash = []byte{1, 2, 3}
	n.Publish([]*cutoverv1.AuditRecord{r})
	r.Reason = "changed after Publish" // the notifier keeps its own copy
	waitFor(t, "the message", func() bool { return len(rv.received()) == 1 })

	var msg struct {
		Event, App, Cluster, Time string
		Record                    json.RawMessage
	}
	body := rv.received()[0]
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if msg.Event != "gate.tripped" || msg.App != "demo" || msg.Cluster != "eu-1" || msg.Time != "2025-03-14T09:27:35Z" {
		t.Errorf("top-level fields: %s", body)
	}
	got := &cutoverv1.AuditRecord{}
	if err := protojson.Unmarshal(msg.Record, got); err != nil {
		t.Fatal(err)
	}
	if got.GetSeq() != 42 || got.GetActor() != "alice" || got.GetBefore() != "progressing v2 wave 2 step 2" ||
		got.GetReason() != "all waves promoted" || !bytes.Equal(got.GetHash(), []byte{1, 2, 3}) {
		t.Errorf("record: %s", msg.Record)
	}
	if h := rv.headers[0].Get("Authorization"); h != "Bearer t0ken" {
		t.Errorf("Authorization %q", h)
	}
}

// A receiver that fails twice gets the notification on the third attempt.
func TestRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	rv := newReceiver(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	reg := prometheus.NewRegistry()
	n := start(t, notify.Options{Registerer: reg}, webhook("flaky", rv.url("/")))
	n.Publish([]*cutoverv1.AuditRecord{rec(1, "rollout.apply", "web")})
	waitFor(t, "delivery", func() bool { return statusOf(n, "flaky").Sent == 1 })
	if got := len(rv.received()); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
	st := statusOf(n, "flaky")
	if st.Failed != 0 || !strings.Contains(st.LastError, "status 429") {
		t.Errorf("status %+v", st)
	}
	if sent, retries := counter(t, reg, "cutover_notifications_sent_total", "flaky"), counter(t, reg, "cutover_notifications_retries_total", "flaky"); sent != 1 || retries != 2 {
		t.Errorf("sent %v, retries %v; want 1, 2", sent, retries)
	}
}

// A 4xx other than 429 is final; a receiver that keeps failing is given up
// after MaxAttempts; both count as failed and are logged with the sink's
// name, never with its URL or headers.
func TestFailuresAreCountedAndLoggedWithoutSecrets(t *testing.T) {
	t.Parallel()
	refusing := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no_service\n"))
	})
	broken := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/services/T0/B0/s3cr3t-path"
	_ = ln.Close() // nothing listens there now

	var logs bytes.Buffer
	var logMu sync.Mutex
	reg := prometheus.NewRegistry()
	sinks := []notify.Sink{webhook("refusing", refusing.url("/s3cr3t-path")), webhook("broken", broken.url("/s3cr3t-path")), webhook("dead", dead)}
	for i := range sinks {
		sinks[i].MaxAttempts = 3
		sinks[i].Headers = map[string]string{"Authorization": "Bearer s3cr3t-token"}
	}
	n := start(t, notify.Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}, sinks...)
	n.Publish([]*cutoverv1.AuditRecord{rec(1, "rollout.apply", "web")})
	for _, s := range sinks {
		waitFor(t, s.Name+" giving up", func() bool { return statusOf(n, s.Name).Failed == 1 })
		if got := counter(t, reg, "cutover_notifications_failed_total", s.Name); got != 1 {
			t.Errorf("%s: failed_total %v, want 1", s.Name, got)
		}
	}
	if got := len(refusing.received()); got != 1 {
		t.Errorf("a 404 was tried %d times, want once", got)
	}
	if got := len(broken.received()); got != 3 {
		t.Errorf("a 500 was tried %d times, want 3 (MaxAttempts)", got)
	}
	if st := statusOf(n, "refusing"); !strings.Contains(st.LastError, `status 404: "no_service"`) {
		t.Errorf("refusing: last error %q", st.LastError)
	}
	if st := statusOf(n, "dead"); !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("dead: last error %q", st.LastError)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, s := range sinks {
		if !strings.Contains(out, "sink="+s.Name) {
			t.Errorf("no warning names sink %s:\n%s", s.Name, out)
		}
	}
	for _, st := range n.Status() {
		out += st.LastError
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("a URL path or header leaked into the logs or status:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// hangingReceiver blocks every request until the test ends; entered is
// signalled as each request arrives.
func hangingReceiver(t *testing.T) (*receiver, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	rv := newReceiver(t, func(int, http.ResponseWriter) {
		entered <- struct{}{}
		<-release
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return rv, entered
}

// A receiver that never answers holds up neither the caller of Publish nor
// the other sinks; Close gives up on it after its bounded drain.
func TestHangingReceiverDelaysNobody(t *testing.T) {
	t.Parallel()
	hung, entered := hangingReceiver(t)
	fine := newReceiver(t, nil)
	slow := webhook("hung", hung.url("/"))
	slow.Timeout = time.Minute
	reg := prometheus.NewRegistry()
	n, err := notify.New(notify.Config{Sinks: []notify.Sink{slow, webhook("fine", fine.url("/"))}}, notify.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	n.Publish([]*cutoverv1.AuditRecord{rec(1, "rollout.apply", "web")})
	<-entered // the hung sink's first delivery is now blocked in its handler
	for i := 2; i <= 100; i++ {
		n.Publish([]*cutoverv1.AuditRecord{rec(uint64(i), "rollout.apply", "web")})
	}
	// Publish returned 100 times while the handler is still blocked (it is
	// released only when the test ends), so it waited for no receiver.
	waitFor(t, "the other sink's 100 deliveries", func() bool { return len(fine.received()) == 100 })
	if got := len(hung.received()); got != 1 {
		t.Errorf("the hung receiver saw %d requests, want 1 (still in flight)", got)
	}
	if st := statusOf(n, "hung"); st.Queued != 99 || st.Sent != 0 {
		t.Errorf("hung sink: %+v, want 99 queued", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() { n.Close(ctx); close(closed) }()
	select {
	case <-closed:
	case <-time.After(deadline):
		t.Fatal("Close did not return after its drain time ran out")
	}
	if st := statusOf(n, "hung"); st.Dropped != 100 || st.Queued != 0 {
		t.Errorf("hung sink after Close: %+v, want all 100 dropped", st)
	}
	if got := counter(t, reg, "cutover_notifications_dropped_total", "hung"); got != 100 {
		t.Errorf("dropped_total %v, want 100", got)
	}
	n.Publish([]*cutoverv1.AuditRecord{rec(101, "rollout.apply", "web")}) // after Close: counted, not queued
	if st := statusOf(n, "fine"); st.Sent != 100 || st.Dropped != 1 {
		t.Errorf("fine sink after Close: %+v", st)
	}
}

// A full queue drops its oldest notifications, counts them, and delivers
// the newest once the receiver answers again.
func TestQueueOverflowDropsTheOldest(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	rv := newReceiver(t, func(n int, _ http.ResponseWriter) {
		if n == 1 {
			entered <- struct{}{}
			<-release
		}
	})
	reg := prometheus.NewRegistry()
	n := start(t, notify.Options{Registerer: reg, QueueSize: 5}, webhook("small", rv.url("/")))
	n.Publish([]*cutoverv1.AuditRecord{rec(1, "rollout.apply", "web")})
	<-entered
	var batch []*cutoverv1.AuditRecord
	for i := 2; i <= 20; i++ {
		batch = append(batch, rec(uint64(i), "step.completed", "web"))
	}
	n.Publish(batch)
	if st := statusOf(n, "small"); st.Queued != 5 || st.Dropped != 14 {
		t.Errorf("status %+v, want 5 queued and 14 dropped", st)
	}
	close(release)
	waitFor(t, "the queue drained", func() bool { return statusOf(n, "small").Sent == 6 })
	want := []string{"rollout.apply web 1", "step.completed web 16", "step.completed web 17", "step.completed web 18", "step.completed web 19", "step.completed web 20"}
	if got := rv.webhookEvents(t); !slices.Equal(got, want) {
		t.Errorf("received %q\nwant     %q", got, want)
	}
	if got := counter(t, reg, "cutover_notifications_dropped_total", "small"); got != 14 {
		t.Errorf("dropped_total %v, want 14", got)
	}
}

// Close delivers what is queued when the receivers answer in time.
func TestCloseDrainsTheQueue(t *testing.T) {
	t.Parallel()
	rv := newReceiver(t, func(int, http.ResponseWriter) { time.Sleep(time.Millisecond) })
	n, err := notify.New(notify.Config{Sinks: []notify.Sink{webhook("a", rv.url("/"))}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var batch []*cutoverv1.AuditRecord
	for i := 1; i <= 50; i++ {
		batch = append(batch, rec(uint64(i), "step.completed", "web"))
	}
	n.Publish(batch)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	n.Close(ctx)
	if got := len(rv.received()); got != 50 {
		t.Errorf("%d of 50 delivered by Close", got)
	}
}

func TestNewRefusesWhatItCannotServe(t *testing.T) {
	t.Parallel()
	for _, cfg := range []notify.Config{
		{Sinks: []notify.Sink{{Name: "a", Kind: "teams", URL: "http://127.0.0.1/"}}},
		{Sinks: []notify.Sink{webhook("a", "http://127.0.0.1/"), webhook("a", "http://127.0.0.1/")}},
		{Sinks: []notify.Sink{webhook("a", "mailto:ops@example.com")}},
	} {
		if n, err := notify.New(cfg, notify.Options{}); err == nil {
			n.Close(context.Background())
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
