package policy_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/internal/policy"
)

// head is a valid policy's start; cases append to its spec.
const head = `apiVersion: cutover.dev/v1
kind: Policy
metadata: {name: p}
spec:
  apps: ["hft-*"]
`

func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // p.yaml is loaded (and q.yaml when given)
		want  []string          // each must appear in the error, after "<dir>/"
	}{
		{"bad glob", map[string]string{"p.yaml": strings.Replace(head, `"hft-*"`, `"hft-*", "hft-["`, 1)},
			[]string{`p.yaml: policy p: spec.apps[1]: must be a glob pattern such as "hft-*" or "order-router", got "hft-["`}},
		{"no apps", map[string]string{"p.yaml": strings.Replace(head, `  apps: ["hft-*"]`+"\n", "  timeZone: UTC\n", 1)},
			[]string{"p.yaml: policy p: spec.apps: must list at least one app name pattern"}},
		{"unknown time zone", map[string]string{"p.yaml": head + "  timeZone: America/Gotham\n"},
			[]string{`p.yaml: policy p: spec.timeZone: unknown time zone "America/Gotham"`}},
		{"holidays file with a bad line", map[string]string{
			"p.yaml":   head + "  holidaysFile: days.txt\n",
			"days.txt": "# 2026\n2026-01-01  # New Year\n\n2026-02-30\n2026-07-03 # ok\nJuly 4\n",
		}, []string{`p.yaml: policy p: spec.holidaysFile: `, `days.txt line 4: must be a date YYYY-MM-DD, got "2026-02-30"`, `days.txt line 6: must be a date YYYY-MM-DD, got "July 4"`}},
		{"holidays file missing", map[string]string{"p.yaml": head + "  holidaysFile: nope.txt\n"},
			[]string{"p.yaml: policy p: spec.holidaysFile: read: ", "nope.txt: no such file"}},
		{"bad holiday and freeze", map[string]string{"p.yaml": head + "  holidays: [2026-1-1]\n  freezes: [{start: 2026-02-01, end: 2026-01-01}]\n"},
			[]string{`p.yaml: policy p: spec.freezes[0].end: must be after start 2026-02-01`, `p.yaml: policy p: spec.holidays[0]: must be a date YYYY-MM-DD, got "2026-1-1"`}},
		{"unknown strategy and urgency", map[string]string{"p.yaml": head + "  windows: [{name: w, urgencies: [high, urgent], allowedStrategies: [bluegreen]}]\n"},
			[]string{`p.yaml: policy p: spec.windows[0].urgencies[1]: unknown urgency "urgent" (critical, high, medium, low)`,
				`p.yaml: policy p: spec.windows[0].allowedStrategies[0]: unknown strategy "bluegreen" (canary, blueGreen, rolling, shadow)`}},
		{"bad durations", map[string]string{"p.yaml": head + "  windows: [{name: w, maxLatencyImpact: 5 micros, rollbackTimeLimit: -1s}]\n"},
			[]string{`p.yaml: policy p: spec.windows[0].maxLatencyImpact: must be a positive duration such as 5us, got "5 micros"`,
				`p.yaml: policy p: spec.windows[0].rollbackTimeLimit: must be a positive duration such as 1s, got "-1s"`}},
		{"bad span, window names", map[string]string{"p.yaml": head + "  windows:\n    - {name: a, allow: [{days: [Mon, Funday], start: '9:3', end: '16:00'}]}\n    - {name: a}\n    - {allow: []}\n"},
			[]string{`spec.windows[0].allow[0].days[1]: must be Mon, Tue, Wed, Thu, Fri, Sat or Sun, got "Funday"`,
				`spec.windows[0].allow[0].start: must be a local time HH:MM, got "9:3"`,
				`spec.windows[1].name: "a" is also the name of windows[0]`, `spec.windows[2].name: is required`}},
		{"unknown field, wrong type", map[string]string{"p.yaml": head + "  windowz: []\n  breakGlass: sometimes\n"},
			[]string{`p.yaml: policy p: spec.breakGlass: must be true or false, got "sometimes"`, `p.yaml: policy p: spec.windowz: unknown field`}},
		{"approval", map[string]string{"p.yaml": head + "  approval: {required: 0, roles: [boss]}\n"},
			[]string{`p.yaml: policy p: spec.approval.required: must be at least 1`, `p.yaml: policy p: spec.approval.roles[0]: unknown role "boss"`}},
		{"hooks and checks, by the rollout validator", map[string]string{"p.yaml": head +
			"  preflight: {checks: [{http: {url: 'http://127.0.0.1:9400/sox'}}]}\n  hooks: {preRollout: [{name: t, http: {url: 'ftp://x'}}]}\n"},
			[]string{`p.yaml: policy p: spec.preflight.checks[0].name: is required`, `p.yaml: policy p: spec.hooks.preRollout[0].http.url: must be an absolute http or https URL`}},
		{"envelope", map[string]string{"p.yaml": "apiVersion: cutover.dev/v2\nkind: Rollout\nmetadata: {name: P}\nspec: {apps: [x]}\nstatus: {}\n"},
			[]string{`p.yaml: document 1: apiVersion: must be "cutover.dev/v1"`, `kind: must be "Policy", got "Rollout"`,
				`metadata.name: must be 1-63 lowercase letters`, `status: unknown field`}},
		{"second document bad, named", map[string]string{"p.yaml": head + "---\n# two\n" + strings.Replace(head, "{name: p}", "{name: q}", 1) + "  holidays: [someday]\n"},
			[]string{`p.yaml: policy q: spec.holidays[0]: must be a date YYYY-MM-DD, got "someday"`}},
		{"malformed YAML", map[string]string{"p.yaml": head + "---\napiVersion: [\n"},
			[]string{`p.yaml: document 2: malformed YAML in the document from line 7`}},
		{"same name in two files", map[string]string{"p.yaml": head, "q.yaml": head},
			[]string{`q.yaml: policy p: metadata.name: is also the name of a policy in `, `p.yaml`}},
		{"empty file", map[string]string{"p.yaml": "# nothing yet\n---\n"}, []string{"p.yaml: holds no policy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			files := []string{filepath.Join(dir, "p.yaml")}
			if _, ok := tc.files["q.yaml"]; ok {
				files = append(files, filepath.Join(dir, "q.yaml"))
			}
			set, err := policy.Load(files...)
			if err == nil {
				t.Fatalf("loaded %v, want an error", set.Names())
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %s\nlacks\n  %s", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), dir) {
				t.Errorf("error %q does not start with the file's path", err)
			}
		})
	}
}

func TestLoadSeveralDocumentsAndFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": head + "---\n\n--- # empty documents are skipped\n" + strings.Replace(head, "{name: p}", "{name: q}", 1),
		"b.yaml": strings.Replace(head, "{name: p}", "{name: r}", 1),
	})
	set, err := policy.Load(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Names(); !slices.Equal(got, []string{"p", "q", "r"}) {
		t.Errorf("Names() = %q, want p, q, r", got)
	}
}
