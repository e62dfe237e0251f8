// Package harness starts real Cutover processes — control plane, agents,
// the demo app behind them — on free loopback ports, and drives them the way
// a person would: through the CLI, the gRPC API, the REST gateway and plain
// HTTP requests through the agents' proxies. The end-to-end tests and the
// `make demo` driver are both built on it.
//
// Binaries come from the directory in $CUTOVER_BIN (what `make test` sets
// after `make build`), or are built once into a temporary directory.
package harness
