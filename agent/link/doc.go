// Package link is the agent's side of AgentService.Connect: it dials out to
// the control plane, says hello with the generations it already applied,
// hands every desired state to the reconciler, and sends heartbeats and
// observed states. A lost stream is redialled with jittered exponential
// backoff; the reconciler keeps serving in the meantime.
package link
