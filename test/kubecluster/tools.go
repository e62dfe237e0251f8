package kubecluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Environment variables naming the tools; `make test-k8s` sets all four after
// `make kube-tools` has built or copied them.
const (
	// EnvKubeBin is a directory holding kube-apiserver,
	// kube-controller-manager and kube-scheduler.
	EnvKubeBin = "CUTOVER_KUBE_BIN"
	// EnvEtcd is the path of the etcd binary.
	EnvEtcd = "CUTOVER_ETCD"
	// EnvKwok is a directory holding the kwok binary and, in stages/, the
	// Stage YAMLs of its module.
	EnvKwok = "CUTOVER_KWOK"
	// EnvGatewayAPI is a directory holding the Gateway API standard-channel
	// CRD YAMLs.
	EnvGatewayAPI = "CUTOVER_GATEWAY_API"
)

// Tools locates the binaries and manifests a cluster is made of.
type Tools struct {
	KubeBin    string // directory with kube-apiserver, kube-controller-manager, kube-scheduler
	Etcd       string // etcd binary
	Kwok       string // directory with kwok and stages/*.yaml
	GatewayAPI string // directory with the Gateway API CRD YAMLs
}

// ToolsFromEnv reads the tool locations from the environment variables above.
func ToolsFromEnv() Tools {
	return Tools{
		KubeBin:    os.Getenv(EnvKubeBin),
		Etcd:       os.Getenv(EnvEtcd),
		Kwok:       os.Getenv(EnvKwok),
		GatewayAPI: os.Getenv(EnvGatewayAPI),
	}
}

func (t Tools) apiserver() string         { return filepath.Join(t.KubeBin, "kube-apiserver") }
func (t Tools) controllerManager() string { return filepath.Join(t.KubeBin, "kube-controller-manager") }
func (t Tools) scheduler() string         { return filepath.Join(t.KubeBin, "kube-scheduler") }
func (t Tools) kwok() string              { return filepath.Join(t.Kwok, "kwok") }
func (t Tools) kwokStages() string        { return filepath.Join(t.Kwok, "stages") }

// check reports every missing tool at once, each with the variable that
// names it, so a bare `go test` says what to do instead of failing later.
func (t Tools) check(gatewayAPI bool) error {
	var errs []error
	need := func(env, dir string, paths ...string) {
		if dir == "" {
			errs = append(errs, fmt.Errorf("%s is not set", env))
			return
		}
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Errorf("%s=%s: %w", env, dir, err))
			}
		}
	}
	need(EnvKubeBin, t.KubeBin, t.apiserver(), t.controllerManager(), t.scheduler())
	need(EnvEtcd, t.Etcd, t.Etcd)
	need(EnvKwok, t.Kwok, t.kwok(), t.kwokStages())
	if gatewayAPI {
		need(EnvGatewayAPI, t.GatewayAPI, t.GatewayAPI)
	}
	if len(errs) > 0 {
		return fmt.Errorf("kubecluster tools missing (run `make test-k8s`, which builds them and sets %s, %s, %s and %s): %w",
			EnvKubeBin, EnvEtcd, EnvKwok, EnvGatewayAPI, errors.Join(errs...))
	}
	return nil
}
