package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FieldManager is the server-side-apply field manager of Apply.
const FieldManager = "cutover-test"

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// mappingTimeout bounds how long Apply waits for a kind to appear in
// discovery: a CRD applied a moment ago (by this call or an earlier one) is
// served only once established.
const mappingTimeout = 10 * time.Second

// Apply applies every object of a multi-document YAML stream (a List is
// expanded) in order with server-side apply, as field manager FieldManager,
// forcing ownership of conflicting fields. Namespaced objects without a
// namespace get namespace ("default" when empty). CustomResourceDefinitions
// it applies are Established and served when Apply returns, and objects of
// their kinds may follow them in the same stream.
func (c *Cluster) Apply(ctx context.Context, manifests []byte, namespace string) error {
	objs, err := decodeObjects(manifests)
	if err != nil {
		return err
	}
	var crds []string
	for _, obj := range objs {
		if err := c.applyOne(ctx, obj, namespace, crds); err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		if isCRD(obj) {
			crds = append(crds, obj.GetName())
		}
	}
	if len(crds) > 0 {
		if err := c.waitCRDsServed(ctx, crds); err != nil {
			return err
		}
		c.mapper.Reset()
	}
	return nil
}

// decodeObjects decodes a multi-document YAML stream, expanding Lists.
func decodeObjects(manifests []byte) ([]*unstructured.Unstructured, error) {
	docs, err := decodeDocs(manifests)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for i, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(doc); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if !u.IsList() {
			objs = append(objs, u)
			continue
		}
		err := u.EachListItem(func(o runtime.Object) error {
			objs = append(objs, o.(*unstructured.Unstructured))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return objs, nil
}

func isCRD(obj *unstructured.Unstructured) bool {
	return obj.GroupVersionKind().GroupKind() == schema.GroupKind{Group: crdResource.Group, Kind: "CustomResourceDefinition"}
}

// ApplyFile applies the manifests in a file; see Apply.
func (c *Cluster) ApplyFile(ctx context.Context, path, namespace string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if err := c.Apply(ctx, b, namespace); err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	return nil
}

func (c *Cluster) applyOne(ctx context.Context, obj *unstructured.Unstructured, namespace string, pendingCRDs []string) error {
	m, err := c.mapping(ctx, obj.GroupVersionKind(), pendingCRDs)
	if err != nil {
		return err
	}
	ri := c.dynamic.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			if namespace == "" {
				namespace = "default"
			}
			obj.SetNamespace(namespace)
		}
		_, err = ri.Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	} else {
		obj.SetNamespace("")
		_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	}
	return err
}

// mapping finds the resource of a kind. A kind missing from the cached
// discovery may be one whose CRD was applied moments ago, so it waits for
// the CRDs this Apply applied, then rediscovers until mappingTimeout.
func (c *Cluster) mapping(ctx context.Context, gvk schema.GroupVersionKind, pendingCRDs []string) (*meta.RESTMapping, error) {
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if !meta.IsNoMatchError(err) {
		return m, err
	}
	if len(pendingCRDs) > 0 {
		if err := c.waitCRDsServed(ctx, pendingCRDs); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, mappingTimeout)
	defer cancel()
	err = poll(ctx, "kind "+gvk.String()+" served", 100*time.Millisecond, c.procs(), func(context.Context) (bool, error) {
		c.mapper.Reset()
		var err error
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		return err == nil, err
	})
	return m, err
}

// waitCRDsServed waits until each CRD is Established and a list of its
// resource succeeds (Established is written before every API server handler
// has caught up), and then until the API server's grace period after
// establishment is over: for 2s after a CRD's Established transition the API
// server delays every create of its objects by 2s (customresource_handler.go,
// for HA servers that have not seen the CRD yet), which would stall the first
// test to create one.
func (c *Cluster) waitCRDsServed(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, crdWaitTimeout)
	defer cancel()
	var established time.Time
	for _, name := range names {
		err := poll(ctx, "CRD "+name+" served", readyPoll, c.procs(), func(ctx context.Context) (bool, error) {
			crd, err := c.dynamic.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			at, ok := crdEstablished(crd)
			if !ok {
				return false, fmt.Errorf("%w: not Established", errNotYet)
			}
			gvr, err := crdServedResource(crd)
			if err != nil {
				return false, err
			}
			if _, err := c.dynamic.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
				return false, err
			}
			if at.After(established) {
				established = at
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	// The server compares with its own clock, the same as ours.
	select {
	case <-time.After(time.Until(established.Add(crdCreateGrace))):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the CRDs' create grace period: %w", ctx.Err())
	}
}

// crdCreateGrace is the API server's grace period after a CRD is established.
const crdCreateGrace = 2 * time.Second

// crdEstablished reports whether a CRD is Established, and since when.
func crdEstablished(crd *unstructured.Unstructured) (time.Time, bool) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, cond := range conds {
		m, _ := cond.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			s, _ := m["lastTransitionTime"].(string)
			at, err := time.Parse(time.RFC3339, s)
			if err != nil {
				// Assume just now: waiting too long is harmless.
				at = time.Now()
			}
			return at, true
		}
	}
	return time.Time{}, false
}

// crdServedResource returns the resource of a CRD's storage version.
func crdServedResource(crd *unstructured.Unstructured) (schema.GroupVersionResource, error) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if m["storage"] == true && m["served"] == true {
			name, _ := m["name"].(string)
			return schema.GroupVersionResource{Group: group, Version: name, Resource: plural}, nil
		}
	}
	return schema.GroupVersionResource{}, fmt.Errorf("CRD %s serves no storage version", crd.GetName())
}

// readGatewayAPI decodes the Gateway API manifests. Start does it while the
// API server starts: decoding a megabyte of YAML takes half a second in a
// test binary built with -race.
func readGatewayAPI(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("gateway API: no YAML in %s=%s (%v)", EnvGatewayAPI, dir, err)
	}
	sort.Strings(files)
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("gateway API: %w", err)
		}
		o, err := decodeObjects(b)
		if err != nil {
			return nil, fmt.Errorf("gateway API %s: %w", f, err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// installGatewayAPI applies the Gateway API objects, all at once (the API
// server spends most of the time compiling each CRD's schema and validation
// rules, and none depends on another), and waits until the CRDs are served.
func (c *Cluster) installGatewayAPI(ctx context.Context, objs []*unstructured.Unstructured) error {
	begin := time.Now()
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	for i, obj := range objs {
		wg.Go(func() {
			if err := c.applyOne(ctx, obj, "", nil); err != nil {
				errs[i] = fmt.Errorf("gateway API: apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var crds []string
	for _, obj := range objs {
		if isCRD(obj) {
			crds = append(crds, obj.GetName())
		}
	}
	if err := c.waitCRDsServed(ctx, crds); err != nil {
		return fmt.Errorf("gateway API: %w", err)
	}
	c.mapper.Reset()
	c.log.Info("gateway API installed", "objects", len(objs), "took", time.Since(begin).Round(time.Millisecond))
	return nil
}
