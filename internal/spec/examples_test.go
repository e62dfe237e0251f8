package spec_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// exampleDirs hold the manifests users copy; each must parse with the real
// parser, so a change to the spec that breaks them fails here first.
var exampleDirs = []string{"../../examples", "../../deploy/examples"}

func TestExamplesParse(t *testing.T) {
	var files []string
	for _, dir := range exampleDirs {
		found, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, found...)
	}
	if len(files) < 4 {
		t.Fatalf("found %d example manifests under %v, want at least 4: %v", len(files), exampleDirs, files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := spec.Parse(data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The trading and banking examples carry the seed's traffic percentages;
// they must not drift from them.
func TestExampleCanaryWeights(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []int32
	}{
		{"trading-canary.yaml", []int32{1, 5, 25, 100}},
		{"banking-canary.yaml", []int32{5, 15, 35, 65, 100}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := parseExample(t, tc.file)
			if got := setWeights(m.Spec); !slices.Equal(got, tc.want) {
				t.Errorf("setWeight steps = %v, want %v", got, tc.want)
			}
		})
	}
}

// The banking canary stops for a person; the banking blue-green waits for
// one before each switch and keeps the old release warm for five minutes.
func TestExampleBankingManualPromotion(t *testing.T) {
	if n := untimedPauses(parseExample(t, "banking-canary.yaml").Spec); n == 0 {
		t.Error("banking-canary.yaml has no `pause: {}` step for a person to promote")
	}
	bg := parseExample(t, "banking-blue-green.yaml").Spec.GetStrategy().GetBlueGreen()
	if bg == nil {
		t.Fatal("banking-blue-green.yaml is not a blue-green rollout")
	}
	if bg.GetAutoPromotionSeconds() != 0 || bg.GetScaleDownDelaySeconds() != 300 {
		t.Errorf("autoPromotionSeconds %d, scaleDownDelaySeconds %d; want 0 (manual) and 300",
			bg.GetAutoPromotionSeconds(), bg.GetScaleDownDelaySeconds())
	}
}

// The rolling example replaces half the instances per batch with a pause
// between batches; the shadow example mirrors 20% for a fixed time. Both
// are documented in docs/spec.md.
func TestExampleRolling(t *testing.T) {
	s := parseExample(t, "rolling.yaml").Spec
	r := s.GetStrategy().GetRolling()
	if r == nil {
		t.Fatal("rolling.yaml is not a rolling update")
	}
	if r.GetBatchSize() != "50%" || r.GetPauseBetweenBatches() != "30s" || r.GetFailureThreshold() != 2 {
		t.Errorf("batchSize %q, pauseBetweenBatches %q, failureThreshold %d; want \"50%%\", \"30s\" and 2",
			r.GetBatchSize(), r.GetPauseBetweenBatches(), r.GetFailureThreshold())
	}
	if n := s.GetRevision().GetInstances(); n != 4 || spec.BatchSize(r, int(n)) != 2 {
		t.Errorf("instances %d in batches of %d; want 4 in batches of 2", n, spec.BatchSize(r, int(n)))
	}
	waves := s.GetTargets().GetWaves()
	if len(waves) != 2 || waves[1].GetMaxParallel() != 1 {
		t.Errorf("want 2 waves, the second one cluster at a time; got %v", waves)
	}
}

func TestExampleShadow(t *testing.T) {
	sh := parseExample(t, "shadow.yaml").Spec.GetStrategy().GetShadow()
	if sh == nil {
		t.Fatal("shadow.yaml is not a shadow rollout")
	}
	if sh.GetMirrorPercent() != 20 || sh.GetDuration() != "10m" {
		t.Errorf("mirrorPercent %d, duration %q; want 20 and \"10m\"", sh.GetMirrorPercent(), sh.GetDuration())
	}
}

// Defaults fill a bare rolling strategy: one instance at a time, the first
// failure rolls back.
func TestRollingDefaults(t *testing.T) {
	m, err := spec.Parse([]byte(`apiVersion: cutover.dev/v1
kind: Rollout
metadata: {name: web}
spec:
  revision: {name: v2, command: ./bin/cutover-demoapp}
  endpoint: {listen: "127.0.0.1:8080"}
  targets: {waves: [{clusters: [us-east]}]}
  strategy: {rolling: {}}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Spec.GetStrategy().GetRolling()
	if r.GetBatchSize() != "1" || r.GetFailureThreshold() != 1 || r.GetPauseBetweenBatches() != "" {
		t.Errorf("defaults: batchSize %q, failureThreshold %d, pauseBetweenBatches %q; want \"1\", 1 and none",
			r.GetBatchSize(), r.GetFailureThreshold(), r.GetPauseBetweenBatches())
	}
}

func parseExample(t *testing.T, name string) *spec.Manifest {
	t.Helper()
	path := filepath.Join(exampleDirs[0], name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := spec.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func setWeights(s *cutoverv1.RolloutSpec) []int32 {
	var out []int32
	for _, st := range s.GetStrategy().GetCanary().GetSteps() {
		if w, ok := st.GetStep().(*cutoverv1.CanaryStep_SetWeight); ok {
			out = append(out, w.SetWeight)
		}
	}
	return out
}

func untimedPauses(s *cutoverv1.RolloutSpec) int {
	n := 0
	for _, st := range s.GetStrategy().GetCanary().GetSteps() {
		if p := st.GetPause(); p != nil && p.GetDuration() == "" {
			n++
		}
	}
	return n
}

// The seed's thresholds are gates in the trading and banking examples.
func TestExampleSeedThresholds(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // "metric condition severity"
	}{
		{"trading-canary.yaml", []string{"latencyP99 <= stable + 5us warning", "latencyP99 <= stable + 50us critical", "throughput >= 0.8x stable critical", "errorRate <= 0.1% critical"}},
		{"banking-canary.yaml", []string{"throughput >= 0.8x stable critical", "latencyP99 <= 1.5x stable critical", "errorRate <= 0.1% critical"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var got []string
			for _, g := range parseExample(t, tc.file).Spec.GetGates() {
				got = append(got, g.GetMetric()+" "+g.GetCondition()+" "+g.GetSeverity())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("gates = %q\nwant %q", got, tc.want)
			}
		})
	}
}
