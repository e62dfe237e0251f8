package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/spec"
)

// Labels and annotations Cutover puts on objects.
const (
	// FieldManager owns the fields Cutover applies (server-side apply).
	FieldManager = "cutover"
	// LabelManagedBy marks objects Cutover created, with value "cutover";
	// adopted objects never get it, so cleanup never deletes them.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelApp names the app on objects Cutover created.
	LabelApp = "cutover.dev/app"
	// LabelTrack tells the stable Deployment's pods from the canary's.
	LabelTrack = "cutover.dev/track"
	// LabelVersion is the pod label naming the revision a pod runs (the
	// seed's convention: version=<revision>).
	LabelVersion = "version"
	// AnnotationRevision on a Deployment is the revision key it runs.
	AnnotationRevision = "cutover.dev/revision"
)

// HTTPRoutes is the Gateway API resource whose weights canaries set.
var HTTPRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// cacheSyncTimeout bounds the wait for a namespace's informers.
const cacheSyncTimeout = 10 * time.Second

// Config returns the client configuration: in-cluster when kubeconfig is
// empty, else from that file; qps and burst bound the agent's request rate.
func Config(kubeconfig string, qps float32, burst int) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (outside a cluster, pass --kubeconfig): %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = "cutover-agent"
	return cfg, nil
}

// Placer drives apps' Deployments, Services and HTTPRoutes. It watches
// each namespace an app lives in through shared informers and reads only
// from their caches; it writes with server-side apply.
type Placer struct {
	cs  kubernetes.Interface
	dyn dynamic.Interface
	log *slog.Logger
	ctx context.Context // the informers' lifetime

	setup sync.Mutex // one namespace's informers start at a time

	mu        sync.Mutex
	spaces    map[string]*space                     // by namespace
	routes    map[string]routeCache                 // HTTPRoute caches by namespace
	setupErr  map[string]setupFailure               // by informer set: why it last failed to start
	subs      map[string]chan struct{}              // by app
	watching  map[string][2]string                  // by app: its namespace and its route's
	failed    map[string]map[string]map[string]bool // app -> revision -> failed pod UIDs
	writeFail map[string]writeFailure               // by object: its last failed write
}

// setupFailure is an informer set that could not start, retried after
// setupRetry rather than on every pass.
type setupFailure struct {
	err error
	at  time.Time
}

// setupRetry is how long a namespace whose caches could not sync is left
// alone before the next try.
const setupRetry = 5 * time.Second

// space is one namespace's informers.
type space struct {
	deployments appslisters.DeploymentLister
	services    corelisters.ServiceLister
	pods        corelisters.PodLister
	slices      discoverylisters.EndpointSliceLister
	stop        context.CancelFunc // stops the informers (with the agent)
}

// routeCache is one namespace's HTTPRoute informer.
type routeCache struct {
	lister cache.GenericLister
	stop   context.CancelFunc
}

// New returns a placer whose informers live as long as ctx.
func New(ctx context.Context, cfg *rest.Config, log *slog.Logger) (*Placer, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return &Placer{
		cs: cs, dyn: dyn, log: log, ctx: ctx,
		spaces:    map[string]*space{},
		routes:    map[string]routeCache{},
		setupErr:  map[string]setupFailure{},
		subs:      map[string]chan struct{}{},
		watching:  map[string][2]string{},
		failed:    map[string]map[string]map[string]bool{},
		writeFail: map[string]writeFailure{},
	}, nil
}

var _ runtime.Placer = (*Placer)(nil)

// Changes implements runtime.Placer.
func (p *Placer) Changes(app string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sub(app)
}

// Forget implements runtime.Placer.
func (p *Placer) Forget(app string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.subs, app)
	delete(p.watching, app)
	delete(p.failed, app)
}

// sub must be called with p.mu held.
func (p *Placer) sub(app string) chan struct{} {
	c := p.subs[app]
	if c == nil {
		c = make(chan struct{}, 1)
		p.subs[app] = c
	}
	return c
}

// watch records where an app's objects live, so events there wake it.
func (p *Placer) watch(app, ns, routeNS string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watching[app] = [2]string{ns, routeNS}
}

// notify wakes the apps whose objects live in namespace ns: an event may
// concern any of them, and a pass over unchanged objects costs only cache
// reads.
func (p *Placer) notify(ns string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for app, c := range p.subs {
		if w := p.watching[app]; w[0] != ns && w[1] != ns {
			continue
		}
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func (p *Placer) handler(ns string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.notify(ns) },
		UpdateFunc: func(any, any) { p.notify(ns) },
		DeleteFunc: func(any) { p.notify(ns) },
	}
}

// cached returns an informer set already started, or the error of its last
// failed start while setupRetry has not passed; ok is false when it should
// be started (again).
func (p *Placer) cached(key string, get func() bool) (ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if get() {
		return true, nil
	}
	if f, failed := p.setupErr[key]; failed && time.Since(f.at) < setupRetry {
		return true, f.err
	}
	return false, nil
}

// space returns a namespace's informers, starting them on first use.
func (p *Placer) space(ctx context.Context, ns string) (*space, error) {
	var sp *space
	get := func() bool { sp = p.spaces[ns]; return sp != nil }
	if ok, err := p.cached("ns/"+ns, get); ok {
		return sp, err
	}
	p.setup.Lock()
	defer p.setup.Unlock()
	if ok, err := p.cached("ns/"+ns, get); ok { // started while we waited
		return sp, err
	}
	fctx, stop := context.WithCancel(p.ctx)
	f := informers.NewSharedInformerFactoryWithOptions(p.cs, 0, informers.WithNamespace(ns))
	deps, svcs, pods, slices := f.Apps().V1().Deployments(), f.Core().V1().Services(), f.Core().V1().Pods(), f.Discovery().V1().EndpointSlices()
	for _, inf := range []cache.SharedIndexInformer{deps.Informer(), svcs.Informer(), pods.Informer(), slices.Informer()} {
		if _, err := inf.AddEventHandler(p.handler(ns)); err != nil {
			stop()
			return nil, fmt.Errorf("watch namespace %s: %w", ns, err)
		}
	}
	f.Start(fctx.Done())
	if err := waitSynced(ctx, f.WaitForCacheSync); err != nil {
		stop() // Shutdown waits for the informers, which stop with fctx
		f.Shutdown()
		err = fmt.Errorf("watch deployments, services, pods and endpointslices in namespace %s: %w", ns, err)
		p.fail("ns/"+ns, err)
		return nil, err
	}
	sp = &space{deployments: deps.Lister(), services: svcs.Lister(), pods: pods.Lister(), slices: slices.Lister(), stop: stop}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spaces[ns] = sp
	delete(p.setupErr, "ns/"+ns)
	return sp, nil
}

func (p *Placer) fail(key string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setupErr[key] = setupFailure{err: err, at: time.Now()}
}

// routeLister returns the HTTPRoute cache of a namespace, starting it on
// first use.
func (p *Placer) routeLister(ctx context.Context, ns string) (cache.GenericNamespaceLister, error) {
	var l cache.GenericLister
	get := func() bool { l = p.routes[ns].lister; return l != nil }
	if ok, err := p.cached("route/"+ns, get); ok {
		if err != nil {
			return nil, err
		}
		return l.ByNamespace(ns), nil
	}
	p.setup.Lock()
	defer p.setup.Unlock()
	if ok, err := p.cached("route/"+ns, get); ok {
		if err != nil {
			return nil, err
		}
		return l.ByNamespace(ns), nil
	}
	fctx, stop := context.WithCancel(p.ctx)
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(p.dyn, 0, ns, nil)
	inf := f.ForResource(HTTPRoutes)
	if _, err := inf.Informer().AddEventHandler(p.handler(ns)); err != nil {
		stop()
		return nil, fmt.Errorf("watch httproutes in %s: %w", ns, err)
	}
	f.Start(fctx.Done())
	if err := waitSynced(ctx, f.WaitForCacheSync); err != nil {
		stop()
		f.Shutdown()
		err = fmt.Errorf("watch httproutes in %s (are the Gateway API CRDs installed?): %w", ns, err)
		p.fail("route/"+ns, err)
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[ns] = routeCache{lister: inf.Lister(), stop: stop}
	delete(p.setupErr, "route/"+ns)
	return inf.Lister().ByNamespace(ns), nil
}

// waitSynced waits for a factory's caches, at most cacheSyncTimeout.
func waitSynced[T comparable](ctx context.Context, wait func(<-chan struct{}) map[T]bool) error {
	ctx, cancel := context.WithTimeout(ctx, cacheSyncTimeout)
	defer cancel()
	for typ, ok := range wait(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache of %v not synced: %w", typ, errors.Join(ctx.Err(), errors.New("is the agent allowed to list and watch it?")))
		}
	}
	return nil
}

// Place implements runtime.Placer.
func (p *Placer) Place(ctx context.Context, d *cutoverv1.DesiredApp, toStable bool) (runtime.Placement, error) {
	if len(d.GetRevisions()) == 0 {
		// The app was removed: its objects stay as they are (Cutover
		// never deletes what it may have adopted).
		return runtime.Placement{Converged: true}, nil
	}
	k := spec.KubeOf(d.GetApp(), d.GetKubernetes())
	p.watch(d.GetApp(), k.Namespace, k.RouteNamespace)
	sp, err := p.space(ctx, k.Namespace)
	if err != nil {
		return runtime.Placement{}, err
	}
	return (&app{p: p, sp: sp, k: k, d: d, toStable: toStable}).place(ctx)
}

// place is one pass of the app's strategy over its objects.
func (a *app) place(ctx context.Context) (runtime.Placement, error) {
	d, k := a.d, a.k
	if len(d.GetHeaderRoutes()) > 0 {
		return runtime.Placement{}, errors.New("setHeaderRoute needs the agent's proxy: the kubernetes runtime does not route by header yet (use the local runtime)")
	}
	if err := refuseMirror(d); err != nil {
		return runtime.Placement{}, err
	}
	switch d.GetStrategy() {
	case "blueGreen":
		return a.blueGreen(ctx)
	case "rolling":
		if k.DelegateRolling {
			return a.delegated(ctx)
		}
	}
	return a.canary(ctx)
}

// failures records pods of a revision that failed and returns how many
// have, since the revision was first desired.
func (p *Placer) failures(app, rev string, pods []*corev1.Pod) int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	byRev := p.failed[app]
	if byRev == nil {
		byRev = map[string]map[string]bool{}
		p.failed[app] = byRev
	}
	set := byRev[rev]
	if set == nil {
		set = map[string]bool{}
		byRev[rev] = set
	}
	for _, pod := range pods {
		set[string(pod.UID)] = true
	}
	return int32(len(set))
}

// keepFailures forgets the failures of revisions no longer desired.
func (p *Placer) keepFailures(app string, revs map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for rev := range p.failed[app] {
		if !revs[rev] {
			delete(p.failed[app], rev)
		}
	}
}
