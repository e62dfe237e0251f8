# Cutover — build, check, test and demo. Everything this Makefile needs it
# installs itself, pinned, into $(TOOLS_DIR) (outside the repository, so a
# clean clone and CI reuse it and nothing is ever committed).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
TOOLS_DIR ?= $(HOME)/.cache/cutover/tools
BIN_DIR   := $(CURDIR)/bin

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION       := v2.33.0
STATICCHECK_VERSION        := v0.8.2

BUF                := $(TOOLS_DIR)/buf@$(BUF_VERSION)/buf
PROTOC_GEN_GO      := $(TOOLS_DIR)/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS_DIR)/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)/protoc-gen-go-grpc
PROTOC_GEN_GATEWAY := $(TOOLS_DIR)/grpc-gateway@$(GRPC_GATEWAY_VERSION)/protoc-gen-grpc-gateway
PROTOC_GEN_OPENAPI := $(TOOLS_DIR)/grpc-gateway@$(GRPC_GATEWAY_VERSION)/protoc-gen-openapiv2
STATICCHECK        := $(TOOLS_DIR)/staticcheck@$(STATICCHECK_VERSION)/staticcheck
# Debian's Prometheus server, for the tests of the Prometheus metrics source.
PROMETHEUS         := /usr/bin/prometheus
# Debian's Chromium, headless, for the tests that open `cutover report`'s HTML.
CHROMIUM           := /usr/bin/chromium
PLUGINS            := $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(PROTOC_GEN_GATEWAY) $(PROTOC_GEN_OPENAPI)
PLUGIN_PATH        := $(subst $(eval) ,:,$(sort $(dir $(PLUGINS))))

# The local Kubernetes control plane of test/kubecluster: kube-apiserver,
# kube-controller-manager and kube-scheduler and etcd built from source by the
# wrapper modules in test/kubecluster/tools, kwok with the Stage YAMLs of its
# module, and the Gateway API standard-channel CRDs.
KUBE_VERSION        := v1.36.3
ETCD_VERSION        := v3.6.8
KWOK_VERSION        := v0.8.0
GATEWAY_API_VERSION := v1.6.3

KUBE_BIN_DIR     := $(TOOLS_DIR)/kube@$(KUBE_VERSION)
KUBE_BINARIES    := $(addprefix $(KUBE_BIN_DIR)/,kube-apiserver kube-controller-manager kube-scheduler)
ETCD             := $(TOOLS_DIR)/etcd@$(ETCD_VERSION)/etcd
KWOK_DIR         := $(TOOLS_DIR)/kwok@$(KWOK_VERSION)
KWOK             := $(KWOK_DIR)/kwok
# The stages kwokctl runs by default: fast pods and nodes, heartbeat by lease.
KWOK_STAGE_SRCS  := node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
                    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml
KWOK_STAGES      := $(addprefix $(KWOK_DIR)/stages/,$(notdir $(KWOK_STAGE_SRCS)))
GATEWAY_API_DIR  := $(TOOLS_DIR)/gateway-api@$(GATEWAY_API_VERSION)
GATEWAY_API_CRDS := $(GATEWAY_API_DIR)/gateway.networking.k8s.io_httproutes.yaml
# What `kubectl version` and /version report; a plain go build says v0.0.0.
KUBE_MAJOR       := $(patsubst v%,%,$(word 1,$(subst ., ,$(KUBE_VERSION))))
KUBE_MINOR       := $(word 2,$(subst ., ,$(KUBE_VERSION)))
KUBE_LDFLAGS     := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
                      -X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=$(KUBE_MAJOR) -X $(p).gitMinor=$(KUBE_MINOR) -X $(p).gitTreeState=clean)
# The directory of a Go module in the module cache, downloaded if need be;
# run from $(TOOLS_DIR) so that this module's go.mod and go.sum are left alone.
moddir = $$(cd $(TOOLS_DIR) && $(GO) mod download -json $(1) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')

BINARIES := cutover cutover-server cutover-agent cutover-demoapp cutover-demo

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# --- tools ------------------------------------------------------------------

$(BUF):
	GOBIN=$(@D) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(PROTOC_GEN_GO):
	GOBIN=$(@D) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(@D) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(PROTOC_GEN_GATEWAY):
	GOBIN=$(@D) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(PROTOC_GEN_OPENAPI):
	GOBIN=$(@D) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
$(STATICCHECK):
	GOBIN=$(@D) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(PROMETHEUS):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

.PHONY: tools
tools: $(BUF) $(PLUGINS) $(STATICCHECK) ## install the pinned tools

$(KUBE_BINARIES) &:
	cd test/kubecluster/tools/kube && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $(KUBE_BIN_DIR)/ \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
$(ETCD):
	cd test/kubecluster/tools/etcd && $(GO) build -o $@ .
$(KWOK):
	GOBIN=$(@D) $(GO) install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
$(KWOK_STAGES) &:
	mkdir -p $(KWOK_DIR)/stages
	src=$(call moddir,sigs.k8s.io/kwok@$(KWOK_VERSION)) && test -n "$$src" && \
		install -m 0644 $(addprefix $$src/kustomize/stage/,$(KWOK_STAGE_SRCS)) $(KWOK_DIR)/stages/
$(GATEWAY_API_CRDS):
	mkdir -p $(@D)
	src=$(call moddir,sigs.k8s.io/gateway-api@$(GATEWAY_API_VERSION)) && test -n "$$src" && \
		install -m 0644 $$src/config/crd/standard/gateway.networking.k8s.io_*.yaml $(@D)/

.PHONY: kube-tools
kube-tools: $(KUBE_BINARIES) $(ETCD) $(KWOK) $(KWOK_STAGES) $(GATEWAY_API_CRDS) ## build the local Kubernetes control plane for test-k8s

# --- build ------------------------------------------------------------------

.PHONY: build
build: ## build every binary into bin/
	@mkdir -p $(BIN_DIR)
	$(GO) build -o $(BIN_DIR)/ ./cli/cmd/cutover ./controlplane/cmd/cutover-server ./agent/cmd/cutover-agent ./test/cmd/cutover-demo
	$(GO) build -o $(BIN_DIR)/cutover-demoapp ./test/demoapp

.PHONY: generate
generate: $(BUF) $(PLUGINS) ## regenerate code and the OpenAPI document from proto/
	rm -rf internal/gen internal/apidoc/*.swagger.json
	PATH="$(PLUGIN_PATH):$$PATH" $(BUF) generate

# --- demo and tests -----------------------------------------------------------

.PHONY: demo
demo: build ## run a canary rollout v1 -> v2 across two regions on this machine
	$(BIN_DIR)/cutover-demo --bin $(BIN_DIR)

.PHONY: test
test: build $(PROMETHEUS) $(CHROMIUM) ## run every test with the race detector, test-k8s included
	CUTOVER_BIN=$(BIN_DIR) CUTOVER_PROMETHEUS=$(PROMETHEUS) CUTOVER_CHROMIUM=$(CHROMIUM) $(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/test/kube$$')
	$(MAKE) --no-print-directory test-k8s

.PHONY: test-k8s
test-k8s: build kube-tools $(PROMETHEUS) ## run the tests against a local Kubernetes control plane
	CUTOVER_BIN=$(BIN_DIR) CUTOVER_PROMETHEUS=$(PROMETHEUS) CUTOVER_KUBE_BIN=$(KUBE_BIN_DIR) CUTOVER_ETCD=$(ETCD) CUTOVER_KWOK=$(KWOK_DIR) \
		CUTOVER_GATEWAY_API=$(GATEWAY_API_DIR) $(GO) test -race -count=1 -timeout 20m ./test/kube/...

# Fuzz targets, each run for FUZZTIME; a crash lands in the package's
# testdata/fuzz and then runs as a regression test with every `go test`.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./internal/spec:FuzzParse ./internal/auth:FuzzParseTokens

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 30s) each
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

.PHONY: bench
bench: build ## benchmarks, one "name value unit" line per figure
	$(GO) test -run '^$$' -bench . -benchtime 2000x $$($(GO) list ./... | grep -v '/test/kube$$') | awk '/^Benchmark/ { for (i = 3; i < NF; i += 2) print $$1, $$i, $$(i+1) }'
	CUTOVER_BIN=$(BIN_DIR) $(GO) run ./test/cmd/cutover-bench

# --- checks -------------------------------------------------------------------

.PHONY: check
check: fmt vet lint buf-lint generated tidy boundaries ## everything CI checks besides the tests

.PHONY: fmt
fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet:
	$(GO) vet ./...

.PHONY: lint
lint: $(STATICCHECK)
	$(STATICCHECK) ./...

.PHONY: buf-lint
buf-lint: $(BUF)
	$(BUF) lint --path proto/cutover

.PHONY: generated
generated: generate ## fail if the committed generated code is stale
	git add -N internal/gen internal/apidoc
	git diff --exit-code -- internal/gen internal/apidoc || { echo "generated code is stale: run make generate and commit"; exit 1; }

.PHONY: tidy
tidy:
	$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

.PHONY: boundaries
boundaries: ## the import rules of STYLE.md point 1
	.ci/check-boundaries.sh

.PHONY: clean
clean:
	rm -rf $(BIN_DIR)
