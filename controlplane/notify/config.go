package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cutover-dev/cutover/internal/audit"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Kind is how a sink formats and sends notifications.
type Kind string

// Kinds.
const (
	// KindSlack posts {"text", "blocks"} to a Slack-compatible incoming
	// webhook (Slack, Mattermost, Rocket.Chat, ...).
	KindSlack Kind = "slack"
	// KindWebhook posts the audit record as JSON with the event, app,
	// cluster and time at the top level, for deployment trackers and
	// automation.
	KindWebhook Kind = "webhook"
)

// Defaults and limits of a sink's settings.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 5
	maxTimeout         = time.Minute
	maxAttemptsLimit   = 20
	maxConfigFile      = 1 << 20
)

// Config is a parsed notifications file.
type Config struct {
	Sinks []Sink
}

// Sink is one receiver of notifications and what it is sent.
type Sink struct {
	// Name identifies the sink in logs and metrics (never its URL).
	Name string
	Kind Kind
	// URL is where notifications are POSTed. It often holds a secret.
	URL string
	// Events are action names or path.Match patterns ("rollout.*",
	// "gate.tripped"); empty means every event.
	Events []string
	// Apps are path.Match patterns of app names; empty means every record,
	// including those about no app (agent connects, refused requests).
	Apps []string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Headers are added to every request, e.g. an Authorization header.
	Headers map[string]string
	// MaxAttempts bounds the attempts to deliver one notification.
	MaxAttempts int
}

// Matches reports whether the sink wants the record: its action matches
// one of Events and its app one of Apps (an empty list matches all).
func (s Sink) Matches(r *cutoverv1.AuditRecord) bool {
	if len(s.Events) > 0 && !matchAny(s.Events, r.GetAction()) {
		return false
	}
	if len(s.Apps) == 0 {
		return true
	}
	return r.GetApp() != "" && matchAny(s.Apps, r.GetApp())
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// Load reads and parses a notifications file.
func Load(file string) (Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("notify config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

// Parse parses a notifications file (YAML or JSON):
//
//	sinks:
//	  - name: deployments
//	    type: slack
//	    url: https://hooks.slack.com/services/...
//	    events: ["rollout.*", "gate.tripped"]
//	    apps: ["payments-*"]
//	  - name: tracker
//	    type: webhook
//	    url: https://tracker.example.com/deployments
//	    timeout: 10s
//	    maxAttempts: 8
//	    headers: {Authorization: "Bearer ..."}
//
// Unknown fields, wrong types and invalid values are all refused, each
// reported with its path, e.g. "sinks[1].url: must be an http or https URL".
// Problems never quote a URL or a header value: they may be secrets.
func Parse(data []byte) (Config, error) {
	if len(data) > maxConfigFile {
		return Config{}, fmt.Errorf("notify config: %d bytes, at most %d", len(data), maxConfigFile)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Config{}, fmt.Errorf("notify config: malformed YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return Config{}, fmt.Errorf("notify config: malformed document: %w", err)
	}
	var p problems
	cfg := parseConfig(&p, doc)
	if len(p) > 0 {
		return Config{}, fmt.Errorf("notify config: %s", strings.Join(p, "; "))
	}
	return cfg, nil
}

type problems []string

func (p *problems) add(at, format string, args ...any) {
	*p = append(*p, at+": "+fmt.Sprintf(format, args...))
}

func parseConfig(p *problems, doc any) Config {
	top, ok := doc.(map[string]any)
	if !ok {
		p.add("config", "must be a mapping with sinks")
		return Config{}
	}
	var cfg Config
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if k != "sinks" {
			p.add(k, "unknown field")
		}
	}
	raw, ok := top["sinks"].([]any)
	switch {
	case top["sinks"] == nil:
		p.add("sinks", "at least one sink is required")
		return cfg
	case !ok:
		p.add("sinks", "must be a list")
		return cfg
	case len(raw) == 0:
		p.add("sinks", "at least one sink is required")
	}
	names := map[string]bool{}
	for i, v := range raw {
		at := fmt.Sprintf("sinks[%d]", i)
		s, ok := parseSink(p, at, v)
		if !ok {
			continue
		}
		if names[s.Name] {
			p.add(at+".name", "%q is the name of another sink", s.Name)
		}
		names[s.Name] = true
		cfg.Sinks = append(cfg.Sinks, s)
	}
	return cfg
}

// nameRE keeps a sink's name a short, safe metric label value.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// headerNameRE is an HTTP token (RFC 9110, 5.6.2).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func parseSink(p *problems, at string, v any) (Sink, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		p.add(at, "must be a mapping")
		return Sink{}, false
	}
	s := Sink{Timeout: DefaultTimeout, MaxAttempts: DefaultMaxAttempts}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fp := at + "." + k
		switch k {
		case "name":
			s.Name = str(p, fp, m[k])
		case "type":
			s.Kind = Kind(str(p, fp, m[k]))
		case "url":
			s.URL = str(p, fp, m[k])
		case "events":
			s.Events = patterns(p, fp, m[k], checkEvent)
		case "apps":
			s.Apps = patterns(p, fp, m[k], checkPattern)
		case "timeout":
			s.Timeout = duration(p, fp, m[k])
		case "headers":
			s.Headers = headers(p, fp, m[k])
		case "maxAttempts":
			s.MaxAttempts = integer(p, fp, m[k], 1, maxAttemptsLimit)
		default:
			p.add(fp, "unknown field")
		}
	}
	switch {
	case s.Name == "":
		p.add(at+".name", "is required")
	case !nameRE.MatchString(s.Name):
		p.add(at+".name", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	switch s.Kind {
	case KindSlack, KindWebhook:
	case "":
		p.add(at+".type", "is required (%s or %s)", KindSlack, KindWebhook)
	default:
		p.add(at+".type", "unknown type %q (%s or %s)", s.Kind, KindSlack, KindWebhook)
	}
	if _, has := m["url"]; !has {
		p.add(at+".url", "is required")
	} else if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(at+".url", "must be an http or https URL")
	}
	return s, true
}

func str(p *problems, at string, v any) string {
	s, ok := v.(string)
	if !ok {
		p.add(at, "must be a string")
	}
	return s
}

func patterns(p *problems, at string, v any, check func(string) error) []string {
	list, ok := v.([]any)
	if !ok {
		p.add(at, "must be a list of strings")
		return nil
	}
	if len(list) == 0 {
		p.add(at, "must not be empty (leave it out to match every one)")
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		ep := fmt.Sprintf("%s[%d]", at, i)
		s, ok := e.(string)
		if !ok {
			p.add(ep, "must be a string")
			continue
		}
		if err := check(s); err != nil {
			p.add(ep, "%v", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func checkPattern(s string) error {
	if s == "" {
		return fmt.Errorf("empty pattern")
	}
	if _, err := path.Match(s, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %w", s, err)
	}
	return nil
}

// checkEvent refuses a pattern that matches no action: most likely a typo,
// which would otherwise silence the sink without a word.
func checkEvent(s string) error {
	if err := checkPattern(s); err != nil {
		return err
	}
	known := Actions()
	if !slices.ContainsFunc(known, func(a string) bool { ok, _ := path.Match(s, a); return ok }) {
		return fmt.Errorf("%q matches no event (%s)", s, strings.Join(known, ", "))
	}
	return nil
}

// Actions lists the actions of audit records, sorted: every action of
// package audit and one per rollout timeline event type.
func Actions() []string {
	set := map[string]bool{}
	for _, a := range []string{
		audit.ActionApply, audit.ActionPromote, audit.ActionAbort, audit.ActionPause, audit.ActionResume,
		audit.ActionRetry, audit.ActionUndo, audit.ActionSuperseded, audit.ActionFailed, audit.ActionHealthy,
		audit.ActionWaveStarted, audit.ActionStepCompleted, audit.ActionWavePromoted, audit.ActionGateTripped,
		audit.ActionAgentConnect, audit.ActionAgentDisconnect, audit.ActionAuthDenied,
	} {
		set[a] = true
	}
	// Whatever audit.Timeline makes of every timeline event type, so an
	// event type added later is known without a change here.
	for v := range cutoverv1.TimelineEventType_name {
		if v == 0 {
			continue
		}
		r := &cutoverv1.Rollout{Name: "app", Status: &cutoverv1.RolloutStatus{
			Timeline: []*cutoverv1.TimelineEvent{{Type: cutoverv1.TimelineEventType(v)}}}}
		for _, rec := range audit.Timeline(nil, r, audit.Cause{}) {
			set[rec.GetAction()] = true
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func duration(p *problems, at string, v any) time.Duration {
	s, ok := v.(string)
	if !ok {
		p.add(at, "must be a duration such as \"5s\"")
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.add(at, "%q is not a duration such as \"5s\"", s)
	case d <= 0 || d > maxTimeout:
		p.add(at, "%s must be more than 0 and at most %s", s, maxTimeout)
	}
	return d
}

func integer(p *problems, at string, v any, lo, hi int) int {
	n, ok := v.(json.Number)
	i, err := n.Int64()
	if !ok || err != nil || i < int64(lo) || i > int64(hi) {
		p.add(at, "must be a whole number from %d to %d", lo, hi)
		return 0
	}
	return int(i)
}

func headers(p *problems, at string, v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		p.add(at, "must be a mapping of header names to values")
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		hp := at + "." + k
		s, ok := m[k].(string)
		name := http.CanonicalHeaderKey(k)
		_, dup := out[name]
		switch {
		case !headerNameRE.MatchString(k):
			p.add(hp, "is not a valid header name")
		case !ok:
			p.add(hp, "must be a string")
		case strings.ContainsAny(s, "\r\n\x00"):
			p.add(hp, "must be one line")
		case name == "Content-Type" || name == "Content-Length" || name == "Host":
			p.add(hp, "is set by Cutover")
		case dup:
			p.add(hp, "is another header's name in other letter case")
		default:
			out[name] = s
		}
	}
	return out
}
