package spec_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t testing.TB, name string) *spec.Manifest {
	t.Helper()
	m, err := spec.Parse(readFile(t, name))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return m
}

// fieldErrors returns err's problems as "path: detail" strings, failing the
// test unless err is a spec.Errors that wraps spec.ErrInvalid.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	if !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var es spec.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T %v is not a spec.Errors", err, err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

func wantErrors(t *testing.T, err error, want []string) {
	t.Helper()
	got := fieldErrors(t, err)
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got  %q\n want %q", got, want)
	}
}

// validSpec is testdata/valid.yaml (and valid.json) as a proto.
func validSpec() *cutoverv1.RolloutSpec {
	step := func(w int32) *cutoverv1.CanaryStep {
		return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: w}}
	}
	pause := func(d string) *cutoverv1.CanaryStep {
		return &cutoverv1.CanaryStep{Step: &cutoverv1.CanaryStep_Pause{Pause: &cutoverv1.PauseStep{Duration: d}}}
	}
	return &cutoverv1.RolloutSpec{
		Revision: &cutoverv1.Revision{
			Name:          "v2.1_rc-1",
			Command:       "./web",
			Args:          []string{"--port", "$(PORT)", "--verbose"},
			Env:           map[string]string{"LOG_LEVEL": "debug", "REGION": "eu"},
			Instances:     3,
			ReadinessPath: "/ready",
			ReadyTimeout:  "45s",
		},
		Endpoint: &cutoverv1.Endpoint{
			Listen:          ":8080",
			ListenOverrides: map[string]string{"us-1": "127.0.0.1:9090"},
		},
		Targets: &cutoverv1.Targets{Waves: []*cutoverv1.Wave{
			{Name: "canary", Clusters: []string{"eu-1"}},
			{Name: "rest", Clusters: []string{"us-1", "us-2"}},
		}, FailurePolicy: "abort"},
		Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{
			Steps: []*cutoverv1.CanaryStep{step(10), pause(""), step(50), pause("30s"), step(100)},
		}}},
		ProgressDeadline: "10m0s",
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	// valid.json spells some fields the proto way (readiness_path,
	// set_weight); both spellings must give the same spec.
	for _, name := range []string{"valid.yaml", "valid.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := mustParse(t, name)
			if m.Name != "web" {
				t.Errorf("Name = %q, want web", m.Name)
			}
			if want := validSpec(); !proto.Equal(m.Spec, want) {
				t.Errorf("Spec =\n%v\nwant\n%v", m.Spec, want)
			}
		})
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	t.Parallel()
	m := mustParse(t, "minimal.yaml")
	r := m.Spec.GetRevision()
	if r.GetInstances() != 1 {
		t.Errorf("instances = %d, want 1", r.GetInstances())
	}
	if r.GetReadinessPath() != "/healthz" {
		t.Errorf("readinessPath = %q, want /healthz", r.GetReadinessPath())
	}
	if r.GetReadyTimeout() != "30s" {
		t.Errorf("readyTimeout = %q, want 30s", r.GetReadyTimeout())
	}
	if got := spec.ReadyTimeout(r); got != 30*time.Second {
		t.Errorf("ReadyTimeout = %v, want 30s", got)
	}
	var names []string
	for _, w := range m.Spec.GetTargets().GetWaves() {
		names = append(names, w.GetName())
	}
	// A wave keeps its own name; the others are named by position.
	if want := []string{"wave-1", "second", "wave-3"}; !slices.Equal(names, want) {
		t.Errorf("wave names = %q, want %q", names, want)
	}
	// setWeight 0 is a real step, not an unset one.
	steps := m.Spec.GetStrategy().GetCanary().GetSteps()
	if len(steps) != 2 {
		t.Fatalf("got %d steps, want 2", len(steps))
	}
	if _, ok := steps[0].GetStep().(*cutoverv1.CanaryStep_SetWeight); !ok || steps[0].GetSetWeight() != 0 {
		t.Errorf("step 0 = %v, want setWeight 0", steps[0])
	}
	if p := steps[1].GetPause(); p == nil || spec.PauseDuration(p) != 0 {
		t.Errorf("step 1 = %v, want a pause until promoted", steps[1])
	}
}

func TestDefaultIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"valid.yaml", "minimal.yaml"} {
		m := mustParse(t, name)
		again := proto.Clone(m.Spec).(*cutoverv1.RolloutSpec)
		spec.Default(again)
		if !proto.Equal(again, m.Spec) {
			t.Errorf("%s: Default changed a defaulted spec:\n%v\nwas\n%v", name, again, m.Spec)
		}
	}

	// From scratch: the second call changes nothing the first did not.
	s := &cutoverv1.RolloutSpec{
		Revision: &cutoverv1.Revision{Name: "v1"},
		Targets:  &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{}, {Name: "b"}}},
	}
	spec.Default(s)
	once := proto.Clone(s)
	spec.Default(s)
	if !proto.Equal(s, once) {
		t.Errorf("second Default gave %v, first %v", s, once)
	}
	want := &cutoverv1.RolloutSpec{
		Revision:         &cutoverv1.Revision{Name: "v1", Instances: 1, ReadinessPath: "/healthz", ReadyTimeout: "30s"},
		Targets:          &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{Name: "wave-1"}, {Name: "b"}}, FailurePolicy: "abort"},
		ProgressDeadline: "10m0s",
	}
	if !proto.Equal(s, want) {
		t.Errorf("Default = %v, want %v", s, want)
	}

	// A spec without a revision is left without one, not a panic.
	empty := &cutoverv1.RolloutSpec{}
	spec.Default(empty)
	if !proto.Equal(empty, &cutoverv1.RolloutSpec{ProgressDeadline: "10m0s"}) {
		t.Errorf("Default(empty) = %v, want it unchanged", empty)
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	const mustDuration = "must be a positive duration such as 30s or 500ms, got "
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-field.yaml", []string{
			"spec.strategy.canary.bogus: unknown field",
		}},
		{"weight-140.yaml", []string{
			"spec.strategy.canary.steps[2].setWeight: must be between 0 and 100, got 140",
		}},
		{"empty-steps.yaml", []string{
			"spec.strategy.canary.steps: must not be empty",
		}},
		{"malformed.yaml", []string{
			"manifest: malformed YAML: line 7: did not find expected key",
		}},
		{"empty.yaml", []string{
			"manifest: is empty",
		}},
		{"not-a-mapping.yaml", []string{
			"manifest: must be a mapping with apiVersion, kind, metadata and spec",
		}},
		{"wrong-types.yaml", []string{
			`spec.endpoint: must be a mapping, got ":8080"`,
			`spec.revision.args: must be a list, got "--port"`,
			`spec.revision.env: must be a mapping, got a list`,
			`spec.revision.instances: must be an integer, got "three"`,
			`spec.revision.name: must be a string, got 2`,
			`spec.revision.readinessPath: must be a string, got true`,
			`spec.revision.readyTimeout: must be a string, got 30`,
			`spec.strategy.canary.steps[0].setWeight: must be an integer, got "10"`,
			`spec.strategy.canary.steps[1].setWeight: must be an integer, got 12.5`,
			`spec.strategy.canary.steps[2].setWeight: must be an integer, got 3000000000`,
			`spec.strategy.canary.steps[3].pause: must be a mapping, got "30s"`,
			`spec.targets.waves: must be a list, got a mapping`,
		}},
		{"oneof-twice.yaml", []string{
			"spec.strategy.canary.steps[1]: only one of pause and setWeight may be set",
		}},
		{"same-field-twice.yaml", []string{
			"spec.revision.readiness_path: is the same field as readinessPath; set only one",
		}},
		{"null-entries.yaml", []string{
			"spec.revision.args[1]: must be a string, got nothing",
			"spec.revision.env.LOG_LEVEL: must be a string, got nothing",
			"spec.strategy.canary.steps[1]: must be a mapping, got nothing",
			"spec.targets.waves[1]: must be a mapping, got nothing",
		}},
		{"null-spec.yaml", []string{
			"spec: must be a mapping, got nothing",
		}},
		{"duplicate-cluster.yaml", []string{
			`spec.targets.waves[1].clusters[1]: cluster "eu-1" is already listed at spec.targets.waves[0].clusters[0]`,
		}},
		{"override-non-target.yaml", []string{
			`spec.endpoint.listenOverrides.ap-1: cluster "ap-1" is not a target of this rollout`,
		}},
		{"bad-durations.yaml", []string{
			`spec.revision.readyTimeout: ` + mustDuration + `"soon"`,
			`spec.strategy.canary.steps[1].pause.duration: ` + mustDuration + `"-5s"`,
			`spec.strategy.canary.steps[2].pause.duration: ` + mustDuration + `"0s"`,
		}},
		{"missing-name.yaml", []string{
			"metadata.name: is required",
		}},
		{"wrong-apiversion-kind.yaml", []string{
			`apiVersion: must be "cutover.dev/v1", got "cutover.dev/v2"`,
			`kind: must be "Rollout", got "Deployment"`,
		}},
		{"header-problems.yaml", []string{
			"metadata.labels: unknown field",
			`metadata.name: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit, got "Web_1"`,
			"status: unknown field",
			"apiVersion: is required",
		}},
		{"missing-sections.yaml", []string{
			"spec.revision: is required",
			"spec.targets.waves: must list at least one wave",
			"spec.endpoint.listen: is required (unless spec.kubernetes is set)",
			"spec.strategy: must set canary, blueGreen, rolling or shadow",
		}},
		{"many-problems.yaml", []string{
			`spec.revision.name: must be 1-63 letters, digits, '.', '_' or '-', got "-v2"`,
			"spec.revision.command: is required for the local runtime; set it, or image for the kubernetes runtime",
			"spec.revision.instances: must be between 1 and 256, got 300",
			`spec.revision.readinessPath: must start with '/', got "healthz"`,
			`spec.revision.env: invalid variable name ""`,
			`spec.revision.env: invalid variable name "A=B"`,
			"spec.targets.waves[0].clusters[1]: must not be empty",
			"spec.targets.waves[1].clusters: must list at least one cluster",
			`spec.endpoint.listen: must be host:port, got "8080"`,
			`spec.endpoint.listenOverrides.eu-1: port must be between 1 and 65535, got "99999"`,
			`spec.endpoint.listenOverrides.zz-9: cluster "zz-9" is not a target of this rollout`,
			"spec.strategy.canary.steps[0].setWeight: must be between 0 and 100, got -1",
			"spec.strategy.canary.steps[1]: must set setWeight, pause, setHeaderRoute, setCanaryScale, analysis, approval or shadow",
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m, err := spec.Parse(readFile(t, filepath.Join("bad", tt.file)))
			if m != nil {
				t.Errorf("Parse returned a manifest %v with error %v", m, err)
			}
			wantErrors(t, err, tt.want)
			if got, want := err.Error(), strings.Join(tt.want, "; "); got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
		})
	}
	// Every bad manifest in testdata is checked here (and seeds the fuzzer).
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no case in TestParseInvalid", f)
		}
	}
}

// Map keys (env, listenOverrides) are reported in sorted order, so the same
// manifest always gives the same message; Go randomises map order per range,
// so a few rounds would catch an unsorted walk.
func TestParseErrorOrderIsStable(t *testing.T) {
	t.Parallel()
	data := readFile(t, filepath.Join("bad", "many-problems.yaml"))
	_, err := spec.Parse(data)
	first := fieldErrors(t, err)
	for range 50 {
		_, err := spec.Parse(data)
		if got := fieldErrors(t, err); !slices.Equal(got, first) {
			t.Fatalf("errors changed between runs:\n %q\n %q", first, got)
		}
	}
}

// Validate on its own, at the edges of each range, on valid.yaml changed in
// one place.
func TestValidateBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(s *cutoverv1.RolloutSpec)
		want   []string // nil: valid
	}{
		{"unchanged", func(*cutoverv1.RolloutSpec) {}, nil},
		{"instances 0 means default", func(s *cutoverv1.RolloutSpec) { s.Revision.Instances = 0 }, nil},
		{"instances 256", func(s *cutoverv1.RolloutSpec) { s.Revision.Instances = 256 }, nil},
		{"instances 257", func(s *cutoverv1.RolloutSpec) { s.Revision.Instances = 257 },
			[]string{"spec.revision.instances: must be between 1 and 256, got 257"}},
		{"instances -1", func(s *cutoverv1.RolloutSpec) { s.Revision.Instances = -1 },
			[]string{"spec.revision.instances: must be between 1 and 256, got -1"}},
		{"weight 101", func(s *cutoverv1.RolloutSpec) {
			s.GetStrategy().GetCanary().Steps[4].Step = &cutoverv1.CanaryStep_SetWeight{SetWeight: 101}
		}, []string{"spec.strategy.canary.steps[4].setWeight: must be between 0 and 100, got 101"}},
		{"port 65535", func(s *cutoverv1.RolloutSpec) { s.Endpoint.Listen = "[::1]:65535" }, nil},
		{"port 0", func(s *cutoverv1.RolloutSpec) { s.Endpoint.Listen = ":0" },
			[]string{`spec.endpoint.listen: port must be between 1 and 65535, got "0"`}},
		{"named port", func(s *cutoverv1.RolloutSpec) { s.Endpoint.Listen = "localhost:http" },
			[]string{`spec.endpoint.listen: port must be between 1 and 65535, got "http"`}},
		{"revision name 63", func(s *cutoverv1.RolloutSpec) { s.Revision.Name = strings.Repeat("v", 63) }, nil},
		{"revision name 64", func(s *cutoverv1.RolloutSpec) { s.Revision.Name = strings.Repeat("v", 64) },
			[]string{`spec.revision.name: must be 1-63 letters, digits, '.', '_' or '-', got "` + strings.Repeat("v", 64) + `"`}},
		{"no revision name", func(s *cutoverv1.RolloutSpec) { s.Revision.Name = "" },
			[]string{"spec.revision.name: is required"}},
		{"env NUL", func(s *cutoverv1.RolloutSpec) { s.Revision.Env["A\x00"] = "x" },
			[]string{`spec.revision.env: invalid variable name "A\x00"`}},
		{"500ms ready timeout", func(s *cutoverv1.RolloutSpec) { s.Revision.ReadyTimeout = "500ms" }, nil},
		{"bad override address", func(s *cutoverv1.RolloutSpec) { s.Endpoint.ListenOverrides["us-1"] = "us-1" },
			[]string{`spec.endpoint.listenOverrides.us-1: must be host:port, got "us-1"`}},
		{"no strategy", func(s *cutoverv1.RolloutSpec) { s.Strategy = nil },
			[]string{"spec.strategy: must set canary, blueGreen, rolling or shadow"}},
		{"no targets", func(s *cutoverv1.RolloutSpec) { s.Targets = nil },
			// The override names a cluster that is no longer a target.
			[]string{"spec.targets.waves: must list at least one wave",
				`spec.endpoint.listenOverrides.us-1: cluster "us-1" is not a target of this rollout`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := validSpec()
			tt.change(s)
			err := spec.Validate(s)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErrors(t, err, tt.want)
		})
	}
}

func TestCheckClusters(t *testing.T) {
	t.Parallel()
	// minimal.yaml targets eu-1, eu-2 | us-1 | ap-1.
	s := mustParse(t, "minimal.yaml").Spec
	known := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}

	if err := spec.CheckClusters(s, known("eu-1", "eu-2", "us-1", "ap-1")); err != nil {
		t.Errorf("all known: %v", err)
	}
	err := spec.CheckClusters(s, known("eu-1", "us-1", "ap-1"))
	wantErrors(t, err, []string{
		`spec.targets.waves[0].clusters[1]: unknown cluster "eu-2" (no agent has connected with that name)`,
	})
	err = spec.CheckClusters(s, known())
	got := fieldErrors(t, err)
	want := []string{"waves[0].clusters[0]", "waves[0].clusters[1]", "waves[1].clusters[0]", "waves[2].clusters[0]"}
	if len(got) != len(want) {
		t.Fatalf("none known: got %q, want one error per cluster", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], "spec.targets."+want[i]+": unknown cluster") {
			t.Errorf("none known: error %d = %q, want it at %s", i, got[i], want[i])
		}
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	if got := spec.PauseDuration(&cutoverv1.PauseStep{Duration: "1m30s"}); got != 90*time.Second {
		t.Errorf("PauseDuration(1m30s) = %v", got)
	}
	if got := spec.PauseDuration(&cutoverv1.PauseStep{}); got != 0 {
		t.Errorf("PauseDuration(empty) = %v, want 0 (until promoted)", got)
	}
	if got := spec.PauseDuration(nil); got != 0 {
		t.Errorf("PauseDuration(nil) = %v, want 0", got)
	}
	for in, want := range map[string]time.Duration{
		"45s":   45 * time.Second,
		"":      spec.DefaultReadyTimeout,
		"never": spec.DefaultReadyTimeout,
		"-1s":   spec.DefaultReadyTimeout,
	} {
		if got := spec.ReadyTimeout(&cutoverv1.Revision{ReadyTimeout: in}); got != want {
			t.Errorf("ReadyTimeout(%q) = %v, want %v", in, got, want)
		}
	}
	err := spec.Errors{{Path: "a", Detail: "x"}, {Path: "b.c", Detail: "y"}}
	if got := err.Error(); got != "a: x; b.c: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
	if !errors.Is(err, spec.ErrInvalid) {
		t.Error("Errors does not wrap ErrInvalid")
	}
}

// FuzzParse holds Parse to its promise: it never panics, it refuses with
// field errors wrapping ErrInvalid, and anything it accepts is a complete,
// valid, defaulted spec. Plain `go test` runs only the seeds below.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"*.yaml", "*.json", filepath.Join("bad", "*")} {
		files, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			f.Fatal(err)
		}
		if len(files) == 0 {
			f.Fatalf("no seeds match testdata/%s", pattern)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := spec.Parse(data)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned both a manifest and %v", err)
			}
			if !errors.Is(err, spec.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			var es spec.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a non-empty spec.Errors: %#v", err)
			}
			for _, e := range es {
				// The path may be empty: a top-level key "" is unknown at "".
				if e.Detail == "" {
					t.Fatalf("field error without detail: %#v", e)
				}
				// protojson's own message means the structural check let
				// through something protojson refused.
				if strings.HasPrefix(e.Detail, "proto:") {
					t.Fatalf("structural check missed what protojson refused: %v", e)
				}
			}
			return
		}
		if m == nil || m.Spec == nil || m.Name == "" {
			t.Fatalf("accepted manifest is incomplete: %+v", m)
		}
		if err := spec.Validate(m.Spec); err != nil {
			t.Fatalf("accepted spec does not re-validate: %v", err)
		}
		again := proto.Clone(m.Spec).(*cutoverv1.RolloutSpec)
		spec.Default(again)
		if !proto.Equal(again, m.Spec) {
			t.Fatalf("accepted spec was not fully defaulted: %v", m.Spec)
		}
	})
}

func TestRollingMaxUnavailable(t *testing.T) {
	r := &cutoverv1.RollingStrategy{MaxUnavailable: "25%"}
	if got := spec.MaxUnavailable(r, 6); got != 1 {
		t.Errorf("25%% of 6 = %d, want 1 (rounded down)", got)
	}
	r.MaxUnavailable = "2"
	if got := spec.MaxUnavailable(r, 1); got != 1 {
		t.Errorf("2 of 1 = %d, want 1", got)
	}
	r.MaxUnavailable = "0"
	if got := spec.MaxUnavailable(r, 4); got != 0 {
		t.Errorf("0 of 4 = %d", got)
	}
	s := &cutoverv1.RolloutSpec{Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{Rolling: &cutoverv1.RollingStrategy{MaxUnavailable: "lots"}}}}
	err := spec.Validate(s)
	if err == nil || !strings.Contains(err.Error(), `spec.strategy.rolling.maxUnavailable: must be a count such as 2 or a percentage such as 25%, got "lots"`) {
		t.Errorf("Validate: %v", err)
	}
}

func TestJudgeGateValidation(t *testing.T) {
	bad := &cutoverv1.RolloutSpec{Gates: []*cutoverv1.Gate{{Metric: "errorRate", Condition: "<= 1", Judge: &cutoverv1.Judge{Confidence: 1.5, MinEffect: 0.7}}}}
	err := spec.Validate(bad)
	for _, want := range []string{
		`spec.gates[0]: a judge compares latency distributions: set metric "latency" and no condition`,
		`spec.gates[0].judge.confidence: must be above 0.5 and below 1, got 1.5`,
		`spec.gates[0].judge.minEffect: must be at least 0 and below 0.5, got 0.7`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to contain %q", err, want)
		}
	}
	good := &cutoverv1.RolloutSpec{Gates: []*cutoverv1.Gate{{Metric: "latency", Judge: &cutoverv1.Judge{Confidence: 0.99, MinEffect: 0.1}}}}
	if err := spec.Validate(good); err != nil && strings.Contains(err.Error(), "spec.gates") {
		t.Errorf("a valid judge gate was refused: %v", err)
	}
}

func TestMetricsSourceValidation(t *testing.T) {
	gates := []*cutoverv1.Gate{{Metric: "errorRate", Condition: "<= 0.01"}, {Metric: "latencyP99", Condition: "<= 1.1x stable"}}
	for _, tt := range []struct {
		name string
		m    *cutoverv1.MetricsSource
		want []string
	}{
		{"unknown provider", &cutoverv1.MetricsSource{Provider: "datadog"},
			[]string{`spec.metrics.provider: must be "proxy", "prometheus" or "scrape", got "datadog"`}},
		{"prometheus without settings", &cutoverv1.MetricsSource{Provider: "prometheus"},
			[]string{`spec.metrics.prometheus: is required with provider "prometheus"`}},
		{"prometheus queries", &cutoverv1.MetricsSource{Provider: "prometheus", Interval: "1ms", Prometheus: &cutoverv1.PrometheusSource{
			Address: "127.0.0.1:9090", Requests: "http_requests_total"}}, []string{
			`spec.metrics.interval: must be a duration of at least 10ms, like "250ms", got "1ms"`,
			`spec.metrics.prometheus.address: want an http or https URL, got "127.0.0.1:9090"`,
			`spec.metrics.prometheus.requests: must select one revision's series with {{revision}}, got "http_requests_total"`,
			`spec.metrics.prometheus.errors: is required (a gate needs it)`,
			`spec.metrics.prometheus.latency: is required (a gate needs it)`,
		}},
		{"scrape selectors", &cutoverv1.MetricsSource{Provider: "scrape", Scrape: &cutoverv1.ScrapeSource{
			Path: "metrics", Errors: &cutoverv1.MetricSelector{Name: "e", Labels: map[string]string{"code": "5(("}}}}, []string{
			`spec.metrics.scrape.path: must start with /, got "metrics"`,
			`spec.metrics.scrape.requests.name: is required (a gate needs it)`,
			`spec.metrics.scrape.errors.labels.code: not a regular expression`,
			`spec.metrics.scrape.latency.name: is required (a gate needs it)`,
		}},
		{"proxy with settings", &cutoverv1.MetricsSource{Scrape: &cutoverv1.ScrapeSource{}},
			[]string{`spec.metrics.provider: is "proxy": set it to "prometheus" or "scrape" to use the settings given`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := spec.Validate(&cutoverv1.RolloutSpec{Gates: gates, Metrics: tt.m})
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, want)
				}
			}
		})
	}
	good := &cutoverv1.MetricsSource{Provider: "prometheus", Prometheus: &cutoverv1.PrometheusSource{
		Address: "http://127.0.0.1:9090", Requests: `r{revision="{{revision}}"}`, Errors: `e{revision="{{revision}}"}`, Latency: `l_bucket{revision="{{revision}}"}`}}
	if err := spec.Validate(&cutoverv1.RolloutSpec{Gates: gates, Metrics: good}); err != nil && strings.Contains(err.Error(), "spec.metrics") {
		t.Errorf("a valid source was refused: %v", err)
	}
}

func TestKubernetesValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    *cutoverv1.RolloutSpec
		want []string
	}{
		{"bad names", &cutoverv1.RolloutSpec{Kubernetes: &cutoverv1.KubernetesSpec{
			Namespace: "Prod", Service: "my_svc", Container: "-x", ColorLabel: "a b",
			Selector: map[string]string{"app": "my app", "environment": "x"}, ContainerPort: 70000,
			HttpRoute: &cutoverv1.HTTPRouteRef{Namespace: "gw"}}}, []string{
			`spec.kubernetes.namespace: "Prod" is not a valid name`,
			`spec.kubernetes.service: "my_svc" is not a valid name`,
			`spec.kubernetes.container: "-x" is not a valid name`,
			`spec.kubernetes.httpRoute.name: is required`,
			`spec.kubernetes.colorLabel: "a b" is not a valid label key`,
			`spec.kubernetes.selector.app: "my app" is not a valid label value`,
			`spec.kubernetes.containerPort: must be between 1 and 65535, got 70000`,
		}},
		{"colour label in selector", &cutoverv1.RolloutSpec{Kubernetes: &cutoverv1.KubernetesSpec{
			Selector: map[string]string{"environment": "blue"}}},
			[]string{`spec.kubernetes.selector.environment: must not be the colour label`}},
		{"derived names too long", &cutoverv1.RolloutSpec{Kubernetes: &cutoverv1.KubernetesSpec{
			Deployment: strings.Repeat("d", 250)}}, []string{`spec.kubernetes.deployment: derived name`}},
		{"no command nor image", &cutoverv1.RolloutSpec{Revision: &cutoverv1.Revision{Name: "v1"}},
			[]string{`spec.revision.command: is required for the local runtime; set it, or image for the kubernetes runtime`}},
		{"smoke checks", &cutoverv1.RolloutSpec{Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_BlueGreen{BlueGreen: &cutoverv1.BlueGreenStrategy{
			SmokeChecks: []*cutoverv1.SmokeCheck{
				{Name: "a", Url: "ftp://{{preview}}/x"},
				{Name: "a", Url: "http://{{preview}}/ready", ExpectStatus: 99, Timeout: "soon", Attempts: 21},
				{},
			}}}}}, []string{
			`spec.strategy.blueGreen.smokeChecks[0].url: must be an http or https URL`,
			`spec.strategy.blueGreen.smokeChecks[1].name: duplicate name "a"`,
			`spec.strategy.blueGreen.smokeChecks[1].expectStatus: must be an HTTP status code, got 99`,
			`spec.strategy.blueGreen.smokeChecks[1].timeout:`,
			`spec.strategy.blueGreen.smokeChecks[1].attempts: must be between 1 and 20, got 21`,
			`spec.strategy.blueGreen.smokeChecks[2].url: is required`,
			`spec.strategy.blueGreen.previewListen: is required (unless spec.kubernetes is set)`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := spec.Validate(tt.s)
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, want)
				}
			}
		})
	}
	ok := &cutoverv1.RolloutSpec{Kubernetes: &cutoverv1.KubernetesSpec{Namespace: "production", Deployment: "myapp",
		Service: "myapp-service", ColorLabel: "environment", Selector: map[string]string{"app": "myapp"},
		HttpRoute: &cutoverv1.HTTPRouteRef{Name: "myapp"}},
		Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_BlueGreen{BlueGreen: &cutoverv1.BlueGreenStrategy{
			SmokeChecks: []*cutoverv1.SmokeCheck{{Url: "http://{{preview}}/health", ExpectStatus: 200}}}}}}
	if err := spec.Validate(ok); err != nil && (strings.Contains(err.Error(), "kubernetes") || strings.Contains(err.Error(), "smoke") || strings.Contains(err.Error(), "previewListen")) {
		t.Errorf("a valid Kubernetes spec was refused: %v", err)
	}
	k := spec.KubeOf("myapp", nil)
	if k.Namespace != "default" || k.Service != "myapp" || k.PreviewService != "myapp-preview" || k.ColorLabel != "environment" ||
		k.Selector["app"] != "myapp" || k.ContainerPort != 8080 || k.ServicePort != 80 || k.Container != "myapp" {
		t.Errorf("KubeOf defaults = %+v", k)
	}
}

func TestWindowValidation(t *testing.T) {
	err := spec.Validate(&cutoverv1.RolloutSpec{Window: &cutoverv1.DeploymentWindow{TimeZone: "Nowhere/Land",
		Allow: []*cutoverv1.WindowSpan{{Days: []string{"Someday"}, Start: "9am", End: "17:00"}}}})
	for _, want := range []string{
		`spec.window.timeZone: unknown time zone "Nowhere/Land"`,
		`spec.window.allow[0].days[0]: must be Mon, Tue, Wed, Thu, Fri, Sat or Sun, got "Someday"`,
		`spec.window.allow[0].start: must be a local time HH:MM, got "9am"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant it to contain %q", err, want)
		}
	}
	ok := &cutoverv1.RolloutSpec{Window: &cutoverv1.DeploymentWindow{TimeZone: "Europe/London",
		Allow: []*cutoverv1.WindowSpan{{Days: []string{"Mon"}, Start: "22:00", End: "06:00"}}, Holidays: []string{"2026-12-25"}}}
	if err := spec.Validate(ok); err != nil && strings.Contains(err.Error(), "spec.window") {
		t.Errorf("a valid window was refused: %v", err)
	}
}

func TestRevisionDigestValidation(t *testing.T) {
	err := spec.Validate(&cutoverv1.RolloutSpec{Revision: &cutoverv1.Revision{Name: "v1", Command: "x", Sha256: "abc"}})
	if err == nil || !strings.Contains(err.Error(), `spec.revision.sha256: must be 64 hex digits, got "abc"`) {
		t.Errorf("Validate: %v", err)
	}
	err = spec.Validate(&cutoverv1.RolloutSpec{Revision: &cutoverv1.Revision{Name: "v1", Command: "x", Sha256: strings.Repeat("Ab", 32)}})
	if err != nil && strings.Contains(err.Error(), "sha256") {
		t.Errorf("a valid digest was refused: %v", err)
	}
}
