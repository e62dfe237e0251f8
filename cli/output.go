package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"
)

// Output formats accepted by --output.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// none stands in for an empty value in tables and the detail view.
const none = "-"

func validateOutput(v string) error {
	switch v {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("--output: must be one of %s, %s, %s, got %q", outputTable, outputJSON, outputYAML, v)
}

// render writes m as JSON or YAML when --output asks for it, and otherwise
// lets table write its human view.
func (o *options) render(m proto.Message, table func(io.Writer) error) error {
	if o.output == outputTable {
		return table(o.streams.Out)
	}
	return writeMessage(o.streams.Out, o.output, m)
}

// writeMessage writes m as protojson (camelCase field names, as the REST API
// does), or as the YAML equivalent of that JSON.
func writeMessage(w io.Writer, format string, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	if format == outputYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
	} else {
		b = append(b, '\n')
	}
	_, err = w.Write(b)
	return err
}

// newTable returns a tabwriter that aligns cells with three spaces between
// columns. Callers must Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

// tableLines aligns rows (cells joined by tabs) and returns them as lines, so
// a caller can interleave headings without breaking column alignment.
func tableLines(rows []string) ([]string, error) {
	var buf bytes.Buffer
	tw := newTable(&buf)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), " "))
	}
	return lines, sc.Err()
}

// enumWord renders an enum value as one short word by dropping the prefix
// that buf lint requires (the enum's name in UPPER_SNAKE_CASE) and
// title-casing the rest: ROLLOUT_PHASE_PROGRESSING -> Progressing,
// CLUSTER_STATUS_DISCONNECTED -> Disconnected. Unknown numbers print as such.
func enumWord(e protoreflect.Enum) string {
	d := e.Descriptor()
	v := d.Values().ByNumber(e.Number())
	if v == nil {
		return strconv.Itoa(int(e.Number()))
	}
	name := strings.TrimPrefix(string(v.Name()), upperSnake(string(d.Name()))+"_")
	var b strings.Builder
	for _, word := range strings.Split(name, "_") {
		if word == "" {
			continue
		}
		b.WriteString(word[:1])
		b.WriteString(strings.ToLower(word[1:]))
	}
	return b.String()
}

// upperSnake turns CamelCase into UPPER_SNAKE the way buf derives enum
// value prefixes: RolloutPhase -> ROLLOUT_PHASE, HTTPRoute -> HTTP_ROUTE.
func upperSnake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) && wordStart(rs, i) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// wordStart reports whether the upper-case rs[i] begins a new word: after a
// lower-case letter or digit, or as the last capital of an acronym.
func wordStart(rs []rune, i int) bool {
	prev := rs[i-1]
	if unicode.IsLower(prev) || unicode.IsDigit(prev) {
		return true
	}
	return i+1 < len(rs) && unicode.IsLower(rs[i+1])
}

// age is how long ago ts was, in the largest whole unit: 12s, 3m, 2h, 5d.
func age(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return none
	}
	d := now.Sub(ts.AsTime())
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

// orNone returns s, or none when s is empty.
func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
