// Package kubecluster runs a real Kubernetes control plane on this machine
// for tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok, as child processes on free loopback ports, all built from pinned
// sources by `make kube-tools` (nothing is downloaded at test time).
//
// # What runs
//
//   - etcd, its data on /dev/shm (a fresh directory per cluster, removed by
//     Stop, or by a later Start when the test binary was killed) with
//     --unsafe-no-fsync.
//   - kube-apiserver on 127.0.0.1 only, serving TLS with a certificate from a
//     CA the harness generates (clients verify it: AdminConfig and
//     WriteKubeconfig carry the CA, never insecure-skip-verify). Static
//     bearer tokens (--token-auth-file) authenticate the admin (a member of
//     system:masters) and the other components; authorization is Node,RBAC.
//     ServiceAccount tokens are signed with a generated key, so the
//     TokenRequest API works (ServiceAccountToken) — that is how agents
//     authenticate in the tests.
//   - kube-controller-manager and kube-scheduler without leader election or
//     serving ports. The controllers share the controller manager's identity,
//     which is in system:masters: per-controller ServiceAccount credentials
//     cost four seconds of start-up on two cores, and the controllers' own
//     RBAC is not what the tests exercise.
//   - kwok, standing in for kubelets: it manages one node, NodeName,
//     registered without taints (tests apply third-party manifests unchanged,
//     and those carry no tolerations), and plays the lifecycle of its pods
//     with the Stages of kwok's module (fast pod and node stages, heartbeat
//     by Lease). Pod IPs are made up; nothing can send traffic to a pod.
//
// Start returns once the node is Ready and a ServiceAccount token for
// default/default authenticates: about 3 s on two cores, 5 s when it also
// installs the Gateway API standard-channel CRDs. Apply and ApplyFile apply
// multi-document YAML with server-side apply.
//
// All files — keys, kubeconfigs, the kwok configuration and one log per
// process (<Dir>/<process>.log) — live in Options.Dir; an error from Start
// or Stop quotes the end of the relevant log. Every child is started with
// Pdeathsig from one locked OS thread, so it dies with the test binary even
// when that is killed; Stop terminates them in order (clients, then the API
// server, then etcd, which the API server needs to shut down) and bounds each
// with a SIGKILL after 10 s.
//
// # Pods that never become Ready
//
// A pod whose first container's image is exactly NeverReadyImage goes to
// phase Running, with its containers running, but stays Ready=False (reason
// ContainersNotReady) for ever, as if its readiness probe always failed.
// Every other pod is Running and Ready as soon as it is scheduled. The
// harness does this with kwok Stages: it adds "first container image NotIn
// [NeverReadyImage]" to the selector of kwok's pod-ready stage and adds a
// stage of its own (never-ready-stage.yaml) selecting the pods that stage
// leaves out.
//
// # Environment
//
// Start finds the tools through Options.Tools or, when that is zero, these
// variables, which `make test-k8s` sets:
//
//	CUTOVER_KUBE_BIN     directory with kube-apiserver, kube-controller-manager, kube-scheduler
//	CUTOVER_ETCD         the etcd binary
//	CUTOVER_KWOK         directory with the kwok binary and stages/*.yaml
//	CUTOVER_GATEWAY_API  directory with the Gateway API CRD YAMLs (for Options.GatewayAPI)
//
// When one is missing Start fails, naming it and `make test-k8s`.
package kubecluster
