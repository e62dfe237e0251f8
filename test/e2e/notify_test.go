package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// hookReceiver is a real HTTP receiver on 127.0.0.1 that keeps the bodies
// it is sent, in order.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

// webhookNote is what a webhook sink posts.
type webhookNote struct {
	Event, App, Cluster, Time string
	Record                    *cutoverv1.AuditRecord
}

func (h *hookReceiver) webhookNotes(t *testing.T) []webhookNote {
	t.Helper()
	var out []webhookNote
	for _, b := range h.received() {
		var raw struct {
			Event, App, Cluster, Time string
			Record                    json.RawMessage
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatalf("webhook body %s: %v", b, err)
		}
		n := webhookNote{Event: raw.Event, App: raw.App, Cluster: raw.Cluster, Time: raw.Time, Record: &cutoverv1.AuditRecord{}}
		if err := protojson.Unmarshal(raw.Record, n.Record); err != nil {
			t.Fatalf("webhook record %s: %v", raw.Record, err)
		}
		out = append(out, n)
	}
	return out
}

// Given a control plane that tells a Slack channel when demo's rollouts
// start and succeed, tells a deployment tracker every rollout.* event of
// demo, and also notifies a receiver that refuses connections and one that
// never answers, when v1 and then a canary v2 run to Healthy:
//   - the rollouts complete within the usual bound while the silent
//     receiver still holds the first notification;
//   - Slack gets apply and healthy of each revision, in order, readable;
//   - the tracker gets only demo's rollout.* events, in audit order, with
//     the record's fields;
//   - the failures show in /metrics and in warnings that name the sink but
//     never its URL.
func TestNotificationsReachReceiversWithoutSlowingTheRollout(t *testing.T) {
	slack, tracker := newHookReceiver(t), newHookReceiver(t)
	silentEntered, release := make(chan struct{}, 100), make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so that a hang-up ends r.Context()
		select {
		case silentEntered <- struct{}{}:
		default:
		}
		select { // answers never, until the caller hangs up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(silent.Close)
	t.Cleanup(func() { close(release) }) // runs first
	deadAddr, err := harness.FreeAddr()  // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`sinks:
  - name: deployments
    type: slack
    url: %s/services/T0/B0/s3cr3t-slack
    events: [rollout.apply, rollout.healthy]
    apps: [demo]
  - name: tracker
    type: webhook
    url: %s/deployments
    events: ["rollout.*"]
    apps: [demo]
    headers: {Authorization: "Bearer s3cr3t-token"}
  - name: dead
    type: webhook
    url: http://%s/hooks/s3cr3t-dead
    maxAttempts: 2
  - name: silent
    type: slack
    url: %s/services/T0/B0/s3cr3t-silent
    timeout: 60s
`, slack.srv.URL, tracker.srv.URL, deadAddr, silent.URL)
	file := filepath.Join(t.TempDir(), "notify.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	f := newTwoRegionsWith(t, []string{"--notify-config", file})
	ctx := f.ctx() // the same bound as every canary test without notifications
	f.deploy(ctx, "v1")
	if _, err := f.env.Apply(ctx, f.app("v2", "setWeight: 50").Manifest()); err != nil {
		t.Fatal(err)
	}
	f.wait(ctx, "v2 healthy", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY))
	select {
	case <-silentEntered: // and has held it, unanswered, ever since
	case <-ctx.Done():
		t.Error("the silent receiver got no notification")
	}

	// Slack: started and successful, v1 then v2.
	err = harness.Poll(ctx, 20*time.Millisecond, "4 Slack messages", func() (bool, error) { return len(slack.received()) >= 4, nil })
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, b := range slack.received() {
		var msg struct{ Text string }
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("Slack body %s: %v", b, err)
		}
		texts = append(texts, msg.Text)
	}
	if len(texts) != 4 {
		t.Fatalf("%d Slack messages, want 4:\n%s", len(texts), strings.Join(texts, "\n---\n"))
	}
	for i, want := range [][]string{
		{"🚀 Rollout started: demo", "*State:* checking v1", "*By:* anonymous@127.0.0.1", "`rollout.apply`"},
		{"✅ Rollout successful: demo", "→ healthy v1", "*By:* cutover", "`rollout.healthy`"},
		{"🚀 Rollout started: demo", "*State:* healthy v1 → checking v2", "*By:* anonymous@127.0.0.1"},
		{"✅ Rollout successful: demo", "→ healthy v2", "*By:* cutover"},
	} {
		for _, w := range want {
			if !strings.Contains(texts[i], w) {
				t.Errorf("Slack message %d lacks %q:\n%s", i+1, w, texts[i])
			}
		}
	}

	// The tracker: demo's rollout.* events only, in audit order, ending
	// with v2 healthy; apply and healthy of each revision among them.
	err = harness.Poll(ctx, 20*time.Millisecond, "the tracker's v2 healthy", func() (bool, error) {
		notes := tracker.webhookNotes(t)
		return len(notes) > 0 && notes[len(notes)-1].Event == "rollout.healthy" && notes[len(notes)-1].Record.GetAfter() == "healthy v2", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var key []string
	var last uint64
	for _, n := range tracker.webhookNotes(t) {
		r := n.Record
		if n.App != "demo" || r.GetApp() != "demo" || !strings.HasPrefix(n.Event, "rollout.") || n.Event != r.GetAction() ||
			n.Time != r.GetTime().AsTime().UTC().Format(time.RFC3339Nano) || r.GetTarget() != "rollout/demo" || len(r.GetHash()) != 32 {
			t.Errorf("tracker got %+v", n)
		}
		if r.GetSeq() <= last {
			t.Errorf("tracker got record %d after %d", r.GetSeq(), last)
		}
		last = r.GetSeq()
		if n.Event == "rollout.apply" || n.Event == "rollout.healthy" {
			// The records of one step share its summaries: "<phase> <revision> ...".
			if f := strings.Fields(r.GetAfter()); len(f) >= 2 {
				key = append(key, n.Event+" "+f[0]+" "+f[1])
			}
		}
	}
	if want := []string{"rollout.apply checking v1", "rollout.healthy healthy v1",
		"rollout.apply checking v2", "rollout.healthy healthy v2"}; !slices.Equal(key, want) {
		t.Errorf("tracker got %q\nwant       %q", key, want)
	}

	// Failures are visible: counted per sink, and warned about by name.
	err = harness.Poll(ctx, 50*time.Millisecond, "the dead sink's failures in /metrics", func() (bool, error) {
		code, body, err := f.env.HTTP(ctx, http.MethodGet, "/metrics", "")
		if err != nil || code != http.StatusOK {
			return false, fmt.Errorf("GET /metrics: %d %v", code, err)
		}
		failed, sent := metricValue(string(body), "cutover_notifications_failed_total", "dead"),
			metricValue(string(body), "cutover_notifications_sent_total", "deployments")
		return failed >= 1 && sent >= 4, fmt.Errorf("failed{dead} %v, sent{deployments} %v", failed, sent)
	})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.ReadFile(filepath.Join(f.env.Dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "notification not delivered") || !strings.Contains(string(logs), "sink=dead") {
		t.Errorf("server log has no warning about the dead sink")
	}
	if strings.Contains(string(logs), "s3cr3t") {
		t.Errorf("server log shows a sink's URL or header")
	}
}

// metricValue is the value of name{sink="sink"} on a /metrics page, -1 if
// absent.
func metricValue(page, name, sink string) float64 {
	prefix := fmt.Sprintf("%s{sink=%q} ", name, sink)
	for line := range strings.Lines(page) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
