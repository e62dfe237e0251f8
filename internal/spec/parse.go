package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// APIVersion and Kind are the only ones this version understands.
const (
	APIVersion = "cutover.dev/v1"
	Kind       = "Rollout"
)

// Manifest is a parsed, validated and defaulted rollout manifest.
type Manifest struct {
	Name string
	Spec *cutoverv1.RolloutSpec
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Parse reads a YAML or JSON manifest. Unknown fields, wrong types and
// invalid values are all reported with their field paths.
func Parse(data []byte) (*Manifest, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, Errors{{Path: "manifest", Detail: "is empty"}}
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, Errors{{Path: "manifest", Detail: "malformed YAML: " + trimYAMLErr(err)}}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, Errors{{Path: "manifest", Detail: "malformed document: " + err.Error()}}
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, Errors{{Path: "manifest", Detail: "must be a mapping with apiVersion, kind, metadata and spec"}}
	}

	var c errs
	m := &Manifest{Name: envelope(&c, top, Kind)}
	rawSpec, hasSpec := top["spec"]
	switch {
	case hasSpec && rawSpec == nil:
		// protojson refuses a null message at the top.
		c.add("spec", "must be a mapping, got nothing")
	case hasSpec:
		checkMessage(&c, "spec", rawSpec, (&cutoverv1.RolloutSpec{}).ProtoReflect().Descriptor())
	}
	if err := c.err(); err != nil {
		return nil, err
	}

	specJSON, err := json.Marshal(rawSpec)
	if err != nil {
		return nil, fmt.Errorf("re-encode spec: %w", err)
	}
	m.Spec = &cutoverv1.RolloutSpec{}
	if err := protojson.Unmarshal(specJSON, m.Spec); err != nil {
		// checkMessage accepts only what protojson accepts; reaching here is
		// a bug, but still a clear refusal rather than a half-parsed spec.
		return nil, Errors{{Path: "spec", Detail: err.Error()}}
	}
	if err := Validate(m.Spec); err != nil {
		return nil, err
	}
	Default(m.Spec)
	return m, nil
}

// Envelope checks the top level of a manifest of kind: apiVersion
// cutover.dev/v1, the kind, metadata with only a valid name, and a spec,
// nothing else. It returns the name ("" when it is not valid) and every
// problem as Errors. Other manifest kinds, such as release policies, use
// it so that their envelopes read exactly like a rollout's.
func Envelope(top map[string]any, kind string) (string, error) {
	var c errs
	name := envelope(&c, top, kind)
	return name, c.err()
}

func envelope(c *errs, top map[string]any, kind string) string {
	var name string
	for _, k := range slices.Sorted(maps.Keys(top)) {
		switch k {
		case "apiVersion":
			if v, _ := top[k].(string); v != APIVersion {
				c.add("apiVersion", "must be %q, got %s", APIVersion, show(top[k]))
			}
		case "kind":
			if v, _ := top[k].(string); v != kind {
				c.add("kind", "must be %q, got %s", kind, show(top[k]))
			}
		case "metadata":
			name = parseMetadata(c, top[k])
		case "spec":
		default:
			c.add(k, "unknown field")
		}
	}
	for _, k := range []string{"apiVersion", "kind", "metadata", "spec"} {
		if _, ok := top[k]; !ok {
			c.add(k, "is required")
		}
	}
	return name
}

func parseMetadata(c *errs, v any) string {
	md, ok := v.(map[string]any)
	if !ok {
		c.add("metadata", "must be a mapping")
		return ""
	}
	var name string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		switch k {
		case "name":
			s, ok := md[k].(string)
			switch {
			case !ok:
				c.add("metadata.name", "must be a string")
			case len(s) > 63 || !nameRE.MatchString(s):
				c.add("metadata.name", "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit, got %q", s)
			default:
				name = s
			}
		default:
			c.add("metadata."+k, "unknown field")
		}
	}
	if _, ok := md["name"]; !ok {
		c.add("metadata.name", "is required")
	}
	return name
}

// checkMessage walks a decoded JSON value against a message descriptor and
// reports unknown fields, wrong types and oneofs set twice, with paths.
func checkMessage(c *errs, path string, v any, md protoreflect.MessageDescriptor) {
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return
		}
		c.add(path, "must be a mapping, got %s", show(v))
		return
	}
	oneofs := map[protoreflect.FullName]string{}
	fields := map[protoreflect.FieldNumber]string{}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		p := join(path, k)
		if fd == nil {
			c.add(p, "unknown field")
			continue
		}
		// Both spellings of one field (readinessPath, readiness_path).
		if prev, dup := fields[fd.Number()]; dup {
			c.add(p, "is the same field as %s; set only one", prev)
			continue
		}
		fields[fd.Number()] = k
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if prev, dup := oneofs[od.FullName()]; dup {
				c.add(path, "only one of %s and %s may be set", prev, k)
				continue
			}
			oneofs[od.FullName()] = k
		}
		checkField(c, p, obj[k], fd)
	}
}

func checkField(c *errs, path string, v any, fd protoreflect.FieldDescriptor) {
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			if v != nil {
				c.add(path, "must be a mapping, got %s", show(v))
			}
			return
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			checkValue(c, path+"."+k, obj[k], fd.MapValue())
		}
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			if v != nil {
				c.add(path, "must be a list, got %s", show(v))
			}
			return
		}
		for i, e := range list {
			checkListEntry(c, path+"["+strconv.Itoa(i)+"]", e, fd)
		}
	default:
		checkValue(c, path, v, fd)
	}
}

// checkListEntry checks a list entry: protojson refuses a null entry even in a
// list of messages, where a null field would only mean unset.
func checkListEntry(c *errs, path string, v any, fd protoreflect.FieldDescriptor) {
	if v == nil && fd.Kind() == protoreflect.MessageKind {
		c.add(path, "must be a mapping, got nothing")
		return
	}
	checkValue(c, path, v, fd)
}

func checkValue(c *errs, path string, v any, fd protoreflect.FieldDescriptor) {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		checkMessage(c, path, v, fd.Message())
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			c.add(path, "must be a string, got %s", show(v))
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			c.add(path, "must be true or false, got %s", show(v))
		}
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "must be an integer, got %s", show(v))
			return
		}
		bits := 32
		if fd.Kind() == protoreflect.Int64Kind {
			bits = 64
		}
		if _, err := strconv.ParseInt(n.String(), 10, bits); err != nil {
			c.add(path, "must be an integer, got %s", n)
		}
	default:
		// The spec has no other scalar kinds; protojson checks them anyway.
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", x)
	}
}

// trimYAMLErr drops the library's wrapping prefixes so the line number leads.
func trimYAMLErr(err error) string {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "yaml: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}
