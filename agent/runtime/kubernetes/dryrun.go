package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Names of the kubernetes runtime's dry-run checks.
const (
	CheckSpecAccepted = "spec accepted"
	CheckPinned       = "pinned"
	CheckCapacity     = "capacity"
)

var _ runtime.DryRunner = (*Placer)(nil)

// DryRun implements runtime.DryRunner: the objects a pass would write for
// the desired state go to the API server with dryRun=All, so validation
// and admission run without persisting anything ("spec accepted"); every
// image is pinned to a digest, or will run by the digest the spec pins
// ("pinned"); and the extra pods fit the namespace's ResourceQuotas
// ("capacity"). held is not used: pods are the cluster's to count.
func (p *Placer) DryRun(ctx context.Context, cluster string, dr *cutoverv1.DryRun, _ runtime.Held) []*cutoverv1.CheckResult {
	d := dr.GetDesired()
	k := spec.KubeOf(d.GetApp(), d.GetKubernetes())
	var out []*cutoverv1.CheckResult
	check := func(name string, f func() (string, error)) {
		start := time.Now()
		msg, err := f()
		out = append(out, runtime.Check(cluster, name, start, msg, err))
	}
	check(CheckSpecAccepted, func() (string, error) { return p.specAccepted(ctx, d, k) })
	check(CheckPinned, func() (string, error) { return pinned(d, dr.GetRevision(), dr.GetRequirePinned()) })
	check(CheckCapacity, func() (string, error) { return p.capacity(ctx, d, k, dr.GetExtraInstances()) })
	return out
}

// specAccepted runs one pass of the app's strategy with every write a
// dry run.
func (p *Placer) specAccepted(ctx context.Context, d *cutoverv1.DesiredApp, k spec.Kube) (string, error) {
	if len(d.GetRevisions()) == 0 {
		return "", errors.New("the desired state names no revision")
	}
	sp, err := p.space(ctx, k.Namespace)
	if err != nil {
		return "", err
	}
	a := &app{p: p, sp: sp, k: k, d: d, dryRun: true}
	if _, err := a.place(ctx); err != nil {
		return "", err
	}
	if len(a.written) == 0 {
		return "the cluster's objects already match the desired state", nil
	}
	return fmt.Sprintf("the API server accepts %s (server-side apply, dryRun=All)", strings.Join(a.written, ", ")), nil
}

// pinned checks that the revision under test (without one: every
// revision) runs its image by digest.
func pinned(d *cutoverv1.DesiredApp, under *cutoverv1.Revision, required bool) (string, error) {
	var oks, fails []string
	seen := map[string]bool{}
	revs := make([]*cutoverv1.Revision, 0, len(d.GetRevisions()))
	for _, dr := range d.GetRevisions() {
		revs = append(revs, dr.GetRevision())
	}
	if under != nil {
		revs = []*cutoverv1.Revision{under} // the stable revision already runs
	}
	for _, rev := range revs {
		if seen[runtime.RevisionKey(rev)] {
			continue
		}
		seen[runtime.RevisionKey(rev)] = true
		img, sum := rev.GetImage(), strings.ToLower(imageSha256(rev))
		fail := func(format string, args ...any) {
			fails = append(fails, fmt.Sprintf("revision %s: ", rev.GetName())+fmt.Sprintf(format, args...))
		}
		ok := func(format string, args ...any) {
			oks = append(oks, fmt.Sprintf("revision %s: ", rev.GetName())+fmt.Sprintf(format, args...))
		}
		switch {
		case img == "":
			fail("no image: the kubernetes runtime needs spec revision.image")
		case pinConflict(rev) != nil:
			fail("%v", pinConflict(rev))
		case imageDigest(img) != "":
			ok("image %s is pinned to its digest", img)
		case sum != "":
			ok("runs %s (spec revision.sha256)", Image(rev))
		case required:
			fail("image %s is not pinned (requirePinned): give it as image@sha256:<digest>, or set spec revision.sha256", img)
		default:
			ok("image %s is not pinned to a digest", img)
		}
	}
	if len(fails) > 0 {
		return "", errors.New(strings.Join(fails, "; "))
	}
	if len(oks) == 0 {
		return "", errors.New("the desired state names no revision")
	}
	return strings.Join(oks, "; "), nil
}

// Resources a ResourceQuota may bound that the capacity check counts, with
// the names that mean the same (a quota's "cpu" is "requests.cpu").
var quotaResources = []struct {
	name    corev1.ResourceName
	aliases []corev1.ResourceName
}{
	{corev1.ResourcePods, nil},
	{corev1.ResourceRequestsCPU, []corev1.ResourceName{corev1.ResourceCPU}},
	{corev1.ResourceRequestsMemory, []corev1.ResourceName{corev1.ResourceMemory}},
}

// capacity checks that extra more pods fit every ResourceQuota of the
// app's namespace: used plus extra times a pod's requests stays within
// each hard limit on pods, requests.cpu and requests.memory.
func (p *Placer) capacity(ctx context.Context, d *cutoverv1.DesiredApp, k spec.Kube, extra int32) (string, error) {
	quotas, err := p.cs.CoreV1().ResourceQuotas(k.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list resourcequotas in %s: %w", k.Namespace, err)
	}
	if len(quotas.Items) == 0 {
		return fmt.Sprintf("namespace %s has no ResourceQuota", k.Namespace), nil
	}
	perPod, from, err := p.podRequests(ctx, d, k)
	if err != nil {
		return "", err
	}
	var oks, fails []string
	for _, q := range quotas.Items {
		if len(q.Spec.Scopes) > 0 || q.Spec.ScopeSelector != nil {
			oks = append(oks, fmt.Sprintf("resourcequota %s is scoped: not counted", q.Name))
			continue
		}
		for _, r := range quotaResources {
			for _, name := range append([]corev1.ResourceName{r.name}, r.aliases...) {
				hard, ok := q.Spec.Hard[name]
				if !ok {
					continue
				}
				used := q.Status.Used[name]
				need := resource.Quantity{}
				if r.name == corev1.ResourcePods {
					need = *resource.NewQuantity(int64(extra), resource.DecimalSI)
				} else {
					per := perPod[r.name]
					for range extra {
						need.Add(per)
					}
				}
				total := used.DeepCopy()
				total.Add(need)
				line := fmt.Sprintf("resourcequota %s: %s used %s + %s needed", q.Name, name, used.String(), need.String())
				if total.Cmp(hard) > 0 {
					fails = append(fails, fmt.Sprintf("%s = %s exceeds hard %s", line, total.String(), hard.String()))
				} else {
					oks = append(oks, fmt.Sprintf("%s fit hard %s", line, hard.String()))
				}
			}
		}
	}
	note := fmt.Sprintf(" (%d extra pods; requests per pod %s)", extra, from)
	if len(fails) > 0 {
		return "", errors.New(strings.Join(fails, "; ") + note)
	}
	return strings.Join(oks, "; ") + note, nil
}

// podRequests is what one of the app's pods requests: the template of its
// first Deployment that exists (Cutover's own templates request nothing),
// and a description of where that came from.
func (p *Placer) podRequests(ctx context.Context, d *cutoverv1.DesiredApp, k spec.Kube) (corev1.ResourceList, string, error) {
	sp, err := p.space(ctx, k.Namespace)
	if err != nil {
		return nil, "", err
	}
	a := &app{p: p, sp: sp, k: k, d: d, dryRun: true}
	for _, name := range []string{k.Deployment, k.Deployment + "-" + colours[0], k.Deployment + "-" + colours[1], k.Deployment + "-" + trackCanary} {
		dep, err := a.deployment(name)
		if err != nil {
			return nil, "", err
		}
		if dep != nil {
			req := templateRequests(dep)
			return req, fmt.Sprintf("cpu %s, memory %s from deployment %s", orZero(req, corev1.ResourceCPU), orZero(req, corev1.ResourceMemory), name), nil
		}
	}
	return corev1.ResourceList{}, "none (no deployment of the app yet; Cutover's own templates request nothing)", nil
}

// templateRequests sums the requests of a pod template's containers,
// under the quota's names (requests.cpu, requests.memory).
func templateRequests(dep *appsv1.Deployment) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, c := range dep.Spec.Template.Spec.Containers {
		// A container without a request requests its limit.
		req := c.Resources.Limits.DeepCopy()
		if req == nil {
			req = corev1.ResourceList{}
		}
		for name, q := range c.Resources.Requests {
			req[name] = q
		}
		for name, q := range req {
			key := corev1.ResourceName("requests." + string(name))
			sum := out[key]
			sum.Add(q)
			out[key] = sum
		}
	}
	return out
}

func orZero(l corev1.ResourceList, name corev1.ResourceName) string {
	q, ok := l[corev1.ResourceName("requests."+string(name))]
	if !ok {
		return "0"
	}
	return q.String()
}
