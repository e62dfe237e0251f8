package e2e

import (
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/test/harness"
)

// Given v1 stable and load on us-east, a canary of v2 answering 10% errors
// is guarded by an errorRate gate that acts after 50 failed evaluations in
// a row (about five seconds) and a p99 gate that passes. When the gate
// aborts the canary and the control plane restarts (so the evaluation
// record comes from its store), then `cutover report demo -f report.html`
// writes one self-contained file with every section, who applied the
// rollout, the audit chain verified, and a chart per gate with canary and
// stable lines and the failures marked, which headless Chromium renders.
func TestReportOfAGatedCanary(t *testing.T) {
	chromium, err := harness.ChromiumBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := newTwoRegions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f.deploy(ctx, "v1")

	stop := f.hammer(ctx, "us-east")
	a := f.app("v2", "setWeight: 50", "pause: {duration: 60s}")
	a.ExtraArgs = append(a.ExtraArgs, "--error-rate", "0.1")
	a.Gates = []string{
		"name: errors, metric: errorRate, condition: '<= 0.02', window: 1s, minSamples: 100, failureLimit: 50",
		"name: p99, metric: latencyP99, condition: '<= 2s', window: 1s, minSamples: 50, failureLimit: 1000",
	}
	applied, err := f.env.Apply(ctx, a.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	r := f.wait(ctx, "aborted by its gate", harness.InPhase(cutoverv1.RolloutPhase_ROLLOUT_PHASE_ABORTED))
	stop()
	if !strings.Contains(r.GetStatus().GetMessage(), "gate errors") {
		t.Fatalf("aborted, but not by the gate: %s", r.GetStatus().GetMessage())
	}
	restart(t, f, ctx)

	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	f.cli(ctx, "report", "demo", "-f", file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	// Self-contained: nothing to fetch, nothing to run.
	if m := regexp.MustCompile(`(?i)\b(src|href|xlink:href)\s*=\s*["']?\s*(https?:|//)`).FindString(doc); m != "" {
		t.Errorf("the report refers outside itself: %q", m)
	}
	if strings.Contains(doc, "<script") || strings.Contains(doc, "<link") || strings.Contains(doc, "<img") {
		t.Error("the report has a script, a link or an image")
	}
	for _, want := range []string{
		`id="summary"`, `id="timeline"`, `id="approvals"`, `id="checks"`, `id="windows"`, `id="gates"`, `id="audit"`,
		"Rollout report: demo #2", "v1 → v2", "<td id=\"applied-by\">" + applied.GetAppliedBy() + "</td>",
		"Audit chain verified: ok.", "gate.tripped", "rollout.apply", "Gate errors: errorRate &lt;= 0.02", "Gate p99: latencyP99 &lt;= 2s",
		// The pre-flight's results, per cluster.
		`pre-flight: <span class="ok">passed</span>`, "<td>agent connected</td><td>builtin</td><td>us-east</td>",
		"<td>pinned</td><td>builtin</td><td>eu-west</td>", "checks.passed",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if applied.GetAppliedBy() == "" {
		t.Error("the rollout has no applied_by")
	}

	// What a browser makes of it.
	browser := harness.Chromium{Bin: chromium}
	dom, err := browser.DumpDOM(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"summary", "timeline", "approvals", "checks", "windows", "gates", "audit", "audit-verification"} {
		if !regexp.MustCompile(`<(section|header|div)[^>]*\bid="` + id + `"`).MatchString(dom) {
			t.Errorf("the DOM has no element with id %q", id)
		}
	}
	charts := chartsIn(t, dom)
	for _, gate := range []string{"errors", "p99"} {
		c, ok := charts[gate+"/us-east"]
		if !ok {
			t.Errorf("no chart of gate %s in us-east; charts: %v", gate, keys(charts))
			continue
		}
		if c.canary < 3 || c.stable < 3 || c.canary != c.stable {
			t.Errorf("chart of %s: %d canary and %d stable points, want several of each", gate, c.canary, c.stable)
		}
		if !c.threshold {
			t.Errorf("chart of %s has no dashed threshold", gate)
		}
	}
	if c := charts["errors/us-east"]; c.failMarks == 0 {
		t.Error("the errors chart marks no failed evaluation")
	}
	if c := charts["p99/us-east"]; c.failMarks != 0 {
		t.Errorf("the p99 chart marks %d failures of a gate that passed", c.failMarks)
	}

	shot := filepath.Join(dir, "report.png")
	if err := browser.Screenshot(ctx, file, shot, 1200, 3000); err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, shot, 1200, 3000)

	// The same evidence over REST, and the report of an earlier rollout.
	code, body, err := f.env.HTTP(ctx, http.MethodGet, "/v1/rollouts/demo/report?rolloutNumber=2", "")
	var rest struct {
		Rollout struct {
			AppliedBy string `json:"appliedBy"`
		} `json:"rollout"`
		Evaluations struct {
			Series []struct {
				Gate   string            `json:"gate"`
				Points []json.RawMessage `json:"points"`
			} `json:"series"`
		} `json:"evaluations"`
		AuditVerification struct {
			Ok bool `json:"ok"`
		} `json:"auditVerification"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &rest) != nil || len(rest.Evaluations.Series) != 2 ||
		rest.Rollout.AppliedBy != applied.GetAppliedBy() || !rest.AuditVerification.Ok {
		t.Errorf("GET /v1/rollouts/demo/report?rolloutNumber=2 = %d %v:\n%.500s", code, err, body)
	}
	first := filepath.Join(dir, "first.html")
	f.cli(ctx, "report", "demo", "--rollout-number", "1", "-f", first)
	if b, err := os.ReadFile(first); err != nil || !strings.Contains(string(b), "Rollout report: demo #1") || !strings.Contains(string(b), "this rollout had no gates") {
		t.Errorf("report of rollout 1: %v\n%.300s", err, b)
	}
	_, stderr, code, err := f.env.CLI(ctx, "", "report", "demo", "--rollout-number", "9")
	if err != nil || code != 1 || !strings.HasPrefix(stderr, "error: --rollout-number 9: ") {
		t.Errorf("cutover report --rollout-number 9: exit %d, %v, stderr %q", code, err, stderr)
	}
}

// restart stops the control plane gracefully, starts it again and waits
// for both agents to reconnect.
func restart(t *testing.T, f *twoRegions, ctx context.Context) {
	t.Helper()
	if err := f.env.Server.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop control plane: %v", err)
	}
	if err := f.env.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	err := harness.Poll(ctx, 20*time.Millisecond, "agents reconnected", func() (bool, error) {
		resp, err := f.env.Clusters.ListClusters(ctx, &cutoverv1.ListClustersRequest{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, c := range resp.GetClusters() {
			if c.GetStatus() == cutoverv1.ClusterStatus_CLUSTER_STATUS_CONNECTED {
				n++
			}
		}
		return n == len(regions), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// chartDOM is what one chart of the DOM holds.
type chartDOM struct {
	canary, stable, failMarks int
	threshold                 bool
}

var (
	chartRE    = regexp.MustCompile(`(?s)<svg\b([^>]*)>(.*?)</svg>`)
	attrRE     = regexp.MustCompile(`\b(class|data-gate|data-cluster)="([^"]*)"`)
	polylineRE = regexp.MustCompile(`<polyline\b[^>]*>`)
	classRE    = regexp.MustCompile(`\bclass="([^"]*)"`)
	pointsRE   = regexp.MustCompile(`\bpoints="([^"]*)"`)
)

// chartsIn finds the charts (svg.chart) of a serialised DOM, by gate and
// cluster ("errors/us-east").
func chartsIn(t *testing.T, dom string) map[string]chartDOM {
	t.Helper()
	out := map[string]chartDOM{}
	for _, m := range chartRE.FindAllStringSubmatch(dom, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(m[1], -1) {
			attrs[a[1]] = a[2]
		}
		if !strings.Contains(" "+attrs["class"]+" ", " chart ") {
			continue
		}
		var c chartDOM
		for _, tag := range polylineRE.FindAllString(m[2], -1) {
			class, points := classRE.FindStringSubmatch(tag), pointsRE.FindStringSubmatch(tag)
			if class == nil || points == nil {
				continue
			}
			n := len(strings.Fields(points[1]))
			switch {
			case strings.Contains(class[1], "canary"):
				c.canary = n
			case strings.Contains(class[1], "stable"):
				c.stable = n
			case strings.Contains(class[1], "threshold"):
				c.threshold = n >= 2 && strings.Contains(tag, "stroke-dasharray")
			}
		}
		c.failMarks = strings.Count(m[2], `<g class="fail">`)
		out[attrs["data-gate"]+"/"+attrs["data-cluster"]] = c
	}
	return out
}

func keys(m map[string]chartDOM) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkScreenshot asserts a PNG of the expected size that shows a page,
// not a blank: many non-white pixels, and some of the canary's orange.
func checkScreenshot(t *testing.T, path string, width, height int) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	inked, orange := countPixels(img)
	if inked < 10000 {
		t.Errorf("screenshot has %d non-white pixels: blank", inked)
	}
	if orange < 50 {
		t.Errorf("screenshot has %d pixels of the canary's colour: no chart drawn", orange)
	}
}

func countPixels(img image.Image) (inked, orange int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r < 240 || g < 240 || bl < 240 {
				inked++
			}
			// #c2410c: a strong red-orange.
			if r > 170 && r < 215 && g > 45 && g < 90 && bl < 40 {
				orange++
			}
		}
	}
	return inked, orange
}
