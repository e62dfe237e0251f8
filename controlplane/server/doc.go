// Package server wires the control plane: store, controller, agent hub, the
// gRPC API and the HTTP side (REST gateway, health, metrics, OpenAPI). The
// REST gateway dials the gRPC server like any client, so REST calls go
// through exactly the same interceptors and handlers as gRPC calls.
package server
