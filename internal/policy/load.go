package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
	"github.com/cutover-dev/cutover/internal/window"
)

// Kind is the manifest kind of a policy.
const Kind = "Policy"

// Strategy names a window may allow (spec.strategy's keys).
var strategyNames = []string{"canary", "blueGreen", "rolling", "shadow"}

// Urgencies a window may allow, most urgent first.
var urgencyNames = []string{spec.UrgencyCritical, spec.UrgencyHigh, spec.UrgencyMedium, spec.UrgencyLow}

var separatorRE = regexp.MustCompile(`^---\s*(#.*)?$`)

// Set is a loaded, validated set of policies. The zero value and nil hold
// none. A Set is never modified after Load, so it is safe for concurrent
// use.
type Set struct {
	policies []*compiled // in load order
}

// compiled is a validated policy with what Resolve needs prepared.
type compiled struct {
	file     string
	p        *cutoverv1.Policy
	holidays []string // the holidays file's, then the list's, once each
	windows  []rule
}

// rule is a policy window with its limits parsed.
type rule struct {
	w             *cutoverv1.PolicyWindow
	maxLatency    time.Duration // 0: no limit
	rollbackLimit time.Duration // 0: no limit
}

// Load reads policy files, each holding one or more policy manifests
// separated by "---" lines, and validates every policy. Every problem is
// reported (joined), each naming its file, policy and field.
func Load(files ...string) (*Set, error) {
	s := &Set{}
	var errs []error
	seen := map[string]string{} // policy name -> file
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, FileError{File: f, Detail: fmt.Sprintf("read: %v", err)})
			continue
		}
		ps, err := parseFile(f, data)
		if err != nil {
			errs = append(errs, err)
		}
		for _, c := range ps {
			name := c.p.GetName()
			if other, dup := seen[name]; dup {
				errs = append(errs, FileError{File: f, Policy: name, Path: "metadata.name", Detail: "is also the name of a policy in " + other})
				continue
			}
			seen[name] = f
			s.policies = append(s.policies, c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Names lists the loaded policies' names, in load order.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.policies))
	for i, c := range s.policies {
		out[i] = c.p.GetName()
	}
	return out
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	data []byte
	line int
}

// splitDocuments cuts a file at its "---" lines.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{line: 1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for n := 1; sc.Scan(); n++ {
		if separatorRE.MatchString(strings.TrimRight(sc.Text(), "\r")) {
			docs = append(docs, cur)
			cur = document{line: n + 1}
			continue
		}
		cur.data = append(append(cur.data, sc.Bytes()...), '\n')
	}
	return append(docs, cur)
}

// parseFile parses and validates every policy of one file. It returns the
// valid policies and an error listing the problems of the others.
func parseFile(file string, data []byte) ([]*compiled, error) {
	var out []*compiled
	var errs []error
	for i, d := range splitDocuments(data) {
		js, err := yaml.YAMLToJSONStrict(d.data)
		if err != nil {
			errs = append(errs, FileError{File: file, Doc: i + 1,
				Detail: fmt.Sprintf("malformed YAML in the document from line %d: %s", d.line, trimYAMLErr(err))})
			continue
		}
		v, err := spec.DecodeJSON(js)
		if err != nil {
			errs = append(errs, FileError{File: file, Doc: i + 1, Detail: err.Error()})
			continue
		}
		if v == nil {
			continue // an empty document (comments only)
		}
		c, fe := parseDocument(file, i+1, v)
		if len(fe) > 0 {
			for _, e := range fe {
				errs = append(errs, e)
			}
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, FileError{File: file, Detail: "holds no policy"})
	}
	return out, errors.Join(errs...)
}

// checker collects the problems of one policy.
type checker struct {
	file, policy string
	doc          int
	list         []FileError
}

func (c *checker) add(path, format string, args ...any) {
	c.list = append(c.list, FileError{File: c.file, Policy: c.policy, Doc: c.doc, Path: path, Detail: fmt.Sprintf(format, args...)})
}

// addSpec adds spec.Errors, or any other error at path.
func (c *checker) addSpec(path string, err error) {
	var fe spec.Errors
	if !errors.As(err, &fe) {
		c.add(path, "%v", err)
		return
	}
	for _, e := range fe {
		c.add(e.Path, "%s", e.Detail)
	}
}

// addWindow adds the errors of window.Compile with their paths under
// prefix.
func (c *checker) addWindow(prefix string, err error) {
	for _, e := range unjoin(err) {
		var fe window.FieldError
		if errors.As(e, &fe) {
			c.add(prefix+fe.Path, "%s", fe.Detail)
		} else {
			c.add(strings.TrimSuffix(prefix, "."), "%v", e)
		}
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// parseDocument reads the envelope of one manifest and validates the
// policy in it.
func parseDocument(file string, doc int, v any) (*compiled, []FileError) {
	c := &checker{file: file, doc: doc}
	top, ok := v.(map[string]any)
	if !ok {
		c.add("", "must be a mapping with apiVersion, kind, metadata and spec")
		return nil, c.list
	}
	name, err := spec.Envelope(top, Kind)
	c.policy = name // name the policy in every message that follows
	if err != nil {
		c.addSpec("", err)
	}
	ps := &cutoverv1.PolicySpec{}
	if raw, ok := top["spec"]; ok {
		if err := spec.DecodeStrict("spec", raw, ps); err != nil {
			c.addSpec("spec", err)
		}
	}
	if len(c.list) > 0 {
		return nil, c.list
	}
	out := &compiled{file: file, p: &cutoverv1.Policy{Name: c.policy, Spec: ps}}
	validate(c, out)
	if len(c.list) > 0 {
		return nil, c.list
	}
	return out, nil
}

// validate checks a decoded policy and prepares it for Resolve.
func validate(c *checker, out *compiled) {
	ps := out.p.GetSpec()
	if len(ps.GetApps()) == 0 {
		c.add("spec.apps", "must list at least one app name pattern, e.g. \"hft-*\"")
	}
	for i, a := range ps.GetApps() {
		if _, err := path.Match(a, ""); err != nil || a == "" {
			c.add(fmt.Sprintf("spec.apps[%d]", i), "must be a glob pattern such as \"hft-*\" or \"order-router\", got %q", a)
		}
	}
	// The time zone, freezes and listed holidays are checked as the window
	// they become; window.Compile's paths are the policy's own.
	if _, err := window.Compile(&cutoverv1.DeploymentWindow{TimeZone: ps.GetTimeZone(), Freezes: ps.GetFreezes(), Holidays: ps.GetHolidays()}); err != nil {
		c.addWindow("spec.", err)
	}
	var fromFile []string
	if f := ps.GetHolidaysFile(); f != "" {
		fromFile = readHolidays(c, out.file, f)
	}
	for _, h := range slices.Concat(fromFile, ps.GetHolidays()) {
		if !slices.Contains(out.holidays, h) {
			out.holidays = append(out.holidays, h)
		}
	}
	names := map[string]int{}
	for i, w := range ps.GetWindows() {
		out.windows = append(out.windows, validateWindow(c, fmt.Sprintf("spec.windows[%d]", i), w, names, i))
	}
	if a := ps.GetApproval(); a != nil && a.GetRequired() == 0 {
		c.add("spec.approval.required", "must be at least 1 (the approvals every rollout needs)")
	}
	validateShared(c, ps)
}

func validateWindow(c *checker, p string, w *cutoverv1.PolicyWindow, names map[string]int, i int) rule {
	r := rule{w: w}
	switch prev, dup := names[w.GetName()]; {
	case w.GetName() == "":
		c.add(p+".name", "is required")
	case dup:
		c.add(p+".name", "%q is also the name of windows[%d]", w.GetName(), prev)
	default:
		names[w.GetName()] = i
	}
	if _, err := window.Compile(&cutoverv1.DeploymentWindow{Allow: w.GetAllow()}); err != nil {
		c.addWindow(p+".", err)
	}
	for j, u := range w.GetUrgencies() {
		if !slices.Contains(urgencyNames, u) {
			c.add(fmt.Sprintf("%s.urgencies[%d]", p, j), "unknown urgency %q (%s)", u, strings.Join(urgencyNames, ", "))
		}
	}
	for j, s := range w.GetAllowedStrategies() {
		if !slices.Contains(strategyNames, s) {
			c.add(fmt.Sprintf("%s.allowedStrategies[%d]", p, j), "unknown strategy %q (%s)", s, strings.Join(strategyNames, ", "))
		}
	}
	r.maxLatency = positiveDuration(c, p+".maxLatencyImpact", w.GetMaxLatencyImpact(), "5us")
	r.rollbackLimit = positiveDuration(c, p+".rollbackTimeLimit", w.GetRollbackTimeLimit(), "1s")
	return r
}

func positiveDuration(c *checker, path, s, example string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		c.add(path, "must be a positive duration such as %s, got %q", example, s)
		return 0
	}
	return d
}

// validateShared checks the approval, pre-flight checks and hooks with the
// rollout validator itself, on a minimal spec carrying them: they end up
// in rollout specs, so they must be valid there, and their field paths
// (spec.approval..., spec.preflight..., spec.hooks...) are the same in a
// policy.
func validateShared(c *checker, ps *cutoverv1.PolicySpec) {
	if ps.GetApproval() == nil && ps.GetPreflight() == nil && ps.GetHooks() == nil {
		return
	}
	probe := &cutoverv1.RolloutSpec{
		Revision: &cutoverv1.Revision{Name: "probe", Command: "probe"},
		Endpoint: &cutoverv1.Endpoint{Listen: "127.0.0.1:1"},
		Targets:  &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{Clusters: []string{"probe"}}}},
		Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{
			Steps: []*cutoverv1.CanaryStep{{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: 100}}}}}},
		Approval:  ps.GetApproval(),
		Preflight: ps.GetPreflight(),
		Hooks:     ps.GetHooks(),
	}
	var fe spec.Errors
	if err := spec.Validate(probe); errors.As(err, &fe) {
		for _, e := range fe {
			for _, prefix := range []string{"spec.approval", "spec.preflight", "spec.hooks"} {
				if e.Path == prefix || strings.HasPrefix(e.Path, prefix+".") {
					c.add(e.Path, "%s", e.Detail)
				}
			}
		}
	}
}

// readHolidays reads a holidays file: one date YYYY-MM-DD per line, '#'
// starting a comment, blank lines ignored. A relative name is relative to
// the policy file's directory.
func readHolidays(c *checker, policyFile, name string) []string {
	const p = "spec.holidaysFile"
	full := name
	if !filepath.IsAbs(full) {
		full = filepath.Join(filepath.Dir(policyFile), name)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		c.add(p, "read: %v", err)
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, line); err != nil {
			c.add(p, "%s line %d: must be a date YYYY-MM-DD, got %q", full, n, line)
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		c.add(p, "read %s: %v", full, err)
	}
	return out
}

// trimYAMLErr drops the YAML library's wrapping prefixes.
func trimYAMLErr(err error) string {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "yaml: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// Get returns a copy of the policy called name, as loaded (its holidays
// file not read into it).
func (s *Set) Get(name string) (*cutoverv1.Policy, bool) {
	for _, c := range s.list() {
		if c.p.GetName() == name {
			return proto.Clone(c.p).(*cutoverv1.Policy), true
		}
	}
	return nil, false
}
