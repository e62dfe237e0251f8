package policy_test

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/policy"
)

// loadTestdata loads testdata/policies.yaml.
func loadTestdata(t *testing.T) *policy.Set {
	t.Helper()
	s, err := policy.Load(filepath.Join("testdata", "policies.yaml"))
	if err != nil {
		t.Fatalf("load testdata/policies.yaml: %v", err)
	}
	return s
}

// base is the part of a rollout spec the resolver does not look at.
const base = `revision: {name: v2, command: ./app}
endpoint: {listen: "127.0.0.1:8100"}
targets: {waves: [{clusters: [us-east]}]}
`

// Strategies and gates the cases combine.
const (
	plainCanary  = "strategy: {canary: {steps: [{setWeight: 10}, {pause: {duration: 30s}}, {setWeight: 100}]}}\n"
	shadowCanary = "strategy: {canary: {steps: [{pause: {duration: 1s}}, {shadow: {mirrorPercent: 50, duration: 60s}}, {setWeight: 1}, {setWeight: 100}]}}\n"
	blueGreen    = "strategy: {blueGreen: {previewListen: \"127.0.0.1:9100\"}}\n"
	// A critical p99 gate of +5 µs acting within 500 ms × 2, and an error
	// gate with the defaults (1 s × 1).
	microGates = "gates: [{name: p99, metric: latencyP99, condition: '<= stable + 5us', window: 500ms, failureLimit: 2}, {name: errors, metric: errorRate, condition: '<= 0.1%'}]\n"
)

// rolloutSpec reads the YAML of a rollout spec (without the manifest
// envelope) as protojson does, without validating it: the resolver's input
// is whatever the parser accepted.
func rolloutSpec(t *testing.T, y string) *cutoverv1.RolloutSpec {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict([]byte(y))
	if err != nil {
		t.Fatalf("spec YAML: %v\n%s", err, y)
	}
	s := &cutoverv1.RolloutSpec{}
	if err := protojson.Unmarshal(js, s); err != nil {
		t.Fatalf("spec: %v\n%s", err, y)
	}
	return s
}

// writeFiles writes name -> content into a new directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
