package kubernetes

import (
	"fmt"
	"net"
	"sort"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Addresses resolves ready pods' addresses from a Service's
// EndpointSlices, grouped by the revision each pod runs (revisionOf gets
// the pod's name and returns "" for a pod it does not know). The port is
// the slice's port named name, or its only port. Endpoints that are not
// ready, terminating, or not backed by a pod are left out. The result is
// sorted and free of duplicates.
func Addresses(slices []*discoveryv1.EndpointSlice, portName string, revisionOf func(pod string) string) map[string][]string {
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, s := range slices {
		port := slicePort(s, portName)
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			rev := revisionOf(ep.TargetRef.Name)
			if rev == "" || len(ep.Addresses) == 0 {
				continue
			}
			addr := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
			if seen[addr] {
				continue
			}
			seen[addr] = true
			out[rev] = append(out[rev], addr)
		}
	}
	for _, addrs := range out {
		sort.Strings(addrs)
	}
	return out
}

func slicePort(s *discoveryv1.EndpointSlice, name string) int32 {
	for _, p := range s.Ports {
		if p.Port != nil && (len(s.Ports) == 1 || (p.Name != nil && *p.Name == name)) {
			return *p.Port
		}
	}
	return 0
}

// targets is every ready pod of the app behind the named Services, by
// revision (the pod's version label), for the scrape source.
func (a *app) targets(services []string) (map[string][]string, error) {
	var all []*discoveryv1.EndpointSlice
	for _, svc := range services {
		sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc})
		slices, err := a.sp.slices.EndpointSlices(a.k.Namespace).List(sel)
		if err != nil {
			return nil, fmt.Errorf("endpointslices of %s/%s: %w", a.k.Namespace, svc, err)
		}
		all = append(all, slices...)
	}
	return Addresses(all, "http", func(name string) string {
		pod, err := a.sp.pods.Pods(a.k.Namespace).Get(name)
		if err != nil {
			return ""
		}
		return pod.Labels[LabelVersion]
	}), nil
}
