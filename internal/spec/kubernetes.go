package spec

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Defaults of spec.kubernetes and of smoke checks.
const (
	DefaultNamespace     = "default"
	DefaultColorLabel    = "environment"
	DefaultContainerPort = 8080
	DefaultServicePort   = 80
	DefaultSmokeTimeout  = 5 * time.Second
	DefaultSmokeAttempts = 3
	// PreviewPlaceholder in a smoke check's URL stands for the preview's
	// host:port.
	PreviewPlaceholder = "{{preview}}"
	// SmokePassed is what an agent reports for a preview whose smoke
	// checks all passed.
	SmokePassed      = "passed"
	maxSmokeAttempts = 20
)

// Kube is spec.kubernetes with every default filled in: the names of the
// objects an agent with the kubernetes runtime drives for one app.
type Kube struct {
	App            string
	Namespace      string
	Deployment     string
	Service        string
	PreviewService string
	ColorLabel     string
	Selector       map[string]string
	Container      string
	ContainerPort  int32
	ServicePort    int32
	// HTTPRoute is empty without a router; RouteNamespace defaults to
	// Namespace.
	HTTPRoute       string
	RouteNamespace  string
	DelegateRolling bool
}

// KubeOf resolves an app's spec.kubernetes (nil for all defaults).
func KubeOf(app string, k *cutoverv1.KubernetesSpec) Kube {
	out := Kube{
		App:             app,
		Namespace:       or(k.GetNamespace(), DefaultNamespace),
		Deployment:      or(k.GetDeployment(), app),
		Service:         or(k.GetService(), app),
		ColorLabel:      or(k.GetColorLabel(), DefaultColorLabel),
		Selector:        maps.Clone(k.GetSelector()),
		Container:       or(k.GetContainer(), app),
		ContainerPort:   k.GetContainerPort(),
		ServicePort:     k.GetServicePort(),
		HTTPRoute:       k.GetHttpRoute().GetName(),
		DelegateRolling: k.GetDelegateRolling(),
	}
	out.PreviewService = or(k.GetPreviewService(), out.Service+"-preview")
	out.RouteNamespace = or(k.GetHttpRoute().GetNamespace(), out.Namespace)
	if len(out.Selector) == 0 {
		out.Selector = map[string]string{"app": app}
	}
	if out.ContainerPort == 0 {
		out.ContainerPort = DefaultContainerPort
	}
	if out.ServicePort == 0 {
		out.ServicePort = DefaultServicePort
	}
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func validateKubernetes(c *errs, k *cutoverv1.KubernetesSpec) {
	const p = "spec.kubernetes"
	if k == nil {
		return
	}
	dns := func(field, v string, f func(string) []string) {
		if v == "" {
			return
		}
		if problems := f(v); len(problems) > 0 {
			c.add(p+"."+field, "%q is not a valid name: %s", v, strings.Join(problems, "; "))
		}
	}
	dns("namespace", k.GetNamespace(), validation.IsDNS1123Label)
	dns("deployment", k.GetDeployment(), validation.IsDNS1123Subdomain)
	dns("service", k.GetService(), validation.IsDNS1035Label)
	dns("previewService", k.GetPreviewService(), validation.IsDNS1035Label)
	dns("container", k.GetContainer(), validation.IsDNS1123Label)
	dns("httpRoute.name", k.GetHttpRoute().GetName(), validation.IsDNS1123Subdomain)
	dns("httpRoute.namespace", k.GetHttpRoute().GetNamespace(), validation.IsDNS1123Label)
	if r := k.GetHttpRoute(); r != nil && r.GetName() == "" {
		c.add(p+".httpRoute.name", "is required")
	}
	// Derived names must be valid too: "<deployment>-canary" and the
	// Services the HTTPRoute points at.
	kube := KubeOf("app", k) // the app's own name is checked with the manifest's metadata
	for _, n := range []string{kube.Deployment + "-canary", kube.Deployment + "-green"} {
		if problems := validation.IsDNS1123Subdomain(n); len(problems) > 0 {
			c.add(p+".deployment", "derived name %q is not valid: %s", n, strings.Join(problems, "; "))
			break
		}
	}
	if kube.HTTPRoute != "" {
		for _, n := range []string{kube.Deployment + "-stable", kube.Deployment + "-canary"} {
			if problems := validation.IsDNS1035Label(n); len(problems) > 0 {
				c.add(p+".deployment", "derived Service name %q is not valid: %s", n, strings.Join(problems, "; "))
				break
			}
		}
	}
	if v := k.GetColorLabel(); v != "" {
		if problems := validation.IsQualifiedName(v); len(problems) > 0 {
			c.add(p+".colorLabel", "%q is not a valid label key: %s", v, strings.Join(problems, "; "))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(k.GetSelector())) {
		if problems := validation.IsQualifiedName(key); len(problems) > 0 {
			c.add(p+".selector", "%q is not a valid label key: %s", key, strings.Join(problems, "; "))
		}
		if problems := validation.IsValidLabelValue(k.GetSelector()[key]); len(problems) > 0 {
			c.add(p+".selector."+key, "%q is not a valid label value: %s", k.GetSelector()[key], strings.Join(problems, "; "))
		}
		if key == kube.ColorLabel {
			c.add(p+".selector."+key, "must not be the colour label: blue-green sets it per colour")
		}
	}
	for field, v := range map[string]int32{"containerPort": k.GetContainerPort(), "servicePort": k.GetServicePort()} {
		if v < 0 || v > 65535 {
			c.add(p+"."+field, "must be between 1 and 65535, got %d", v)
		}
	}
}

func validateSmokeChecks(c *errs, path string, checks []*cutoverv1.SmokeCheck) {
	names := map[string]bool{}
	for i, s := range checks {
		p := fmt.Sprintf("%s[%d]", path, i)
		if n := s.GetName(); n != "" {
			if names[n] {
				c.add(p+".name", "duplicate name %q", n)
			}
			names[n] = true
		}
		if s.GetUrl() == "" {
			c.add(p+".url", "is required")
		} else if u, err := url.Parse(strings.ReplaceAll(s.GetUrl(), PreviewPlaceholder, "preview.invalid:80")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.add(p+".url", "must be an http or https URL (%s stands for the preview), got %q", PreviewPlaceholder, s.GetUrl())
		}
		if st := s.GetExpectStatus(); st != 0 && (st < 100 || st > 599 || http.StatusText(int(st)) == "") {
			c.add(p+".expectStatus", "must be an HTTP status code, got %d", st)
		}
		if d := s.GetTimeout(); d != "" {
			checkDuration(c, p+".timeout", d)
		}
		if n := s.GetAttempts(); n < 0 || n > maxSmokeAttempts {
			c.add(p+".attempts", "must be between 1 and %d, got %d", maxSmokeAttempts, n)
		}
	}
}

// SmokeTimeout is one attempt's time limit.
func SmokeTimeout(s *cutoverv1.SmokeCheck) time.Duration {
	if d, err := time.ParseDuration(s.GetTimeout()); err == nil && d > 0 {
		return d
	}
	return DefaultSmokeTimeout
}

// SmokeAttempts is how often a check is tried before it fails.
func SmokeAttempts(s *cutoverv1.SmokeCheck) int {
	if n := s.GetAttempts(); n > 0 {
		return int(n)
	}
	return DefaultSmokeAttempts
}
