// Package cli is the cutover command-line client. It owns the commands, how
// their results are rendered (tables, a detail view, JSON and YAML) and how
// failures are reported.
//
// Invariants:
//   - It talks to the control plane only through the generated API in
//     internal/gen; it never imports control-plane or agent packages, so the
//     client can only do what the public API allows.
//   - A failure is reported as exactly one line, "error: MESSAGE", on the
//     error stream, and Main returns 1. Server messages are shown as sent,
//     since they already name the offending field path.
//   - Flags live in values built per NewRootCommand call; there is no
//     package-level mutable state, so commands can run concurrently in tests.
package cli
