package notify_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/controlplane/notify"
)

func TestParseValidConfig(t *testing.T) {
	t.Parallel()
	cfg, err := notify.Parse([]byte(`
sinks:
  - name: deployments
    type: slack
    url: https://hooks.slack.com/services/T000/B000/XXXX
    events: ["rollout.*", gate.tripped]
    apps: ["payments-*", web]
  - name: tracker
    type: webhook
    url: http://127.0.0.1:9000/deployments
    timeout: 250ms
    maxAttempts: 8
    headers:
      authorization: Bearer abc
      X-Team: payments
`))
	if err != nil {
		t.Fatal(err)
	}
	want := notify.Config{Sinks: []notify.Sink{
		{Name: "deployments", Kind: notify.KindSlack, URL: "https://hooks.slack.com/services/T000/B000/XXXX",
			Events: []string{"rollout.*", "gate.tripped"}, Apps: []string{"payments-*", "web"},
			Timeout: notify.DefaultTimeout, MaxAttempts: notify.DefaultMaxAttempts},
		{Name: "tracker", Kind: notify.KindWebhook, URL: "http://127.0.0.1:9000/deployments",
			Timeout: 250 * time.Millisecond, MaxAttempts: 8,
			Headers: map[string]string{"Authorization": "Bearer abc", "X-Team": "payments"}},
	}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", cfg, want)
	}
}

// Every problem is reported with its path, all at once, and never quotes a
// URL or a header value (they hold secrets).
func TestParseRefusesBadConfigs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", ``, []string{"config: must be a mapping with sinks"}},
		{"no sinks", `sinks: []`, []string{"sinks: at least one sink is required"}},
		{"unknown top-level field", "sinks:\n  - {name: a, type: slack, url: http://x}\nsink: []", []string{"sink: unknown field"}},
		{"unknown sink field", `sinks: [{name: a, type: slack, url: "http://x", channel: "#ops"}]`, []string{"sinks[0].channel: unknown field"}},
		{"bad url", `sinks: [{name: a, type: slack, url: "http://x"}, {name: b, type: webhook, url: "ftp://secret-host/s3cr3t"}]`,
			[]string{"sinks[1].url: must be an http or https URL"}},
		{"relative url", `sinks: [{name: a, type: webhook, url: "/hooks/s3cr3t"}]`, []string{"sinks[0].url: must be an http or https URL"}},
		{"missing fields", `sinks: [{}]`, []string{"sinks[0].name: is required", "sinks[0].type: is required", "sinks[0].url: is required"}},
		{"duplicate names", `sinks: [{name: ops, type: slack, url: "http://x"}, {name: ops, type: webhook, url: "http://y"}]`,
			[]string{`sinks[1].name: "ops" is the name of another sink`}},
		{"bad name", `sinks: [{name: "ops channel", type: slack, url: "http://x"}]`, []string{"sinks[0].name: "}},
		{"unknown type", `sinks: [{name: a, type: teams, url: "http://x"}]`, []string{`sinks[0].type: unknown type "teams"`}},
		{"wrong type", `sinks: [{name: 3, type: slack, url: "http://x", events: "rollout.*"}]`,
			[]string{"sinks[0].name: must be a string", "sinks[0].events: must be a list of strings"}},
		{"event typo", `sinks: [{name: a, type: slack, url: "http://x", events: ["rollout.healthy", "gate.tripd"]}]`,
			[]string{`sinks[0].events[1]: "gate.tripd" matches no event`}},
		{"bad glob", `sinks: [{name: a, type: slack, url: "http://x", apps: ["web-[", ""]}]`,
			[]string{`sinks[0].apps[0]: "web-[" is not a valid pattern`, "sinks[0].apps[1]: empty pattern"}},
		{"empty list", `sinks: [{name: a, type: slack, url: "http://x", events: []}]`, []string{"sinks[0].events: must not be empty"}},
		{"bad timeout", `sinks: [{name: a, type: slack, url: "http://x", timeout: 5}, {name: b, type: slack, url: "http://x", timeout: "-1s"}]`,
			[]string{"sinks[0].timeout: must be a duration", "sinks[1].timeout: -1s must be more than 0"}},
		{"bad attempts", `sinks: [{name: a, type: slack, url: "http://x", maxAttempts: 0}]`, []string{"sinks[0].maxAttempts: must be a whole number from 1 to 20"}},
		{"bad headers", "sinks:\n  - name: a\n    type: webhook\n    url: http://x\n    headers: {\"Bad Name\": v, Content-Type: text/plain, X-Token: \"s3cr3t\\nX-Evil: 1\"}",
			[]string{"sinks[0].headers.Bad Name: is not a valid header name", "sinks[0].headers.Content-Type: is set by Cutover",
				"sinks[0].headers.X-Token: must be one line"}},
		{"duplicate keys", "sinks:\n  - name: a\n    name: b\n    type: slack\n    url: http://x", []string{"malformed YAML"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := notify.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse error\n  %v\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "secret-host") {
				t.Errorf("Parse error quotes a URL or header value: %v", err)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "notify.yaml")
	if err := os.WriteFile(file, []byte(`sinks: [{name: a, type: slack}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := notify.Load(file)
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "sinks[0].url: is required") {
		t.Errorf("Load = %v, want the file and the problem", err)
	}
	if _, err := notify.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
