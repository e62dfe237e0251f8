package report

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

var t0 = time.Date(2027, 5, 3, 9, 30, 0, 0, time.UTC)

// evaluations are n points a second apart: stable at 0.2%, the canary
// climbing by 0.1% a second against a 1% threshold, failing above it.
func evaluations(n int) []*cutoverv1.GateEvaluation {
	var out []*cutoverv1.GateEvaluation
	for i := range n {
		p := &cutoverv1.GateEvaluation{Time: timestamppb.New(t0.Add(time.Duration(i) * time.Second)), Canary: 0.001 * float64(i+1), Stable: 0.002,
			Threshold: proto.Float64(0.01), CanaryRequests: 200, StableRequests: 800, Evaluations: 10, Verdict: cutoverv1.GateVerdict_GATE_VERDICT_PASS}
		if p.GetCanary() > 0.01 {
			p.Verdict, p.Failed, p.Evidence = cutoverv1.GateVerdict_GATE_VERDICT_FAIL, 1, "errorRate over threshold"
		}
		out = append(out, p)
	}
	return out
}

// svgElement is one parsed SVG element.
type svgElement struct {
	name  string
	attrs map[string]string
	text  string
}

// parse reads an SVG string as XML (so it must be well-formed) into its
// elements, in document order.
func parse(t *testing.T, svg string) []svgElement {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var out []svgElement
	var open []int
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := svgElement{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
			open = append(open, len(out)-1)
		case xml.CharData:
			if len(open) > 0 {
				out[open[len(open)-1]].text += string(tok)
			}
		case xml.EndElement:
			open = open[:len(open)-1]
		}
	}
	return out
}

func byClass(els []svgElement, name, class string) []svgElement {
	var out []svgElement
	for _, e := range els {
		if e.name == name && strings.Contains(" "+e.attrs["class"]+" ", " "+class+" ") {
			out = append(out, e)
		}
	}
	return out
}

// coords parses a polyline's points.
func coords(t *testing.T, points string) [][2]float64 {
	t.Helper()
	var out [][2]float64
	for _, p := range strings.Fields(points) {
		x, y, ok := strings.Cut(p, ",")
		fx, err1 := strconv.ParseFloat(x, 64)
		fy, err2 := strconv.ParseFloat(y, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("point %q", p)
		}
		out = append(out, [2]float64{fx, fy})
	}
	return out
}

// A chart has a canary and a stable line through every point, left to
// right and inside the plot, the threshold dashed, one mark per failed
// evaluation, and labelled axes.
func TestChartDrawsCanaryStableThresholdAndFailures(t *testing.T) {
	c := chart{id: "chart-1", gate: "errors", cluster: "us-east", metric: "errorRate", title: "Gate errors in us-east", points: evaluations(15)}
	els := parse(t, c.svg())
	root := els[0]
	if root.name != "svg" || root.attrs["class"] != "chart" || root.attrs["data-gate"] != "errors" || root.attrs["data-cluster"] != "us-east" ||
		root.attrs["data-points"] != "15" || root.attrs["data-failed"] != "5" {
		t.Fatalf("root element %v", root)
	}
	for _, series := range []string{"canary", "stable"} {
		lines := byClass(els, "polyline", series)
		if len(lines) != 1 {
			t.Fatalf("%d %s lines", len(lines), series)
		}
		pts := coords(t, lines[0].attrs["points"])
		if len(pts) != 15 {
			t.Errorf("%s line has %d points, want 15", series, len(pts))
		}
		for i, p := range pts {
			if p[0] < marginLeft || p[0] > marginLeft+plotWidth || p[1] < marginTop || p[1] > marginTop+plotHeight {
				t.Errorf("%s point %d at %v is outside the plot", series, i, p)
			}
			if i > 0 && p[0] <= pts[i-1][0] {
				t.Errorf("%s point %d does not move right", series, i)
			}
		}
	}
	canary := coords(t, byClass(els, "polyline", "canary")[0].attrs["points"])
	if canary[0][1] <= canary[14][1] {
		t.Errorf("the canary climbs, but its line goes from y %.1f to %.1f (SVG y grows downwards)", canary[0][1], canary[14][1])
	}
	if canary[0][0] != marginLeft || canary[14][0] != marginLeft+plotWidth {
		t.Errorf("the first and last points are at x %.1f and %.1f, want the plot's edges", canary[0][0], canary[14][0])
	}
	th := byClass(els, "polyline", "threshold")
	if len(th) != 1 || th[0].attrs["stroke-dasharray"] == "" {
		t.Fatalf("threshold lines %v, want one dashed", th)
	}
	if pts := coords(t, th[0].attrs["points"]); pts[0][1] != pts[len(pts)-1][1] {
		t.Errorf("a constant threshold is drawn from y %.1f to %.1f", pts[0][1], pts[len(pts)-1][1])
	}
	if fails := byClass(els, "g", "fail"); len(fails) != 5 {
		t.Errorf("%d failure marks, want 5", len(fails))
	}
	var texts []string
	for _, e := range els {
		if e.name == "text" || e.name == "title" {
			texts = append(texts, e.text)
		}
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"error rate (%)", "time (UTC, 2027-05-03)", "09:30:00", "09:30:14", "canary", "stable", "threshold", "failed", "Gate errors in us-east",
		"failed at 09:30:10.000: canary 1.1%, stable 0.2%, threshold 1%"} {
		if !strings.Contains(all, want) {
			t.Errorf("no text %q in %s", want, all)
		}
	}
}

// Names from the API are escaped: the SVG stays well-formed and shows
// them as they are.
func TestChartEscapesNames(t *testing.T) {
	name := `<script>alert("x")</script>&`
	c := chart{id: "chart-1", gate: name, cluster: "eu-1", metric: "latencyP99", title: name, points: evaluations(2)}
	svg := c.svg()
	if strings.Contains(svg, "<script>") {
		t.Fatalf("unescaped name in %s", svg)
	}
	els := parse(t, svg)
	if els[0].attrs["data-gate"] != name {
		t.Errorf("data-gate = %q, want %q", els[0].attrs["data-gate"], name)
	}
}

// A single evaluation still shows: its dots, and the threshold across the
// plot.
func TestChartOfOnePoint(t *testing.T) {
	c := chart{id: "chart-1", gate: "p99", cluster: "eu-1", metric: "latencyP99", title: "p99", points: evaluations(1)}
	els := parse(t, c.svg())
	dots := 0
	for _, e := range els {
		if e.name == "circle" {
			dots++
		}
	}
	if dots < 2 {
		t.Errorf("%d dots for one point, want one per line", dots)
	}
	pts := coords(t, byClass(els, "polyline", "threshold")[0].attrs["points"])
	if len(pts) != 2 || pts[0][0] != marginLeft || pts[1][0] != marginLeft+plotWidth {
		t.Errorf("threshold of one point: %v, want across the plot", pts)
	}
	if (chart{}).svg() != "" {
		t.Error("a chart of no points is not empty")
	}
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{0, 1}, {-1, 1}, {0.7, 1}, {1, 1}, {1.1, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {0.0123, 0.02}, {1234, 2000},
	} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%g) = %g, want %g", c.in, got, c.want)
		}
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct {
		metric string
		v      float64
		want   string
		axis   string
	}{
		{"errorRate", 0.0052, "0.52%", "error rate (%)"},
		{"latencyP99", 12345, "12.35 ms", "p99 latency (ms)"},
		{"latencyP999", 250, "0.25 ms", "p999 latency (ms)"},
		{"latency", 1500, "1.5 ms", "p99 latency (ms)"},
		{"throughput", 950, "950 req/s", "throughput (req/s)"},
	} {
		u := unitOf(c.metric)
		if got := u.format(c.v); got != c.want || u.axis != c.axis {
			t.Errorf("%s: %g shows as %q on %q, want %q on %q", c.metric, c.v, got, u.axis, c.want, c.axis)
		}
	}
}
