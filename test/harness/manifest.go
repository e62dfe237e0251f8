package harness

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// App describes a demo-app rollout to render as a manifest.
type App struct {
	Name      string
	Revision  string
	Command   string   // path of cutover-demoapp
	ExtraArgs []string // more demo-app flags, e.g. --error-rate
	Instances int
	Env       map[string]string
	// Waves lists the clusters of each wave, in order; WaveNames names them.
	Waves     [][]string
	WaveNames []string
	// Listen is each cluster's proxy address.
	Listen map[string]string
	// Steps are canary steps in YAML flow style, e.g. "setWeight: 20".
	Steps []string
	// BlueGreen, when set, replaces the canary strategy.
	BlueGreen *BlueGreen
	// ProgressDeadline, when set, is spec.progressDeadline.
	ProgressDeadline string
	// FailurePolicy, when set, is spec.targets.failurePolicy.
	FailurePolicy string
	// Gates are spec.gates entries in YAML flow style, e.g.
	// "metric: errorRate, condition: '<= 0.01'".
	Gates []string
	// ReadyTimeout is the revision's readyTimeout (default 20s).
	ReadyTimeout string
	// Rolling or Shadow, when set, replace the canary strategy.
	Rolling *Rolling
	Shadow  *Shadow
	// Metrics, when set, is spec.metrics in YAML flow style, e.g.
	// "provider: scrape, scrape: {requests: {name: x}}".
	Metrics string
	// Sha256, when set, is the revision's pinned digest.
	Sha256 string
	// Spec is more of spec in YAML, indented as spec's fields (two
	// spaces), e.g. "  hooks:\n    preRollout: [...]".
	Spec string
}

// Rolling is a rolling strategy.
type Rolling struct {
	BatchSize        string
	Pause            string
	FailureThreshold int
	MaxUnavailable   string
}

// Shadow is a shadow strategy.
type Shadow struct {
	MirrorPercent int
	Duration      string
}

// BlueGreen is a blue-green strategy.
type BlueGreen struct {
	// Preview is each cluster's preview address.
	Preview          map[string]string
	AutoPromotion    int
	ScaleDownSeconds int
}

// Manifest renders the rollout manifest.
func (a App) Manifest() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("apiVersion: cutover.dev/v1")
	w("kind: Rollout")
	w("metadata:")
	w("  name: %s", a.Name)
	w("spec:")
	w("  revision:")
	w("    name: %s", a.Revision)
	w("    command: %q", a.Command)
	if a.Sha256 != "" {
		w("    sha256: %q", a.Sha256)
	}
	args := append([]string{"--version", a.Revision}, a.ExtraArgs...)
	w("    args: [%s]", quoteAll(args))
	if a.Instances > 0 {
		w("    instances: %d", a.Instances)
	}
	if len(a.Env) > 0 {
		w("    env:")
		for _, k := range slices.Sorted(maps.Keys(a.Env)) {
			w("      %s: %q", k, a.Env[k])
		}
	}
	w("    readinessPath: /healthz")
	ready := a.ReadyTimeout
	if ready == "" {
		ready = "20s"
	}
	w("    readyTimeout: %s", ready)
	clusters := slices.Sorted(maps.Keys(a.Listen))
	w("  endpoint:")
	w("    listen: %q", a.Listen[clusters[0]])
	w("    listenOverrides:")
	for _, c := range clusters[1:] {
		w("      %s: %q", c, a.Listen[c])
	}
	if len(clusters) == 1 {
		b.WriteString("      {}\n")
	}
	w("  targets:")
	if a.FailurePolicy != "" {
		w("    failurePolicy: %s", a.FailurePolicy)
	}
	w("    waves:")
	for i, wave := range a.Waves {
		name := fmt.Sprintf("wave-%d", i+1)
		if i < len(a.WaveNames) {
			name = a.WaveNames[i]
		}
		w("      - name: %s", name)
		w("        clusters: [%s]", strings.Join(wave, ", "))
	}
	if a.ProgressDeadline != "" {
		w("  progressDeadline: %s", a.ProgressDeadline)
	}
	if a.Metrics != "" {
		w("  metrics: {%s}", a.Metrics)
	}
	if len(a.Gates) > 0 {
		w("  gates:")
		for _, g := range a.Gates {
			w("    - {%s}", g)
		}
	}
	if a.Spec != "" {
		b.WriteString(strings.TrimRight(a.Spec, "\n") + "\n")
	}
	w("  strategy:")
	if r := a.Rolling; r != nil {
		w("    rolling:")
		w("      batchSize: %q", r.BatchSize)
		if r.Pause != "" {
			w("      pauseBetweenBatches: %s", r.Pause)
		}
		if r.FailureThreshold > 0 {
			w("      failureThreshold: %d", r.FailureThreshold)
		}
		if r.MaxUnavailable != "" {
			w("      maxUnavailable: %q", r.MaxUnavailable)
		}
		return b.String()
	}
	if sh := a.Shadow; sh != nil {
		w("    shadow:")
		w("      mirrorPercent: %d", sh.MirrorPercent)
		if sh.Duration != "" {
			w("      duration: %s", sh.Duration)
		}
		return b.String()
	}
	if bg := a.BlueGreen; bg != nil {
		w("    blueGreen:")
		w("      previewListen: %q", bg.Preview[clusters[0]])
		w("      previewListenOverrides:")
		for _, c := range clusters[1:] {
			w("        %s: %q", c, bg.Preview[c])
		}
		w("      autoPromotionSeconds: %d", bg.AutoPromotion)
		w("      scaleDownDelaySeconds: %d", bg.ScaleDownSeconds)
		return b.String()
	}
	w("    canary:")
	w("      steps:")
	for _, s := range a.Steps {
		w("        - {%s}", s)
	}
	return b.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
