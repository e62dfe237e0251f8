package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Geometry of a chart, in SVG user units (the SVG scales to the page).
const (
	chartWidth   = 760
	chartHeight  = 280
	marginLeft   = 70
	marginRight  = 40 // room for the last time label
	marginTop    = 30
	marginBottom = 46
	plotWidth    = chartWidth - marginLeft - marginRight
	plotHeight   = chartHeight - marginTop - marginBottom
	// markersUpTo: series this short also get a dot per point, so that a
	// single point or two are visible.
	markersUpTo = 120
)

// Colours, chosen to stay distinct in greyscale print too.
const (
	colourCanary    = "#c2410c"
	colourStable    = "#1d4ed8"
	colourThreshold = "#374151"
	colourFail      = "#dc2626"
	colourAxis      = "#6b7280"
	colourGrid      = "#e5e7eb"
)

// unit is how a metric's values are shown: multiplied by scale, with a
// label for the axis.
type unit struct {
	scale  float64
	symbol string // after a value, e.g. "%" or " ms"
	axis   string // the y axis title
}

// unitOf is the display unit of a gate's metric: values are a fraction
// for errorRate, microseconds for latencies, requests per second for
// throughput.
func unitOf(metric string) unit {
	switch {
	case metric == "errorRate":
		return unit{scale: 100, symbol: "%", axis: "error rate (%)"}
	case metric == "throughput":
		return unit{scale: 1, symbol: " req/s", axis: "throughput (req/s)"}
	case metric == "latency": // a judge's points carry each side's p99
		return unit{scale: 1e-3, symbol: " ms", axis: "p99 latency (ms)"}
	case strings.HasPrefix(metric, "latency"):
		return unit{scale: 1e-3, symbol: " ms", axis: strings.ToLower(strings.TrimPrefix(metric, "latency")) + " latency (ms)"}
	}
	return unit{scale: 1, axis: metric}
}

// format is a value in the unit, e.g. "0.52%" or "12.3 ms".
func (u unit) format(v float64) string {
	return strconv.FormatFloat(v*u.scale, 'g', 4, 64) + u.symbol
}

// chart is one line chart: the canary's and stable's values of one gate in
// one cluster over time, the threshold dashed, failed evaluations marked.
type chart struct {
	id                           string // unique in the document
	gate, cluster, metric, title string
	points                       []*cutoverv1.GateEvaluation
}

// scale maps data to the plot area.
type scale struct {
	t0, t1 time.Time
	ymax   float64 // in display units
	u      unit
}

func (s scale) x(t time.Time) float64 {
	span := s.t1.Sub(s.t0)
	return marginLeft + float64(t.Sub(s.t0))/float64(span)*plotWidth
}

func (s scale) y(v float64) float64 {
	return marginTop + plotHeight - v*s.u.scale/s.ymax*plotHeight
}

func newScale(points []*cutoverv1.GateEvaluation, u unit) scale {
	s := scale{u: u, t0: points[0].GetTime().AsTime(), t1: points[len(points)-1].GetTime().AsTime()}
	if !s.t1.After(s.t0) { // a single instant: centre it in a minute
		s.t0, s.t1 = s.t0.Add(-30*time.Second), s.t1.Add(30*time.Second)
	}
	top := 0.0
	for _, p := range points {
		top = max(top, p.GetCanary(), p.GetStable())
		if p.Threshold != nil {
			top = max(top, p.GetThreshold())
		}
	}
	s.ymax = niceCeil(top * u.scale * 1.1)
	return s
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten (1 for
// nothing to show).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// svg renders the chart as an inline SVG element. Every text is escaped;
// nothing refers outside the element.
func (c chart) svg() string {
	if len(c.points) == 0 {
		return ""
	}
	u := unitOf(c.metric)
	s := newScale(c.points, u)
	var b strings.Builder
	failed := 0
	for _, p := range c.points {
		if p.GetVerdict() == cutoverv1.GateVerdict_GATE_VERDICT_FAIL {
			failed++
		}
	}
	id := c.id
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="100%%" role="img" aria-labelledby="%s-title" `+
		`data-gate="%s" data-cluster="%s" data-metric="%s" data-points="%d" data-failed="%d">`,
		chartWidth, chartHeight, esc(id), esc(c.gate), esc(c.cluster), esc(c.metric), len(c.points), failed)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, esc(id), esc(c.title))
	c.axes(&b, s)
	c.lines(&b, s)
	c.legend(&b)
	b.WriteString(`</svg>`)
	return b.String()
}

// axes draws the grid, the ticks with their labels, and the axis titles.
func (c chart) axes(b *strings.Builder, s scale) {
	b.WriteString(`<g class="axes" font-family="sans-serif" font-size="11" fill="` + colourAxis + `">`)
	for i := 0; i <= 4; i++ {
		v := s.ymax * float64(i) / 4
		y := marginTop + plotHeight - float64(i)/4*plotHeight
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="1"/>`, marginLeft, y, marginLeft+plotWidth, y, colourGrid)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, marginLeft-6, y, esc(strconv.FormatFloat(v, 'g', 4, 64)))
	}
	for i := 0; i <= 4; i++ {
		t := s.t0.Add(time.Duration(float64(s.t1.Sub(s.t0)) * float64(i) / 4))
		x := s.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1"/>`, x, marginTop+plotHeight, x, marginTop+plotHeight+4, colourAxis)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, marginTop+plotHeight+16, t.UTC().Format("15:04:05"))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>`, marginLeft, marginTop, marginLeft, marginTop+plotHeight, colourAxis)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>`, marginLeft, marginTop+plotHeight, marginLeft+plotWidth, marginTop+plotHeight, colourAxis)
	fmt.Fprintf(b, `<text class="axis-title" x="%d" y="%d" text-anchor="middle">time (UTC, %s)</text>`,
		marginLeft+plotWidth/2, chartHeight-8, s.t0.UTC().Format("2006-01-02"))
	fmt.Fprintf(b, `<text class="axis-title" x="14" y="%d" text-anchor="middle" transform="rotate(-90 14 %d)">%s</text>`,
		marginTop+plotHeight/2, marginTop+plotHeight/2, esc(s.u.axis))
	b.WriteString(`</g>`)
}

// lines draws stable, canary and the threshold, and marks failures.
func (c chart) lines(b *strings.Builder, s scale) {
	stable, canary, threshold := make([]string, 0, len(c.points)), make([]string, 0, len(c.points)), []string{}
	for _, p := range c.points {
		x := s.x(p.GetTime().AsTime())
		stable = append(stable, fmt.Sprintf("%.1f,%.1f", x, s.y(p.GetStable())))
		canary = append(canary, fmt.Sprintf("%.1f,%.1f", x, s.y(p.GetCanary())))
		if p.Threshold != nil {
			threshold = append(threshold, fmt.Sprintf("%.1f,%.1f", x, s.y(p.GetThreshold())))
		}
	}
	if len(threshold) == 1 { // one known value: draw it across the plot
		y := threshold[0][strings.IndexByte(threshold[0], ',')+1:]
		threshold = []string{fmt.Sprintf("%d,%s", marginLeft, y), fmt.Sprintf("%d,%s", marginLeft+plotWidth, y)}
	}
	if len(threshold) > 0 {
		fmt.Fprintf(b, `<polyline class="threshold" points="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`,
			strings.Join(threshold, " "), colourThreshold)
	}
	fmt.Fprintf(b, `<polyline class="series stable" data-series="stable" points="%s" fill="none" stroke="%s" stroke-width="2"/>`,
		strings.Join(stable, " "), colourStable)
	fmt.Fprintf(b, `<polyline class="series canary" data-series="canary" points="%s" fill="none" stroke="%s" stroke-width="2"/>`,
		strings.Join(canary, " "), colourCanary)
	u := unitOf(c.metric)
	for i, p := range c.points {
		x, y := s.x(p.GetTime().AsTime()), s.y(p.GetCanary())
		if len(c.points) <= markersUpTo {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%s" r="2" fill="%s"/>`, x, stable[i][strings.IndexByte(stable[i], ',')+1:], colourStable)
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`, x, y, colourCanary)
		}
		if p.GetVerdict() != cutoverv1.GateVerdict_GATE_VERDICT_FAIL {
			continue
		}
		what := fmt.Sprintf("failed at %s: canary %s, stable %s", p.GetTime().AsTime().UTC().Format("15:04:05.000"), u.format(p.GetCanary()), u.format(p.GetStable()))
		if p.Threshold != nil {
			what += ", threshold " + u.format(p.GetThreshold())
		}
		fmt.Fprintf(b, `<g class="fail"><circle cx="%.1f" cy="%.1f" r="5" fill="none" stroke="%s" stroke-width="2"/>`+
			`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+
			`<title>%s</title></g>`,
			x, y, colourFail, x-3, y-3, x+3, y+3, colourFail, x-3, y+3, x+3, y-3, colourFail, esc(what))
	}
}

// legend names the lines, top right.
func (c chart) legend(b *strings.Builder) {
	b.WriteString(`<g class="legend" font-family="sans-serif" font-size="11" fill="#111827">`)
	x := marginLeft + plotWidth - 330
	item := func(dx int, swatch, label string) {
		fmt.Fprintf(b, `%s<text x="%d" y="16">%s</text>`, swatch, x+dx+24, label)
	}
	item(0, fmt.Sprintf(`<line x1="%d" y1="12" x2="%d" y2="12" stroke="%s" stroke-width="2"/>`, x, x+20, colourCanary), "canary")
	item(75, fmt.Sprintf(`<line x1="%d" y1="12" x2="%d" y2="12" stroke="%s" stroke-width="2"/>`, x+75, x+95, colourStable), "stable")
	item(150, fmt.Sprintf(`<line x1="%d" y1="12" x2="%d" y2="12" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`, x+150, x+170, colourThreshold), "threshold")
	item(245, fmt.Sprintf(`<circle cx="%d" cy="12" r="5" fill="none" stroke="%s" stroke-width="2"/>`, x+255, colourFail), "failed")
	b.WriteString(`</g>`)
}

func esc(s string) string { return html.EscapeString(s) }
