// Package link is the agent's side of AgentService.Connect: it dials out to
// the control plane, says hello with the generations it already applied,
// hands every desired state to the reconciler and every task to the task
// runner (which never blocks it), and sends heartbeats, observed states and
// task results. A lost stream is redialled with jittered exponential
// backoff; the reconciler keeps serving in the meantime.
package link
