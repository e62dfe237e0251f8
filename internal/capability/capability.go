// Package capability names what an agent announces it can do in its
// hello (cutover.v1.Hello.capabilities), so the control plane can tell an
// agent that lacks a feature from one that is slow to answer.
package capability

// Capabilities beyond the strategies and routing features of a runtime.
const (
	// DryRun: the agent answers RunTask dry runs (the pre-flight).
	DryRun = "dryRun"
	// CommandHooks: the agent runs command hooks (started with
	// --allow-command-hooks).
	CommandHooks = "commandHooks"
)
