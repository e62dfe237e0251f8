package rollout_test

import (
	"errors"
	"testing"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/rollout"
)

// Every strategy's steps and desired states, as a table: what a cluster in
// progress from v1 (4 instances) to v2 runs at a given point.
func TestStrategiesTable(t *testing.T) {
	v1, v2 := revision("v1"), revision("v2")
	v1.Instances, v2.Instances = 4, 4
	canary := &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{
		Steps: []*cutoverv1.CanaryStep{setWeight(25), pause("")}}}}
	blueGreen := &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_BlueGreen{BlueGreen: &cutoverv1.BlueGreenStrategy{
		PreviewListen: ":9090", AutoPromotionSeconds: 30, ScaleDownDelaySeconds: 60}}}
	rolling := &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Rolling{Rolling: &cutoverv1.RollingStrategy{
		BatchSize: "25%", PauseBetweenBatches: "10s", FailureThreshold: 2}}}
	shadow := &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Shadow{Shadow: &cutoverv1.ShadowStrategy{MirrorPercent: 30}}}
	tests := []struct {
		name     string
		strategy *cutoverv1.Strategy
		cp       *cutoverv1.ClusterProgress
		steps    int
		want     string
	}{
		{"canary at 25%", canary, &cutoverv1.ClusterProgress{CanaryWeight: 25}, 2, "stable:v1=75 canary:v2=25"},
		{"canary with a header route", canary, &cutoverv1.ClusterProgress{CanaryWeight: 0,
			HeaderRoute: &cutoverv1.HeaderRoute{Header: "X-Canary", Value: "always"}}, 2, "stable:v1=100 canary:v2=0 header:X-Canary"},
		{"blue-green preview", blueGreen, &cutoverv1.ClusterProgress{}, 2, "stable:v1=100 preview:v2=0 preview@:9090"},
		{"rolling, nothing replaced yet", rolling, &cutoverv1.ClusterProgress{}, 7, "stable:v1=100"},
		{"rolling, 1 of 4 replaced", rolling, &cutoverv1.ClusterProgress{CanaryInstances: 1}, 7, "stable:v1=75 canary:v2=25 v1x3 v2x1"},
		{"rolling, 3 of 4 replaced", rolling, &cutoverv1.ClusterProgress{CanaryInstances: 3}, 7, "stable:v1=25 canary:v2=75 v1x1 v2x3"},
		{"rolling, all replaced", rolling, &cutoverv1.ClusterProgress{CanaryInstances: 4}, 7, "canary:v2=100 v2x4"},
		{"shadow", shadow, &cutoverv1.ClusterProgress{}, 2, "stable:v1=100 shadow:v2=0 mirror 30%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := &cutoverv1.RolloutSpec{Revision: v2, Endpoint: &cutoverv1.Endpoint{Listen: ":8080"}, Strategy: tt.strategy}
			if got := len(rollout.Steps(sp)); got != tt.steps {
				t.Errorf("%d steps, want %d", got, tt.steps)
			}
			cp := tt.cp
			cp.Cluster, cp.Phase, cp.StableRevision = "eu-1", cutoverv1.ClusterPhase_CLUSTER_PHASE_PROGRESSING, v1
			d := rollout.Desired(&cutoverv1.Rollout{Name: app, Spec: sp}, cp)
			got := showRevisions(d)
			for _, h := range d.GetHeaderRoutes() {
				got += " header:" + h.GetMatch().GetHeader()
			}
			if d.GetPreviewListen() != "" {
				got += " preview@" + d.GetPreviewListen()
			}
			for _, dr := range d.GetRevisions() {
				if n := dr.GetInstances(); n > 0 {
					got += " " + dr.GetRevision().GetName() + "x" + string(rune('0'+n))
				}
			}
			if d.GetMirrorPercent() > 0 {
				got += " mirror 30%"
			}
			if got != tt.want {
				t.Errorf("desired %q, want %q", got, tt.want)
			}
		})
	}
}

// A spec without a strategy has none: the factory says so instead of
// falling back to one.
func TestStrategyOfUnknown(t *testing.T) {
	if _, err := rollout.StrategyOf(&cutoverv1.RolloutSpec{}); !errors.Is(err, rollout.ErrUnknownStrategy) {
		t.Errorf("StrategyOf(no strategy) = %v, want ErrUnknownStrategy", err)
	}
	if steps := rollout.Steps(&cutoverv1.RolloutSpec{}); steps != nil {
		t.Errorf("Steps(no strategy) = %v", steps)
	}
}
