// Package agent wires the Cutover agent: its state file, the runtime that
// runs apps, the reconciler and the link to the control plane. The agent
// dials out; nothing dials in.
package agent
