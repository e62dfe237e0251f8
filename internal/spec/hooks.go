package spec

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Bounds of hooks.
const (
	defaultHookTimeout = 30 * time.Second
	maxHookTimeout     = 30 * time.Minute
	maxHookRetries     = 10
)

var (
	hookMethods = []string{"GET", "POST", "PUT", "PATCH"}
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// HookTimeout is how long one attempt of a hook may take.
func HookTimeout(h *cutoverv1.Hook) time.Duration {
	d, err := time.ParseDuration(h.GetTimeout())
	if err != nil || d <= 0 {
		return defaultHookTimeout
	}
	return d
}

func validateHooks(c *errs, s *cutoverv1.RolloutSpec) {
	checkHookList(c, "spec.preflight.checks", s.GetPreflight().GetChecks())
	h := s.GetHooks()
	checkHookList(c, "spec.hooks.preRollout", h.GetPreRollout())
	checkHookList(c, "spec.hooks.preTrafficShift", h.GetPreTrafficShift())
	checkHookList(c, "spec.hooks.postPromotion", h.GetPostPromotion())
	checkHookList(c, "spec.hooks.onAbort", h.GetOnAbort())
	if p := s.GetPolicy(); p != "" && !nameRE.MatchString(p) {
		c.add("spec.policy", "must be a policy name (lower-case letters, digits and '-'), got %q", p)
	}
}

func checkHookList(c *errs, path string, hooks []*cutoverv1.Hook) {
	var seen []string
	for i, h := range hooks {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch n := h.GetName(); {
		case n == "":
			c.add(p+".name", "is required")
		case len(n) > 63:
			c.add(p+".name", "must be at most 63 characters")
		case slices.Contains(seen, n):
			c.add(p+".name", "%q is used twice in %s", n, path)
		default:
			seen = append(seen, n)
		}
		switch a := h.GetAction().(type) {
		case *cutoverv1.Hook_Http:
			checkHTTPHook(c, p+".http", a.Http)
		case *cutoverv1.Hook_Command:
			checkCommandHook(c, p+".command", a.Command)
		default:
			c.add(p, "needs exactly one of http or command")
		}
		if t := h.GetTimeout(); t != "" {
			if d, err := time.ParseDuration(t); err != nil || d <= 0 || d > maxHookTimeout {
				c.add(p+".timeout", "must be a duration above 0 and at most %s, got %q", maxHookTimeout, t)
			}
		}
		if r := h.GetRetries(); r < 0 || r > maxHookRetries {
			c.add(p+".retries", "must be between 0 and %d, got %d", maxHookRetries, r)
		}
	}
}

func checkHTTPHook(c *errs, path string, h *cutoverv1.HTTPHook) {
	u, err := url.Parse(h.GetUrl())
	switch {
	case h.GetUrl() == "":
		c.add(path+".url", "is required")
	case err != nil:
		c.add(path+".url", "%v", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		c.add(path+".url", "must be an absolute http or https URL, got %q", h.GetUrl())
	}
	if m := h.GetMethod(); m != "" && !slices.Contains(hookMethods, m) {
		c.add(path+".method", "must be one of %v, got %q", hookMethods, m)
	}
	for k := range h.GetHeaders() {
		if !headerNameRE.MatchString(k) {
			c.add(path+".headers", "%q is not a valid header name", k)
		}
	}
}

func checkCommandHook(c *errs, path string, h *cutoverv1.CommandHook) {
	if h.GetCommand() == "" {
		c.add(path+".command", "is required")
	}
	for k := range h.GetEnv() {
		if !envName.MatchString(k) {
			c.add(path+".env", "%q is not a valid environment variable name", k)
		}
	}
}

// hookSecretRE is a reference to the control plane's environment in a
// hook's header value, e.g. "Bearer ${CUTOVER_HOOK_SCAN_TOKEN}". Only
// names starting CUTOVER_HOOK_ are references.
var hookSecretRE = regexp.MustCompile(`\$\{CUTOVER_HOOK_[A-Z0-9_]+\}`)

// HookSecretRefs lists the header fields of the spec's hooks and
// pre-flight checks that reference the control plane's hook secrets, as
// field paths.
func HookSecretRefs(s *cutoverv1.RolloutSpec) []string {
	var out []string
	lists := []struct {
		path  string
		hooks []*cutoverv1.Hook
	}{
		{"spec.preflight.checks", s.GetPreflight().GetChecks()},
		{"spec.hooks.preRollout", s.GetHooks().GetPreRollout()},
		{"spec.hooks.preTrafficShift", s.GetHooks().GetPreTrafficShift()},
		{"spec.hooks.postPromotion", s.GetHooks().GetPostPromotion()},
		{"spec.hooks.onAbort", s.GetHooks().GetOnAbort()},
	}
	for _, l := range lists {
		for i, h := range l.hooks {
			for _, k := range slices.Sorted(maps.Keys(h.GetHttp().GetHeaders())) {
				if hookSecretRE.MatchString(h.GetHttp().GetHeaders()[k]) {
					out = append(out, fmt.Sprintf("%s[%d].http.headers.%s", l.path, i, k))
				}
			}
		}
	}
	return out
}

// ExpandHookSecrets replaces the hook-secret references in a header value
// with their values from lookup (os.LookupEnv); a reference to a variable
// that is not set is an error naming it.
func ExpandHookSecrets(v string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := hookSecretRE.ReplaceAllStringFunc(v, func(ref string) string {
		name := ref[2 : len(ref)-1]
		val, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s is not set in the control plane's environment", strings.Join(missing, ", "))
	}
	return out, nil
}
