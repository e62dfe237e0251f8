package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configures Start.
type Options struct {
	// Dir holds the cluster's keys, kubeconfigs and process logs. Empty means
	// a new temporary directory, which Stop removes unless something failed.
	Dir string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// GatewayAPI installs the Gateway API standard-channel CRDs and waits
	// until they are served.
	GatewayAPI bool
	// Tools locates the binaries; the zero value means ToolsFromEnv().
	Tools Tools
}

// Cluster is a running control plane. Its methods are safe for concurrent
// use.
type Cluster struct {
	dir      string
	ownDir   bool
	etcdDir  string
	etcdURL  string
	log      *slog.Logger
	tools    Tools
	host     string
	caPEM    []byte
	admin    *rest.Config
	client   kubernetes.Interface
	dynamic  dynamic.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	spawner  *spawner
	etcd     *proc
	api      *proc
	clients  []*proc // controller manager, scheduler, kwok
	failed   bool    // Start failed: keep the files for the post-mortem
	stopOnce sync.Once
	stopErr  error
}

// Identities in the token-auth file.
const (
	adminUser      = "cutover-admin"
	mastersGroup   = "system:masters"
	kcmUser        = "system:kube-controller-manager"
	schedulerUser  = "system:kube-scheduler"
	kwokUser       = "kwok"
	readyPoll      = 25 * time.Millisecond
	crdWaitTimeout = 30 * time.Second
)

// Start starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and kwok with one fake node, and returns once the node is Ready and
// untainted and a ServiceAccount token of default/default authenticates. On
// error nothing is left running. ctx bounds the start only; the cluster runs
// until Stop.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	begin := time.Now()
	tools := opts.Tools
	if tools == (Tools{}) {
		tools = ToolsFromEnv()
	}
	if err := tools.check(opts.GatewayAPI); err != nil {
		return nil, err
	}
	c := &Cluster{dir: opts.Dir, log: opts.Log, tools: tools}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "kubecluster-"); err != nil {
			return nil, fmt.Errorf("cluster dir: %w", err)
		}
		c.ownDir = true
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	c.spawner = newSpawner()
	defer func() {
		if err == nil {
			return
		}
		c.failed = true
		if serr := c.Stop(); serr != nil {
			err = errors.Join(err, serr)
		} else {
			err = fmt.Errorf("%w\n(cluster files and logs are in %s)", err, c.dir)
		}
	}()

	var gateway struct {
		objs []*unstructured.Unstructured
		err  error
		done chan struct{}
	}
	if opts.GatewayAPI {
		gateway.done = make(chan struct{})
		go func() {
			defer close(gateway.done)
			gateway.objs, gateway.err = readGatewayAPI(tools.GatewayAPI)
		}()
		defer func() { <-gateway.done }()
	}

	p, err := newPKI(c.dir)
	if err != nil {
		return nil, err
	}
	c.caPEM = p.caPEM
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	c.log.Info("etcd ready", "after", time.Since(begin).Round(time.Millisecond))
	ids, err := c.startAPIServer(ctx, p)
	if err != nil {
		return nil, err
	}
	c.log.Info("kube-apiserver ready", "dir", c.dir, "host", c.host, "after", time.Since(begin).Round(time.Millisecond))
	if err := c.startClients(ctx, p, ids); err != nil {
		return nil, err
	}
	if err := c.createNode(ctx); err != nil {
		return nil, err
	}
	if opts.GatewayAPI {
		<-gateway.done
		if gateway.err != nil {
			return nil, gateway.err
		}
		if err := c.installGatewayAPI(ctx, gateway.objs); err != nil {
			return nil, err
		}
	}
	if err := c.waitNodeReady(ctx); err != nil {
		return nil, err
	}
	if err := c.waitServiceAccounts(ctx); err != nil {
		return nil, err
	}
	c.log.Info("cluster ready", "after", time.Since(begin).Round(time.Millisecond))
	return c, nil
}

func (c *Cluster) procs() []*proc {
	var ps []*proc
	for _, p := range append([]*proc{c.etcd, c.api}, c.clients...) {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

func (c *Cluster) start(ctx context.Context, name, bin string, env []string, args ...string) (*proc, error) {
	c.log.Debug("starting", "process", name, "args", strings.Join(args, " "))
	return startProc(ctx, c.spawner, name, bin, c.path(name+".log"), append(os.Environ(), env...), args...)
}

// startEtcd starts etcd on a tmpfs data dir without fsync: durability is
// worthless for a test cluster and fsync dominates etcd's latency.
func (c *Cluster) startEtcd(ctx context.Context) error {
	var err error
	if c.etcdDir, err = newEtcdDir(c.dir); err != nil {
		return err
	}
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	clientURL, peerURL := loopbackURL("http", clientPort), loopbackURL("http", peerPort)
	c.etcdURL = clientURL
	c.etcd, err = c.start(ctx, "etcd", c.tools.Etcd, nil,
		"--name=default",
		"--data-dir="+filepath.Join(c.etcdDir, "data"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync",
		// A lone member elects itself after one election timeout (1s by
		// default); there are no peers to lose heartbeats to.
		"--heartbeat-interval=20",
		"--election-timeout=200",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	return poll(ctx, "etcd healthy", readyPoll, c.procs(), func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"health":"true"`) {
			return false, fmt.Errorf("%w: %s %s", errNotYet, resp.Status, b)
		}
		return true, nil
	})
}

// etcdDirPattern names etcd's directories on /dev/shm; each holds the pid of
// the test process that owns it and etcd's data dir.
const etcdDirPattern = "cutover-etcd-*"

// newEtcdDir makes a directory for etcd's data on /dev/shm (in fallback when
// there is no /dev/shm). A test binary killed with SIGKILL cannot remove its
// directory, so the directories of processes that are gone are removed here.
func newEtcdDir(fallback string) (string, error) {
	base := fallback
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
		stale, _ := filepath.Glob(filepath.Join(base, etcdDirPattern))
		for _, d := range stale {
			b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(string(b)); err == nil && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				_ = os.RemoveAll(d)
			}
		}
	}
	dir, err := os.MkdirTemp(base, etcdDirPattern)
	if err != nil {
		return "", fmt.Errorf("etcd data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", fmt.Errorf("etcd data dir: %w", err)
	}
	return dir, nil
}

// startAPIServer starts kube-apiserver on loopback with static tokens, RBAC
// and service-account token signing, and waits for /readyz.
func (c *Cluster) startAPIServer(ctx context.Context, p *pki) (ids map[string]identity, err error) {
	ids = map[string]identity{}
	for _, spec := range []struct {
		user   string
		groups []string
	}{{adminUser, []string{mastersGroup}}, {kcmUser, []string{mastersGroup}}, {schedulerUser, nil}, {kwokUser, []string{mastersGroup}}} {
		if ids[spec.user], err = newIdentity(spec.user, spec.groups...); err != nil {
			return nil, err
		}
	}
	if err := writeTokenFile(c.path("tokens.csv"), ids[adminUser], ids[kcmUser], ids[schedulerUser], ids[kwokUser]); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c.host = loopbackURL("https", port)
	c.api, err = c.start(ctx, "kube-apiserver", c.tools.apiserver(), nil,
		"--etcd-servers="+c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+c.path("apiserver-certs"),
		"--tls-cert-file="+p.servingCert,
		"--tls-private-key-file="+p.serveKey,
		"--client-ca-file="+p.caCert,
		"--token-auth-file="+c.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer="+saIssuer,
		"--service-account-key-file="+p.saPub,
		"--service-account-signing-key-file="+p.saKey,
		"--service-cluster-ip-range="+serviceCIDR,
		// Without kubelets there are no endpoints to reconcile for the
		// kubernetes Service; the default reconciler complains every 10s.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	)
	if err != nil {
		return nil, err
	}
	c.admin = &rest.Config{
		Host:            c.host,
		BearerToken:     ids[adminUser].token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS:             200,
		Burst:           400,
	}
	if c.client, err = kubernetes.NewForConfig(c.admin); err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	if c.dynamic, err = dynamic.NewForConfig(c.admin); err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.admin)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	err = poll(ctx, "kube-apiserver ready", readyPoll, c.procs(), func(ctx context.Context) (bool, error) {
		b, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %s", err, b)
		}
		return true, nil
	})
	return ids, err
}

// startClients starts the controller manager, the scheduler and kwok, each
// with its own kubeconfig.
func (c *Cluster) startClients(ctx context.Context, p *pki, ids map[string]identity) error {
	for _, id := range []string{kcmUser, schedulerUser, kwokUser} {
		if err := c.WriteKubeconfig(c.path(kubeconfigName(id)), ids[id].token); err != nil {
			return err
		}
	}
	kcm, err := c.start(ctx, "kube-controller-manager", c.tools.controllerManager(), nil,
		"--kubeconfig="+c.path(kubeconfigName(kcmUser)),
		"--leader-elect=false",
		"--secure-port=0",
		// One identity (in system:masters) for all controllers: creating a
		// ServiceAccount and token per controller delays their start by ~4s.
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+p.saKey,
		"--root-ca-file="+p.caCert,
		"--cluster-signing-cert-file="+p.caCert,
		"--cluster-signing-key-file="+p.caKey,
	)
	if err != nil {
		return err
	}
	c.clients = append(c.clients, kcm)

	schedConfig := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
leaderElection:
  leaderElect: false
`, c.path(kubeconfigName(schedulerUser)))
	if err := os.WriteFile(c.path("kube-scheduler.yaml"), []byte(schedConfig), 0o644); err != nil {
		return fmt.Errorf("scheduler config: %w", err)
	}
	sched, err := c.start(ctx, "kube-scheduler", c.tools.scheduler(), nil,
		"--config="+c.path("kube-scheduler.yaml"),
		"--secure-port=0",
	)
	if err != nil {
		return err
	}
	c.clients = append(c.clients, sched)

	if err := writeKwokConfig(c.tools.kwokStages(), c.path("kwok.yaml")); err != nil {
		return err
	}
	// KWOK_WORKDIR keeps kwok from reading a ~/.kwok/kwok.yaml of the user.
	kwok, err := c.start(ctx, "kwok", c.tools.kwok(), []string{"KWOK_WORKDIR=" + c.path("kwok-workdir")},
		"--kubeconfig="+c.path(kubeconfigName(kwokUser)),
		"--config="+c.path("kwok.yaml"),
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		// Heartbeats by Lease, as kubelets do, and as the
		// node-heartbeat-with-lease stage expects.
		"--node-lease-duration-seconds=40",
	)
	if err != nil {
		return err
	}
	c.clients = append(c.clients, kwok)
	return nil
}

func kubeconfigName(user string) string {
	return strings.TrimPrefix(user, "system:") + ".kubeconfig"
}

// createNode registers the fake node kwok manages. It has no taint: the
// tests apply third-party manifests unchanged, without tolerations.
func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Annotations: map[string]string{kwokNodeAnnotation: "fake"},
		Labels: map[string]string{
			"kubernetes.io/hostname": NodeName,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
			"type":                   "kwok",
		},
	}}
	if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", NodeName, err)
	}
	return nil
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	return poll(ctx, "node "+NodeName+" ready", readyPoll, c.procs(), func(ctx context.Context) (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if len(n.Spec.Taints) > 0 {
			return false, fmt.Errorf("%w: tainted %v", errNotYet, n.Spec.Taints)
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("%w: conditions %v", errNotYet, n.Status.Conditions)
	})
}

// waitServiceAccounts waits until the controller manager has created the
// default ServiceAccount and a token requested for it authenticates.
func (c *Cluster) waitServiceAccounts(ctx context.Context) error {
	return poll(ctx, "ServiceAccount default/default usable", readyPoll, c.procs(), func(ctx context.Context) (bool, error) {
		tok, err := c.ServiceAccountToken(ctx, "default", "default", 0)
		if err != nil {
			return false, err
		}
		cfg := rest.AnonymousClientConfig(c.admin)
		cfg.BearerToken = tok
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return false, err
		}
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return false, fmt.Errorf("authenticate with a ServiceAccount token: %w", err)
		}
		if u := r.Status.UserInfo.Username; u != "system:serviceaccount:default:default" {
			return false, fmt.Errorf("ServiceAccount token authenticates as %q", u)
		}
		return true, nil
	})
}

// Stop stops kwok, the scheduler and the controller manager, then the API
// server, then etcd (the API server hangs on shutdown without its storage),
// and removes etcd's data. Each process gets 10s after SIGTERM before it is
// killed. Stop is idempotent; it reports processes that died before it was
// called, and keeps a temporary Dir it created when anything went wrong.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	begin := time.Now()
	errs := make([]error, len(c.clients))
	var wg sync.WaitGroup
	for i, p := range c.clients {
		wg.Go(func() { errs[i] = p.stop() })
	}
	wg.Wait()
	for _, p := range []*proc{c.api, c.etcd} {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	c.spawner.close()
	if c.etcdDir != "" {
		if err := os.RemoveAll(c.etcdDir); err != nil {
			errs = append(errs, fmt.Errorf("remove etcd data: %w", err))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("%w\n(cluster files and logs are in %s)", err, c.dir)
	} else if c.ownDir && !c.failed {
		if rerr := os.RemoveAll(c.dir); rerr != nil {
			err = fmt.Errorf("remove cluster dir: %w", rerr)
		}
	}
	c.log.Info("cluster stopped", "after", time.Since(begin).Round(time.Millisecond), "err", err)
	return err
}

// Dir is the directory with the cluster's keys, kubeconfigs and the logs of
// its processes (<name>.log).
func (c *Cluster) Dir() string { return c.dir }

// Host is the API server's URL.
func (c *Cluster) Host() string { return c.host }

// CAData is the PEM certificate of the CA that signed the API server's
// serving certificate.
func (c *Cluster) CAData() []byte { return append([]byte(nil), c.caPEM...) }

// AdminConfig returns a fresh client configuration for a member of
// system:masters, authenticated by token, verifying the server against the
// cluster's CA.
func (c *Cluster) AdminConfig() *rest.Config { return rest.CopyConfig(c.admin) }

// Clientset is a typed client with AdminConfig.
func (c *Cluster) Clientset() kubernetes.Interface { return c.client }

// Dynamic is a dynamic client with AdminConfig.
func (c *Cluster) Dynamic() dynamic.Interface { return c.dynamic }

// WriteKubeconfig writes a kubeconfig (mode 0600) for the API server with a
// bearer token, verifying the server against the cluster's CA.
func (c *Cluster) WriteKubeconfig(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubecluster"] = &clientcmdapi.Cluster{Server: c.host, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kubecluster"] = &clientcmdapi.Context{Cluster: "kubecluster", AuthInfo: "user"}
	cfg.CurrentContext = "kubecluster"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// ServiceAccountToken requests a token for a ServiceAccount through the
// TokenRequest API. ttl 0 means the server's default (one hour); the API
// server refuses less than ten minutes.
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, name string, ttl time.Duration) (string, error) {
	req := &authenticationv1.TokenRequest{}
	if ttl > 0 {
		secs := int64(ttl / time.Second)
		req.Spec.ExpirationSeconds = &secs
	}
	r, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return r.Status.Token, nil
}
