// Package rollout is the rollout engine: a pure state machine
//
//	Step(rollout, event, now) -> (rollout', desired states, wake-up time)
//
// with no I/O and the clock passed in. The caller persists the returned
// rollout before it sends the desired states, so a control plane killed at
// any instant resumes exactly where it was: the desired state of every
// cluster is a function of the stored rollout (see Desired), and sending it
// twice is harmless because agents reconcile level-triggered on generations.
//
// How traffic moves is a Strategy (strategy.go): canary, blue-green,
// rolling and shadow, one file each, each turning a spec into the steps of a
// wave and a cluster's progress into what its agent runs.
//
// Invariants:
//   - A cluster's desired generation increases exactly when its desired state
//     changes, and never decreases, across every rollout of the same app.
//   - A step completes only when every cluster of the current wave reports
//     the generation it was sent as converged (weights actually in force).
//   - Terminal phases (Healthy, Aborted) accept no further transitions
//     except a new Apply.
package rollout
