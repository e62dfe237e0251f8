package kubernetes

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// routeWeights puts the canary's weight (0-100; negative: leave as is) on
// the HTTPRoute's backendRefs to the "<d>-stable" and "<d>-canary"
// Services and returns the weights in force. Every rule that sends to
// either Service gets both, with these weights; other rules are left
// alone. Written with an update that retries on conflict, so concurrent
// edits of other fields of the route are kept.
func (a *app) routeWeights(ctx context.Context, canary int32) (stableW, canaryW int32, err error) {
	ns, name := a.k.RouteNamespace, a.k.HTTPRoute
	lister, err := a.p.routeLister(ctx, ns)
	if err != nil {
		return 0, 0, err
	}
	obj, err := lister.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, 0, fmt.Errorf("httproute %s/%s not found: create it (with its parentRefs) or remove spec.kubernetes.httpRoute", ns, name)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("httproute %s/%s: %w", ns, name, err)
	}
	route, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return 0, 0, fmt.Errorf("httproute %s/%s: unexpected type %T", ns, name, obj)
	}
	stableSvc, canarySvc := a.k.Deployment+"-"+trackStable, a.k.Deployment+"-"+trackCanary
	stableW, canaryW, found := RouteWeights(route, a.k.Namespace, stableSvc, canarySvc)
	if !found {
		return 0, 0, fmt.Errorf("httproute %s/%s has no rule with a backendRef to Service %s or %s", ns, name, stableSvc, canarySvc)
	}
	if canary < 0 {
		return stableW, canaryW, nil
	}
	// Written only when it would change: weights made explicit, and a
	// backendRef for each Service, even one at weight 0.
	want := route.DeepCopy()
	if err := SetRouteWeights(want, a.k.Namespace, stableSvc, canarySvc, a.k.ServicePort, 100-canary, canary); err != nil {
		return 0, 0, fmt.Errorf("httproute %s/%s: %w", ns, name, err)
	}
	if equality.Semantic.DeepEqual(want.Object, route.Object) {
		return stableW, canaryW, nil
	}
	client := a.p.dyn.Resource(HTTPRoutes).Namespace(ns)
	err = a.write("httproute/"+ns+"/"+name, fmt.Sprintf("weights %d/%d", 100-canary, canary), func() error {
		return a.updateRoute(ctx, client, route, stableSvc, canarySvc, canary)
	})
	if err != nil {
		return stableW, canaryW, fmt.Errorf("set weights on httproute %s/%s: %w", ns, name, err)
	}
	a.info("route weights set", "app", a.d.GetApp(), "httproute", name, "stable", 100-canary, "canary", canary)
	return 100 - canary, canary, nil
}

// updateRoute writes the weights, re-reading the route after a conflict.
func (a *app) updateRoute(ctx context.Context, client dynamic.ResourceInterface, route *unstructured.Unstructured, stableSvc, canarySvc string, canary int32) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := route.DeepCopy()
		if err := SetRouteWeights(cur, a.k.Namespace, stableSvc, canarySvc, a.k.ServicePort, 100-canary, canary); err != nil {
			return err
		}
		_, err := client.Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager, DryRun: a.dryRunOpt()})
		if apierrors.IsConflict(err) { // read it afresh and try again
			fresh, getErr := client.Get(ctx, route.GetName(), metav1.GetOptions{})
			if getErr != nil {
				return fmt.Errorf("%w (re-read: %v)", err, getErr)
			}
			route = fresh
		}
		return err
	})
}

// isRef reports whether a backendRef points at Service svc of namespace ns
// (the route's own namespace when it names none).
func isRef(ref map[string]any, routeNS, ns, svc string) bool {
	if n, _ := ref["name"].(string); n != svc {
		return false
	}
	if k, _ := ref["kind"].(string); k != "" && k != "Service" {
		return false
	}
	if g, _ := ref["group"].(string); g != "" {
		return false
	}
	refNS, _ := ref["namespace"].(string)
	if refNS == "" {
		refNS = routeNS
	}
	return refNS == ns
}

// RouteWeights reads the weights of the first rule of an HTTPRoute that
// sends to either Service, in percent of that rule's total; found is false
// when no rule does. A backendRef without weight has weight 1.
func RouteWeights(route *unstructured.Unstructured, ns, stableSvc, canarySvc string) (stable, canary int32, found bool) {
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		refs, _ := rule["backendRefs"].([]any)
		var s, c, total int64
		ours := false
		for _, x := range refs {
			ref, _ := x.(map[string]any)
			w := int64(1)
			if v, ok := ref["weight"]; ok {
				w, _ = v.(int64)
			}
			total += w
			switch {
			case isRef(ref, route.GetNamespace(), ns, stableSvc):
				s, ours = s+w, true
			case isRef(ref, route.GetNamespace(), ns, canarySvc):
				c, ours = c+w, true
			}
		}
		if !ours {
			continue
		}
		if total == 0 {
			return 0, 0, true
		}
		return percent(s, total), percent(c, total), true
	}
	return 0, 0, false
}

// SetRouteWeights sets, in every rule of an HTTPRoute that sends to either
// Service, a backendRef to each with the given weights (adding one that is
// missing, on port); refs to other backends in those rules get weight 0.
func SetRouteWeights(route *unstructured.Unstructured, ns, stableSvc, canarySvc string, port int32, stableW, canaryW int32) error {
	rules, _, err := unstructured.NestedSlice(route.Object, "spec", "rules")
	if err != nil {
		return fmt.Errorf("httproute spec.rules: %w", err)
	}
	matched := false
	for i, r := range rules {
		rule, _ := r.(map[string]any)
		refs, _ := rule["backendRefs"].([]any)
		seen := map[string]bool{}
		ours := false
		for _, x := range refs {
			ref, _ := x.(map[string]any)
			if isRef(ref, route.GetNamespace(), ns, stableSvc) || isRef(ref, route.GetNamespace(), ns, canarySvc) {
				ours = true
			}
		}
		if !ours {
			continue
		}
		matched = true
		for _, x := range refs {
			ref, _ := x.(map[string]any)
			switch {
			case isRef(ref, route.GetNamespace(), ns, stableSvc):
				ref["weight"], seen[stableSvc] = int64(stableW), true
			case isRef(ref, route.GetNamespace(), ns, canarySvc):
				ref["weight"], seen[canarySvc] = int64(canaryW), true
			default:
				ref["weight"] = int64(0)
			}
		}
		for svc, w := range map[string]int32{stableSvc: stableW, canarySvc: canaryW} {
			if !seen[svc] {
				ref := map[string]any{"name": svc, "port": int64(port), "weight": int64(w)}
				if ns != route.GetNamespace() {
					ref["namespace"] = ns
				}
				refs = append(refs, ref)
			}
		}
		rule["backendRefs"] = refs
		rules[i] = rule
	}
	if !matched {
		return fmt.Errorf("no rule has a backendRef to Service %s or %s", stableSvc, canarySvc)
	}
	return unstructured.SetNestedSlice(route.Object, rules, "spec", "rules")
}

// percent is part of total in percent, rounded to the nearest.
func percent[T int32 | int64](part, total T) int32 {
	return int32((200*part + total) / (2 * total))
}
