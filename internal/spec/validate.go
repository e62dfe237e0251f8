package spec

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/internal/gate"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/window"
)

// Defaults applied to fields left empty.
const (
	DefaultInstances     = 1
	DefaultReadinessPath = "/healthz"
	DefaultReadyTimeout  = 30 * time.Second
	MaxInstances         = 256
	// DefaultScaleDownDelaySeconds keeps a blue-green's old revision warm.
	DefaultScaleDownDelaySeconds = 30
	// DefaultProgressDeadline bounds how long a step waits for its wave.
	DefaultProgressDeadline = 10 * time.Minute
	// Failure policies.
	FailureAbort          = "abort"
	FailureHold           = "hold"
	maxRevisionNameLength = 63
)

var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

var revisionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate checks a spec's values. It does not know which clusters exist;
// see CheckClusters.
func Validate(s *cutoverv1.RolloutSpec) error {
	var c errs
	validateRevision(&c, "spec.revision", s.GetRevision())
	clusters := validateTargets(&c, s.GetTargets())
	validateEndpoint(&c, s.GetEndpoint(), clusters, s.GetKubernetes() != nil)
	validateStrategy(&c, s, clusters)
	if d := s.GetProgressDeadline(); d != "" {
		checkDuration(&c, "spec.progressDeadline", d)
	}
	validateGates(&c, s.GetGates())
	validateMetrics(&c, s)
	validateKubernetes(&c, s.GetKubernetes())
	validatePolicy(&c, s)
	if w := s.GetWindow(); w != nil {
		if _, err := window.Compile(w); err != nil {
			for _, e := range unjoin(err) {
				var fe window.FieldError
				if errors.As(e, &fe) {
					c.add("spec.window."+fe.Path, "%s", fe.Detail)
				} else {
					c.add("spec.window", "%v", e)
				}
			}
		}
	}
	return c.err()
}

// unjoin lists the errors joined by errors.Join.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Metrics providers (spec.metrics.provider).
const (
	ProviderProxy      = "proxy"
	ProviderPrometheus = "prometheus"
	ProviderScrape     = "scrape"
)

func validateMetrics(c *errs, s *cutoverv1.RolloutSpec) {
	const p = "spec.metrics"
	m := s.GetMetrics()
	if m == nil {
		return
	}
	if iv := m.GetInterval(); iv != "" {
		if d, err := time.ParseDuration(iv); err != nil || d < 10*time.Millisecond {
			c.add(p+".interval", "must be a duration of at least 10ms, like \"250ms\", got %q", iv)
		}
	}
	// Which counters the gates need: a gate on a metric the source does
	// not read would stay inconclusive forever.
	needErrors, needLatency := false, false
	for _, g := range s.GetGates() {
		needErrors = needErrors || g.GetMetric() == "errorRate"
		needLatency = needLatency || strings.HasPrefix(g.GetMetric(), "latency")
	}
	switch m.GetProvider() {
	case "", ProviderProxy:
		if m.GetPrometheus() != nil || m.GetScrape() != nil {
			c.add(p+".provider", "is %q: set it to %q or %q to use the settings given", ProviderProxy, ProviderPrometheus, ProviderScrape)
		}
	case ProviderPrometheus:
		q := m.GetPrometheus()
		if q == nil {
			c.add(p+".prometheus", "is required with provider %q", ProviderPrometheus)
			return
		}
		if a := q.GetAddress(); a != "" {
			if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.add(p+".prometheus.address", "want an http or https URL, got %q", a)
			}
		}
		for _, f := range []struct {
			name, query string
			need        bool
		}{{"requests", q.GetRequests(), true}, {"errors", q.GetErrors(), needErrors}, {"latency", q.GetLatency(), needLatency}} {
			switch {
			case f.query == "" && f.need:
				c.add(p+".prometheus."+f.name, "is required (a gate needs it)")
			case f.query != "" && !strings.Contains(f.query, "{{revision}}"):
				c.add(p+".prometheus."+f.name, "must select one revision's series with {{revision}}, got %q", f.query)
			}
		}
	case ProviderScrape:
		sc := m.GetScrape()
		if sc == nil {
			c.add(p+".scrape", "is required with provider %q", ProviderScrape)
			return
		}
		if path := sc.GetPath(); path != "" && !strings.HasPrefix(path, "/") {
			c.add(p+".scrape.path", "must start with /, got %q", path)
		}
		for _, f := range []struct {
			name string
			sel  *cutoverv1.MetricSelector
			need bool
		}{{"requests", sc.GetRequests(), true}, {"errors", sc.GetErrors(), needErrors}, {"latency", sc.GetLatency(), needLatency}} {
			fp := p + ".scrape." + f.name
			if f.sel.GetName() == "" && (f.need || f.sel != nil) {
				c.add(fp+".name", "is required%s", map[bool]string{true: " (a gate needs it)"}[f.need && f.sel == nil])
			}
			for _, k := range slices.Sorted(maps.Keys(f.sel.GetLabels())) {
				if _, err := regexp.Compile(f.sel.GetLabels()[k]); err != nil {
					c.add(fp+".labels."+k, "not a regular expression: %v", err)
				}
			}
		}
	default:
		c.add(p+".provider", "must be %q, %q or %q, got %q", ProviderProxy, ProviderPrometheus, ProviderScrape, m.GetProvider())
	}
}

func validateRevision(c *errs, path string, r *cutoverv1.Revision) {
	if r == nil {
		c.add(path, "is required")
		return
	}
	switch {
	case r.GetName() == "":
		c.add(path+".name", "is required")
	case len(r.GetName()) > maxRevisionNameLength || !revisionRE.MatchString(r.GetName()):
		c.add(path+".name", "must be 1-%d letters, digits, '.', '_' or '-', got %q", maxRevisionNameLength, r.GetName())
	}
	if r.GetCommand() == "" && r.GetImage() == "" {
		c.add(path+".command", "is required for the local runtime; set it, or image for the kubernetes runtime")
	}
	if d := r.GetSha256(); d != "" && !sha256RE.MatchString(d) {
		c.add(path+".sha256", "must be 64 hex digits, got %q", d)
	}
	if img := r.GetImage(); img != "" && strings.ContainsAny(img, " \t\n") {
		c.add(path+".image", "must not contain whitespace, got %q", img)
	}
	if n := r.GetInstances(); n < 0 || n > MaxInstances {
		c.add(path+".instances", "must be between 1 and %d, got %d", MaxInstances, n)
	}
	if p := r.GetReadinessPath(); p != "" && !strings.HasPrefix(p, "/") {
		c.add(path+".readinessPath", "must start with '/', got %q", p)
	}
	if d := r.GetReadyTimeout(); d != "" {
		checkDuration(c, path+".readyTimeout", d)
	}
	for _, k := range slices.Sorted(maps.Keys(r.GetEnv())) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			c.add(path+".env", "invalid variable name %q", k)
		}
	}
}

// validateTargets returns the set of clusters named, for the endpoint check.
func validateTargets(c *errs, t *cutoverv1.Targets) map[string]bool {
	seen := map[string]string{}
	clusters := map[string]bool{}
	if len(t.GetWaves()) == 0 {
		c.add("spec.targets.waves", "must list at least one wave")
		return clusters
	}
	switch t.GetFailurePolicy() {
	case "", FailureAbort, FailureHold:
	default:
		c.add("spec.targets.failurePolicy", "must be %q or %q, got %q", FailureAbort, FailureHold, t.GetFailurePolicy())
	}
	for i, w := range t.GetWaves() {
		wp := fmt.Sprintf("spec.targets.waves[%d]", i)
		if b := w.GetBake(); b != "" {
			checkDuration(c, wp+".bake", b)
		}
		if n := w.GetMaxParallel(); n < 0 {
			c.add(wp+".maxParallel", "must be 0 (all at once) or more, got %d", n)
		}
		if len(w.GetClusters()) == 0 {
			c.add(wp+".clusters", "must list at least one cluster")
		}
		for j, name := range w.GetClusters() {
			cp := fmt.Sprintf("%s.clusters[%d]", wp, j)
			switch {
			case name == "":
				c.add(cp, "must not be empty")
			case seen[name] != "":
				c.add(cp, "cluster %q is already listed at %s", name, seen[name])
			default:
				seen[name] = cp
				clusters[name] = true
			}
		}
	}
	return clusters
}

// validateEndpoint: a rollout for Kubernetes clusters only (spec.kubernetes
// set) is served by its Service and needs no listen address.
func validateEndpoint(c *errs, e *cutoverv1.Endpoint, clusters map[string]bool, kube bool) {
	if e.GetListen() == "" {
		if !kube {
			c.add("spec.endpoint.listen", "is required (unless spec.kubernetes is set)")
		}
	} else {
		checkListen(c, "spec.endpoint.listen", e.GetListen())
	}
	checkOverrides(c, "spec.endpoint.listenOverrides", e.GetListenOverrides(), clusters)
}

// checkOverrides checks per-cluster listen addresses, in sorted order so the
// errors do not change order from one run to the next.
func checkOverrides(c *errs, path string, overrides map[string]string, clusters map[string]bool) {
	for _, cluster := range slices.Sorted(maps.Keys(overrides)) {
		p := path + "." + cluster
		if !clusters[cluster] {
			c.add(p, "cluster %q is not a target of this rollout", cluster)
		}
		checkListen(c, p, overrides[cluster])
	}
}

func checkListen(c *errs, path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(path, "must be host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		c.add(path, "port must be between 1 and 65535, got %q", port)
	}
}

func validateStrategy(c *errs, spec *cutoverv1.RolloutSpec, clusters map[string]bool) {
	s := spec.GetStrategy()
	switch {
	case s.GetBlueGreen() != nil:
		validateBlueGreen(c, spec, s.GetBlueGreen(), clusters)
		return
	case s.GetRolling() != nil:
		validateRolling(c, s.GetRolling())
		return
	case s.GetShadow() != nil:
		validateShadow(c, s.GetShadow())
		return
	}
	canary := s.GetCanary()
	if canary == nil {
		c.add("spec.strategy", "must set canary, blueGreen, rolling or shadow")
		return
	}
	if len(canary.GetSteps()) == 0 {
		c.add("spec.strategy.canary.steps", "must not be empty")
	}
	for i, st := range canary.GetSteps() {
		p := fmt.Sprintf("spec.strategy.canary.steps[%d]", i)
		switch x := st.GetStep().(type) {
		case *cutoverv1.CanaryStep_SetWeight:
			if x.SetWeight < 0 || x.SetWeight > 100 {
				c.add(p+".setWeight", "must be between 0 and 100, got %d", x.SetWeight)
			}
		case *cutoverv1.CanaryStep_Pause:
			if d := x.Pause.GetDuration(); d != "" {
				checkDuration(c, p+".pause.duration", d)
			}
		case *cutoverv1.CanaryStep_SetHeaderRoute:
			checkHeaderRoute(c, p+".setHeaderRoute", x.SetHeaderRoute)
		case *cutoverv1.CanaryStep_Analysis:
			checkAnalysis(c, p+".analysis", x.Analysis)
		case *cutoverv1.CanaryStep_SetCanaryScale:
			if n := x.SetCanaryScale.GetInstances(); n < 1 || n > MaxInstances {
				c.add(p+".setCanaryScale.instances", "must be between 1 and %d, got %d", MaxInstances, n)
			}
		case *cutoverv1.CanaryStep_Approval:
			checkApproval(c, p+".approval", x.Approval)
		case *cutoverv1.CanaryStep_Shadow:
			checkShadowStep(c, p+".shadow", x.Shadow)
		default:
			c.add(p, "must set setWeight, pause, setHeaderRoute, setCanaryScale, analysis, approval or shadow")
		}
	}
}

func checkDuration(c *errs, path, s string) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		c.add(path, "must be a positive duration such as 30s or 500ms, got %q", s)
	}
}

// Default fills the fields a manifest may leave empty. It is idempotent.
func Default(s *cutoverv1.RolloutSpec) {
	if r := s.GetRevision(); r != nil {
		if r.GetInstances() == 0 {
			r.Instances = DefaultInstances
		}
		if r.GetReadinessPath() == "" {
			r.ReadinessPath = DefaultReadinessPath
		}
		if r.GetReadyTimeout() == "" {
			r.ReadyTimeout = DefaultReadyTimeout.String()
		}
	}
	for i, w := range s.GetTargets().GetWaves() {
		if w.GetName() == "" {
			w.Name = fmt.Sprintf("wave-%d", i+1)
		}
	}
	if s.GetProgressDeadline() == "" {
		s.ProgressDeadline = DefaultProgressDeadline.String()
	}
	for i, g := range s.GetGates() {
		if g.GetName() == "" {
			g.Name = fmt.Sprintf("gate-%d", i+1)
		}
		if g.GetWindow() == "" {
			g.Window = gate.DefaultWindow.String()
		}
		if g.GetMinSamples() == 0 {
			g.MinSamples = gate.DefaultMinSamples
		}
		if g.GetFailureLimit() == 0 {
			g.FailureLimit = gate.DefaultFailureLimit
		}
		if g.GetSeverity() == "" {
			g.Severity = SeverityCritical
		}
	}
	if t := s.GetTargets(); t != nil && t.GetFailurePolicy() == "" {
		t.FailurePolicy = FailureAbort
	}
	if r := s.GetStrategy().GetRolling(); r != nil {
		if r.GetBatchSize() == "" {
			r.BatchSize = "1"
		}
		if r.GetFailureThreshold() == 0 {
			r.FailureThreshold = 1
		}
		if r.GetMaxUnavailable() == "" {
			r.MaxUnavailable = "0"
		}
	}
	if bg := s.GetStrategy().GetBlueGreen(); bg != nil && bg.GetScaleDownDelaySeconds() == 0 {
		bg.ScaleDownDelaySeconds = DefaultScaleDownDelaySeconds
	}
}

// CheckClusters reports every target cluster that known says does not exist.
func CheckClusters(s *cutoverv1.RolloutSpec, known func(string) bool) error {
	var c errs
	for i, w := range s.GetTargets().GetWaves() {
		for j, name := range w.GetClusters() {
			if !known(name) {
				c.add(fmt.Sprintf("spec.targets.waves[%d].clusters[%d]", i, j),
					"unknown cluster %q (no agent has connected with that name)", name)
			}
		}
	}
	return c.err()
}

// PauseDuration returns a pause step's duration; zero means until promoted.
// The spec was validated, so a parse error cannot happen.
func PauseDuration(p *cutoverv1.PauseStep) time.Duration {
	d, _ := time.ParseDuration(p.GetDuration())
	return d
}

// checkShadowStep checks a canary's shadow step.
func checkShadowStep(c *errs, path string, s *cutoverv1.ShadowStep) {
	if n := s.GetMirrorPercent(); n < 1 || n > 100 {
		c.add(path+".mirrorPercent", "must be between 1 and 100, got %d", n)
	}
	if d := s.GetDuration(); d != "" {
		checkDuration(c, path+".duration", d)
	}
}

// ShadowDuration is how long a shadow step holds once its mirror is in
// force; 0 holds until a promote.
func ShadowDuration(s *cutoverv1.ShadowStep) time.Duration {
	d, _ := time.ParseDuration(s.GetDuration())
	return d
}

// ProgressDeadline returns the spec's progress deadline, defaulted.
func ProgressDeadline(s *cutoverv1.RolloutSpec) time.Duration {
	d, err := time.ParseDuration(s.GetProgressDeadline())
	if err != nil || d <= 0 {
		return DefaultProgressDeadline
	}
	return d
}

// Bake returns how long a wave bakes after its promotion.
func Bake(w *cutoverv1.Wave) time.Duration {
	d, _ := time.ParseDuration(w.GetBake())
	return d
}

// ReadyTimeout returns the revision's ready timeout, defaulted.
func ReadyTimeout(r *cutoverv1.Revision) time.Duration {
	d, err := time.ParseDuration(r.GetReadyTimeout())
	if err != nil || d <= 0 {
		return DefaultReadyTimeout
	}
	return d
}

var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func checkHeaderRoute(c *errs, path string, h *cutoverv1.HeaderRoute) {
	if !headerNameRE.MatchString(h.GetHeader()) {
		c.add(path+".header", "must be an HTTP header name such as X-Canary, got %q", h.GetHeader())
	}
	if h.GetValue() == "" || strings.ContainsAny(h.GetValue(), "\r\n") {
		c.add(path+".value", "must be a non-empty single-line value, got %q", h.GetValue())
	}
}

func checkAnalysis(c *errs, path string, a *cutoverv1.AnalysisStep) {
	if a.GetWindow() == "" {
		c.add(path+".window", "is required")
		return
	}
	checkDuration(c, path+".window", a.GetWindow())
}

// AnalysisWindow returns an analysis step's window.
func AnalysisWindow(a *cutoverv1.AnalysisStep) time.Duration {
	d, _ := time.ParseDuration(a.GetWindow())
	return d
}

func validateRolling(c *errs, r *cutoverv1.RollingStrategy) {
	const p = "spec.strategy.rolling"
	if b := r.GetBatchSize(); b != "" {
		if _, _, err := parseBatch(b); err != nil {
			c.add(p+".batchSize", "%v, got %q", err, b)
		}
	}
	if d := r.GetPauseBetweenBatches(); d != "" {
		checkDuration(c, p+".pauseBetweenBatches", d)
	}
	if u := r.GetMaxUnavailable(); u != "" && u != "0" {
		if _, _, err := parseBatch(u); err != nil {
			c.add(p+".maxUnavailable", "%v, got %q", err, u)
		}
	}
	if n := r.GetFailureThreshold(); n < 0 || n > MaxInstances {
		c.add(p+".failureThreshold", "must be between 1 and %d, got %d", MaxInstances, n)
	}
}

func validateShadow(c *errs, s *cutoverv1.ShadowStrategy) {
	const p = "spec.strategy.shadow"
	if n := s.GetMirrorPercent(); n < 1 || n > 100 {
		c.add(p+".mirrorPercent", "must be between 1 and 100, got %d", n)
	}
	if d := s.GetDuration(); d != "" {
		checkDuration(c, p+".duration", d)
	}
}

// parseBatch reads a batch size: a count ("2") or a percentage ("25%").
func parseBatch(s string) (n int, percent bool, err error) {
	num, percent := strings.CutSuffix(s, "%")
	n, err = strconv.Atoi(num)
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("must be a count such as 2 or a percentage such as 25%%")
	case percent && (n < 1 || n > 100):
		return 0, false, fmt.Errorf("percentage must be between 1%% and 100%%")
	case !percent && (n < 1 || n > MaxInstances):
		return 0, false, fmt.Errorf("count must be between 1 and %d", MaxInstances)
	}
	return n, percent, nil
}

// BatchSize is the number of instances per rolling batch out of total.
func BatchSize(r *cutoverv1.RollingStrategy, total int) int {
	n, percent, err := parseBatch(r.GetBatchSize())
	if err != nil {
		return 1
	}
	if percent {
		n = (total*n + 99) / 100
	}
	return max(1, min(n, total))
}

// MaxUnavailable is how many of total old instances may stop before their
// replacements are ready.
func MaxUnavailable(r *cutoverv1.RollingStrategy, total int) int {
	n, percent, err := parseBatch(r.GetMaxUnavailable())
	if err != nil {
		return 0
	}
	if percent {
		n = total * n / 100
	}
	return max(0, min(n, total))
}

func validateGates(c *errs, gates []*cutoverv1.Gate) {
	for i, g := range gates {
		p := fmt.Sprintf("spec.gates[%d]", i)
		if j := g.GetJudge(); j != nil {
			if g.GetMetric() != "latency" || g.GetCondition() != "" {
				c.add(p, "a judge compares latency distributions: set metric \"latency\" and no condition")
			}
			if cf := j.GetConfidence(); cf <= 0.5 || cf >= 1 {
				c.add(p+".judge.confidence", "must be above 0.5 and below 1, got %g", cf)
			}
			if e := j.GetMinEffect(); e < 0 || e >= 0.5 {
				c.add(p+".judge.minEffect", "must be at least 0 and below 0.5, got %g", e)
			}
		} else if _, err := gate.Parse(g.GetMetric(), g.GetCondition()); err != nil {
			c.add(p, "%v", err)
		}
		if w := g.GetWindow(); w != "" {
			checkDuration(c, p+".window", w)
		}
		if w := g.GetWarmup(); w != "" {
			checkDuration(c, p+".warmup", w)
		}
		if n := g.GetMinSamples(); n < 0 {
			c.add(p+".minSamples", "must be 0 or more, got %d", n)
		}
		if n := g.GetFailureLimit(); n < 0 {
			c.add(p+".failureLimit", "must be 1 or more, got %d", n)
		}
		switch g.GetSeverity() {
		case "", SeverityCritical, SeverityWarning:
		default:
			c.add(p+".severity", "must be %q or %q, got %q", SeverityCritical, SeverityWarning, g.GetSeverity())
		}
	}
}

// Gate severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// MaxDelaySeconds bounds the blue-green delays (one day).
const MaxDelaySeconds = 86400

func validateBlueGreen(c *errs, spec *cutoverv1.RolloutSpec, bg *cutoverv1.BlueGreenStrategy, clusters map[string]bool) {
	const p = "spec.strategy.blueGreen"
	if bg.GetPreviewListen() == "" {
		if spec.GetKubernetes() == nil { // on Kubernetes the preview is a Service
			c.add(p+".previewListen", "is required (unless spec.kubernetes is set)")
		}
	} else {
		checkListen(c, p+".previewListen", bg.GetPreviewListen())
	}
	checkOverrides(c, p+".previewListenOverrides", bg.GetPreviewListenOverrides(), clusters)
	for _, cluster := range slices.Sorted(maps.Keys(clusters)) {
		if l := ListenOf(spec, cluster); l != "" && l == PreviewListenOf(spec, cluster) {
			c.add(p+".previewListen", "must differ from the app's listen address %s in cluster %q", l, cluster)
			break
		}
	}
	if a := bg.GetPrePromotionAnalysis(); a != nil {
		checkAnalysis(c, p+".prePromotionAnalysis", a)
	}
	if n := bg.GetAutoPromotionSeconds(); n < 0 || n > MaxDelaySeconds {
		c.add(p+".autoPromotionSeconds", "must be between 0 and %d, got %d", MaxDelaySeconds, n)
	}
	if n := bg.GetScaleDownDelaySeconds(); n < 0 || n > MaxDelaySeconds {
		c.add(p+".scaleDownDelaySeconds", "must be between 0 and %d, got %d", MaxDelaySeconds, n)
	}
	validateSmokeChecks(c, p+".smokeChecks", bg.GetSmokeChecks())
}

// ListenOf is the app's listen address in a cluster.
func ListenOf(s *cutoverv1.RolloutSpec, cluster string) string {
	if l, ok := s.GetEndpoint().GetListenOverrides()[cluster]; ok {
		return l
	}
	return s.GetEndpoint().GetListen()
}

// PreviewListenOf is the blue-green preview address in a cluster; empty for
// other strategies.
func PreviewListenOf(s *cutoverv1.RolloutSpec, cluster string) string {
	bg := s.GetStrategy().GetBlueGreen()
	if l, ok := bg.GetPreviewListenOverrides()[cluster]; ok {
		return l
	}
	return bg.GetPreviewListen()
}
