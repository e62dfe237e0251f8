package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	metaac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// app is one pass over one app's objects.
type app struct {
	p        *Placer
	sp       *space
	k        spec.Kube
	d        *cutoverv1.DesiredApp
	toStable bool
	// dryRun sends every write with dryRun=All, so the API server validates
	// and admits it without persisting it, and keeps the placer's records
	// (failed writes, failed pods) as they are.
	dryRun  bool
	written []string // dry run: the objects the pass would write
}

// applyOpts are the options of every server-side apply.
func (a *app) applyOpts() metav1.ApplyOptions {
	return metav1.ApplyOptions{FieldManager: FieldManager, Force: true, DryRun: a.dryRunOpt()}
}

func (a *app) dryRunOpt() []string {
	if a.dryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// info logs a write; a dry run's only at debug level.
func (a *app) info(msg string, args ...any) {
	if a.dryRun {
		a.p.log.Debug(msg+" (dry run)", args...)
		return
	}
	a.p.log.Info(msg, args...)
}

// failures records pods of a revision that failed and returns how many
// have; a dry run records nothing.
func (a *app) failures(rev string, pods []*corev1.Pod) int32 {
	if a.dryRun {
		return int32(len(pods))
	}
	return a.p.failures(a.d.GetApp(), rev, pods)
}

// keepFailures forgets the failures of revisions no longer desired,
// unless this is a dry run.
func (a *app) keepFailures(revs map[string]bool) {
	if !a.dryRun {
		a.p.keepFailures(a.d.GetApp(), revs)
	}
}

// writeFailure is an object's last failed write: the same write is not
// sent again before writeRetry has passed, so an object the API server
// refuses (a webhook, an immutable field) does not use up the agent's
// request budget, which every app shares; a different write (the desired
// state changed) goes at once.
type writeFailure struct {
	what string
	err  error
	at   time.Time
}

// writeRetry spaces out repeats of a write that failed.
const writeRetry = time.Second

// write runs do, the write described by what, to the object key, unless
// that same write failed less than writeRetry ago.
func (a *app) write(key, what string, do func() error) error {
	if a.dryRun {
		if err := do(); err != nil {
			return err
		}
		a.written = append(a.written, key)
		return nil
	}
	p := a.p
	p.mu.Lock()
	f, failed := p.writeFail[key]
	p.mu.Unlock()
	if failed && f.what == what && time.Since(f.at) < writeRetry {
		return f.err
	}
	err := do()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.writeFail[key] = writeFailure{what: what, err: err, at: time.Now()}
	} else {
		delete(p.writeFail, key)
	}
	return err
}

// ours reports whether Cutover created the object (and so owns all of it).
func ours(m metav1.Object) bool { return m.GetLabels()[LabelManagedBy] == FieldManager }

// deployment returns a Deployment from the cache, nil when there is none.
func (a *app) deployment(name string) (*appsv1.Deployment, error) {
	d, err := a.sp.deployments.Deployments(a.k.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s: %w", a.k.Namespace, name, err)
	}
	return d, nil
}

// service returns a Service from the cache, nil when there is none.
func (a *app) service(name string) (*corev1.Service, error) {
	s, err := a.sp.services.Services(a.k.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", a.k.Namespace, name, err)
	}
	return s, nil
}

// runs reports whether a Deployment runs a revision: by the revision key
// Cutover annotated it with, or, for one Cutover has not touched yet, by
// its pod template's version label and the container's image.
func (a *app) runs(d *appsv1.Deployment, rev *cutoverv1.Revision) bool {
	if d == nil || rev == nil {
		return false
	}
	if key, ok := d.Annotations[AnnotationRevision]; ok {
		return key == runtime.RevisionKey(rev)
	}
	if d.Spec.Template.Labels[LabelVersion] != rev.GetName() {
		return false
	}
	c := a.container(&d.Spec.Template.Spec)
	if c == nil || (rev.GetImage() != "" && c.Image != Image(rev)) {
		return false
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, v := range rev.GetEnv() {
		if got, ok := env[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (a *app) container(ps *corev1.PodSpec) *corev1.Container {
	for i := range ps.Containers {
		if ps.Containers[i].Name == a.k.Container {
			return &ps.Containers[i]
		}
	}
	return nil
}

// applyDeploymentLabels makes a Deployment run rev with replicas pods. For a
// Deployment Cutover created (or creates now) it applies the whole object;
// for an adopted one only what Cutover drives: the revision's image, env
// and version label, the replica count and the revision annotation, so a
// Deployment that already runs rev is not rolled.
// Extra pod labels are applied in both cases.
func (a *app) applyDeploymentLabels(ctx context.Context, cur *appsv1.Deployment, name string, selector map[string]string, rev *cutoverv1.Revision, replicas int32, extra map[string]string) error {
	if rev.GetImage() == "" {
		return fmt.Errorf("revision %s has no image: the kubernetes runtime needs spec.revision.image", rev.GetName())
	}
	if err := pinConflict(rev); err != nil {
		return fmt.Errorf("revision %s: %w", rev.GetName(), err)
	}
	full := cur == nil || ours(cur)
	if cur != nil && a.container(&cur.Spec.Template.Spec) == nil {
		return fmt.Errorf("deployment %s/%s has no container named %q: set spec.kubernetes.container to the app's container", a.k.Namespace, name, a.k.Container)
	}
	// A selector is immutable: an existing Deployment keeps its own.
	if cur != nil && cur.Spec.Selector != nil && len(cur.Spec.Selector.MatchExpressions) == 0 {
		selector = cur.Spec.Selector.MatchLabels
	}
	podLabels := map[string]string{LabelVersion: rev.GetName()}
	maps.Copy(podLabels, extra)
	c := coreac.Container().WithName(a.k.Container).WithImage(Image(rev))
	for _, k := range slices.Sorted(maps.Keys(rev.GetEnv())) {
		c.WithEnv(coreac.EnvVar().WithName(k).WithValue(rev.GetEnv()[k]))
	}
	dep := appsac.Deployment(name, a.k.Namespace).
		WithAnnotations(map[string]string{AnnotationRevision: runtime.RevisionKey(rev)})
	ds := appsac.DeploymentSpec().WithReplicas(replicas)
	if full {
		maps.Copy(podLabels, selector)
		dep.WithLabels(a.objectLabels())
		ds.WithSelector(metaac.LabelSelector().WithMatchLabels(selector))
		if len(rev.GetArgs()) > 0 {
			c.WithArgs(rev.GetArgs()...)
		}
		c.WithPorts(coreac.ContainerPort().WithName("http").WithContainerPort(a.k.ContainerPort).WithProtocol(corev1.ProtocolTCP))
		c.WithReadinessProbe(coreac.Probe().WithPeriodSeconds(1).WithHTTPGet(
			coreac.HTTPGetAction().WithPath(or(rev.GetReadinessPath(), spec.DefaultReadinessPath)).WithPort(intstr.FromInt32(a.k.ContainerPort))))
	}
	ds.WithTemplate(coreac.PodTemplateSpec().WithLabels(podLabels).WithSpec(coreac.PodSpec().WithContainers(c)))
	dep.WithSpec(ds)
	if cur != nil && a.unchanged(cur, rev, replicas, podLabels) {
		return nil
	}
	err := a.write("deployment/"+a.k.Namespace+"/"+name, fmt.Sprintf("%s x%d %v", runtime.RevisionKey(rev), replicas, podLabels), func() error {
		_, err := a.p.cs.AppsV1().Deployments(a.k.Namespace).Apply(ctx, dep, a.applyOpts())
		return err
	})
	if err != nil {
		return fmt.Errorf("apply deployment %s/%s: %w", a.k.Namespace, name, err)
	}
	a.info("deployment applied", "app", a.d.GetApp(), "deployment", name, "revision", rev.GetName(), "replicas", replicas)
	return nil
}

// unchanged reports whether a Deployment already has what applying would
// set, so a pass over settled objects writes nothing.
func (a *app) unchanged(cur *appsv1.Deployment, rev *cutoverv1.Revision, replicas int32, podLabels map[string]string) bool {
	if cur.Annotations[AnnotationRevision] != runtime.RevisionKey(rev) || cur.Spec.Replicas == nil || *cur.Spec.Replicas != replicas {
		return false
	}
	for k, v := range podLabels {
		if cur.Spec.Template.Labels[k] != v {
			return false
		}
	}
	c := a.container(&cur.Spec.Template.Spec)
	if c == nil || c.Image != Image(rev) {
		return false
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, v := range rev.GetEnv() {
		if env[k] != v {
			return false
		}
	}
	return true
}

// scale sets a Deployment's replica count alone, through its scale
// subresource, leaving its template as it is.
func (a *app) scale(ctx context.Context, d *appsv1.Deployment, replicas int32) error {
	if d == nil || (d.Spec.Replicas != nil && *d.Spec.Replicas == replicas) {
		return nil
	}
	sc := autoscalingac.Scale().WithSpec(autoscalingac.ScaleSpec().WithReplicas(replicas))
	err := a.write("deployment/"+a.k.Namespace+"/"+d.Name, fmt.Sprintf("scale %d", replicas), func() error {
		_, err := a.p.cs.AppsV1().Deployments(a.k.Namespace).ApplyScale(ctx, d.Name, sc, a.applyOpts())
		return err
	})
	if err != nil {
		return fmt.Errorf("scale deployment %s/%s to %d: %w", a.k.Namespace, d.Name, replicas, err)
	}
	a.info("deployment scaled", "app", a.d.GetApp(), "deployment", d.Name, "replicas", replicas)
	return nil
}

// applyService makes a Service select selector. One Cutover creates (or
// created) gets its ports too; an adopted one only its selector.
func (a *app) applyService(ctx context.Context, cur *corev1.Service, name string, selector map[string]string) error {
	if cur != nil && maps.Equal(cur.Spec.Selector, selector) {
		return nil
	}
	svc := coreac.Service(name, a.k.Namespace)
	sp := coreac.ServiceSpec().WithSelector(selector)
	if cur == nil || ours(cur) {
		svc.WithLabels(a.objectLabels())
		sp.WithPorts(coreac.ServicePort().WithName("http").WithProtocol(corev1.ProtocolTCP).
			WithPort(a.k.ServicePort).WithTargetPort(intstr.FromInt32(a.k.ContainerPort)))
	}
	svc.WithSpec(sp)
	err := a.write("service/"+a.k.Namespace+"/"+name, labels.Set(selector).String(), func() error {
		_, err := a.p.cs.CoreV1().Services(a.k.Namespace).Apply(ctx, svc, a.applyOpts())
		return err
	})
	if err != nil {
		return fmt.Errorf("apply service %s/%s: %w", a.k.Namespace, name, err)
	}
	a.info("service applied", "app", a.d.GetApp(), "service", name, "selector", labels.Set(selector).String())
	return nil
}

func (a *app) objectLabels() map[string]string {
	return map[string]string{LabelManagedBy: FieldManager, LabelApp: a.d.GetApp()}
}

// podState is how a revision's pods in one Deployment stand.
type podState struct {
	ready  int32
	failed []*corev1.Pod // not ready past the revision's ready timeout, or crash-looping
	others int32         // pods of the Deployment that run something else
}

// pods looks at a Deployment's pods: those of rev, ready or failed, and
// any others (still being replaced).
func (a *app) pods(d *appsv1.Deployment, rev *cutoverv1.Revision, now time.Time) (podState, error) {
	var st podState
	if d == nil {
		return st, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return st, fmt.Errorf("deployment %s/%s selector: %w", d.Namespace, d.Name, err)
	}
	pods, err := a.sp.pods.Pods(a.k.Namespace).List(sel)
	if err != nil {
		return st, fmt.Errorf("pods of %s/%s: %w", d.Namespace, d.Name, err)
	}
	timeout := spec.ReadyTimeout(rev)
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded {
			continue
		}
		c := a.podContainer(pod)
		if rev == nil || pod.Labels[LabelVersion] != rev.GetName() || c == nil || c.Image != Image(rev) {
			st.others++
			continue
		}
		switch {
		case podReady(pod):
			st.ready++
		case pod.Status.Phase == corev1.PodFailed || crashing(pod) || now.Sub(notReadySince(pod)) > timeout:
			st.failed = append(st.failed, pod)
		}
	}
	return st, nil
}

func (a *app) podContainer(pod *corev1.Pod) *corev1.Container { return a.container(&pod.Spec) }

// notReadySince is when a pod that is not Ready last stopped being Ready,
// or was created: a pod that was Ready and blips is not failed at once.
func notReadySince(pod *corev1.Pod) time.Time {
	since := pod.CreationTimestamp.Time
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.LastTransitionTime.After(since) {
			since = c.LastTransitionTime.Time
		}
	}
	return since
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// crashing reports a container that cannot start: its image cannot be
// pulled, or it keeps exiting.
func crashing(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError":
				return true
			}
		}
	}
	return false
}

// rolledOut reports whether a Deployment finished rolling out: its
// controller saw the latest spec, and every pod is of the latest template.
func rolledOut(d *appsv1.Deployment) bool {
	if d == nil || d.Spec.Replicas == nil {
		return false
	}
	want := *d.Spec.Replicas
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas >= want
}

// observed is one revision's line in the report.
func observed(rev *cutoverv1.Revision, wanted, ready int32, weight int32, failed int32) *cutoverv1.ObservedRevision {
	return &cutoverv1.ObservedRevision{Revision: rev.GetName(), InstancesWanted: wanted, InstancesReady: ready, Weight: weight, InstancesFailed: failed}
}

// serviceAddr is a Service's in-cluster host:port.
func (a *app) serviceAddr(name string) string {
	return fmt.Sprintf("%s.%s.svc:%d", name, a.k.Namespace, a.k.ServicePort)
}

// wanted is how many pods a desired revision asks for.
func wanted(dr *cutoverv1.DesiredRevision) int32 {
	if n := dr.GetInstances(); n > 0 {
		return n
	}
	return max(dr.GetRevision().GetInstances(), 1)
}

func with(base map[string]string, k, v string) map[string]string {
	out := maps.Clone(base)
	out[k] = v
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// joinErrs keeps the first error of a pass and names the rest.
func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%w (and: %s)", errs[0], strings.Join(msgs[1:], "; "))
}
