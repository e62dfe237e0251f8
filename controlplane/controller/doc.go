// Package controller runs the rollout engine for every rollout of the
// control plane. One goroutine owns all rollout state: it applies each event
// with rollout.Step, stores the result, and only then hands the changed
// desired states to the agent hub and the new rollout to watchers. Reads are
// served from an immutable snapshot so they never queue behind events.
package controller
