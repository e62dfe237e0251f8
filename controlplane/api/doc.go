// Package api holds the gRPC handlers of the public API. Handlers stay thin:
// validate, delegate to the controller or hub, and map domain errors to
// status codes through the single table in errors.go.
package api
