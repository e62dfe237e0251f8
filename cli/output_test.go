package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

func TestEnumWord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   protoreflect.Enum
		want string
	}{
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING, "Progressing"},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_UNSPECIFIED, "Unspecified"},
		{cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED, "Promoted"},
		{cutoverv1.ClusterStatus_CLUSTER_STATUS_DISCONNECTED, "Disconnected"},
		{cutoverv1.PauseReason_PAUSE_REASON_OPERATOR, "Operator"},
		{cutoverv1.Track_TRACK_CANARY, "Canary"},
		{cutoverv1.RolloutPhase(42), "42"},
	}
	for _, tt := range tests {
		if got := enumWord(tt.in); got != tt.want {
			t.Errorf("enumWord(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUpperSnake(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"RolloutPhase": "ROLLOUT_PHASE",
		"Track":        "TRACK",
		"HTTPRoute":    "HTTP_ROUTE",
		"V2Step":       "V2_STEP",
	} {
		if got := upperSnake(in); got != want {
			t.Errorf("upperSnake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-5 * time.Second, "0s"}, // clock skew
		{12 * time.Second, "12s"},
		{3*time.Minute + 59*time.Second, "3m"},
		{2 * time.Hour, "2h"},
		{47 * time.Hour, "47h"},
		{5 * 24 * time.Hour, "5d"},
	}
	for _, tt := range tests {
		if got := age(timestamppb.New(now.Add(-tt.ago)), now); got != tt.want {
			t.Errorf("age(%s ago) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := age(nil, now); got != none {
		t.Errorf("age(nil) = %q, want %q", got, none)
	}
}

func TestDialDetail(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:7070: connect: connection refused"`: "dial tcp 127.0.0.1:7070: connect: connection refused",
		"name resolver error: produced zero addresses":                                                                    "name resolver error: produced zero addresses",
		`connection error: desc = not quoted`:                                                                             `connection error: desc = not quoted`,
	}
	for in, want := range tests {
		if got := dialDetail(in); got != want {
			t.Errorf("dialDetail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStepLabels(t *testing.T) {
	t.Parallel()
	r := loadRollout(t)
	tests := []struct {
		step      int32
		wantLabel string
		wantWhat  string
	}{
		{0, "1/4", "1/4 setWeight 10"},
		{1, "2/4", "2/4 pause until promoted"},
		{3, "4/4", "4/4 pause 30s"},
		{4, "promote", "promote"},
	}
	for _, tt := range tests {
		r.Status.CurrentStep = tt.step
		r.Status.StepStartTime = nil
		if got := stepLabel(r); got != tt.wantLabel {
			t.Errorf("step %d: stepLabel = %q, want %q", tt.step, got, tt.wantLabel)
		}
		if got := stepDetail(r, time.Now()); got != tt.wantWhat {
			t.Errorf("step %d: stepDetail = %q, want %q", tt.step, got, tt.wantWhat)
		}
	}
}

func TestWaveState(t *testing.T) {
	t.Parallel()
	progressing := cutoverv1.RolloutPhase_ROLLOUT_PHASE_PROGRESSING
	tests := []struct {
		phase cutoverv1.RolloutPhase
		cur   int32
		want  []string
	}{
		{progressing, 1, []string{"done", "current", "pending"}},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY, 2, []string{"done", "done", "done"}},
		{cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED, 1, []string{"aborted", "aborted", "pending"}},
	}
	for _, tt := range tests {
		st := &cutoverv1.RolloutStatus{Phase: tt.phase, CurrentWave: tt.cur}
		for i, want := range tt.want {
			if got := waveState(st, i); got != want {
				t.Errorf("%v at wave %d: waveState(%d) = %q, want %q", tt.phase, tt.cur, i, got, want)
			}
		}
	}
}

// goldenNow is the clock the golden files were rendered at.
var goldenNow = time.Date(2026, 3, 1, 10, 6, 0, 0, time.UTC)

func TestGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"rollout_detail.golden", func(b *bytes.Buffer) error { return writeRolloutDetail(b, loadRollout(t), goldenNow) }},
		{"rollouts_table.golden", func(b *bytes.Buffer) error {
			done := loadRollout(t)
			done.Name = "api"
			done.Status.Phase = cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY
			done.Status.CurrentWave, done.Status.CurrentStep = 1, 4
			return writeRolloutTable(b, []*cutoverv1.Rollout{done, loadRollout(t)}, goldenNow)
		}},
		{"clusters_table.golden", func(b *bytes.Buffer) error { return writeClusterTable(b, loadClusters(t).GetClusters(), goldenNow) }},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			var got bytes.Buffer
			if err := tt.write(&got); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if os.Getenv("CUTOVER_UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("output differs from %s (rerun with CUTOVER_UPDATE_GOLDEN=1 to accept):\ngot:\n%s\nwant:\n%s", path, got.String(), want)
			}
		})
	}
}

// The detail view lists every check run, with the failed results.
func TestDetailListsChecks(t *testing.T) {
	r := &cutoverv1.Rollout{Name: "shop", Spec: &cutoverv1.RolloutSpec{Revision: &cutoverv1.Revision{Name: "v2"}, Policy: "banking"}, Status: &cutoverv1.RolloutStatus{
		Checks: []*cutoverv1.CheckRun{
			{Id: "preflight", EndTime: timestamppb.Now(), Results: []*cutoverv1.CheckResult{{Name: "agent connected", Passed: true}}},
			{Id: "preTrafficShift wave 0 step 0", EndTime: timestamppb.Now(), Results: []*cutoverv1.CheckResult{
				{Name: "smoke", Cluster: "eu-1", Passed: false, Message: "exit code 3"}, {Name: "smoke", Cluster: "us-1", Passed: true}}},
			{Id: "onAbort"},
		},
	}}
	var b strings.Builder
	if err := writeRolloutDetail(&b, r, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Policy:     banking\n",
		"  preflight                                passed  1 result\n",
		"  preTrafficShift wave 0 step 0            failed  2 results\n    smoke in eu-1: exit code 3\n",
		"  onAbort                                  running 0 results\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("detail lacks %q:\n%s", want, b.String())
		}
	}
}
