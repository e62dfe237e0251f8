// Package controller runs the rollout engine for every rollout of the
// control plane. Each rollout has one supervisor goroutine that owns its
// state: it applies the rollout's events in order with rollout.Step, stores
// the result together with one audit record per new timeline event (one
// transaction: a decision is never stored without its record), and only
// then hands the changed desired states to the agent hub and the new
// rollout to watchers; it ticks the rollout when the engine asks to be
// woken. Rollouts never wait for each other. Reads are served from an
// immutable snapshot so they never queue behind events.
//
// Gate verdicts (gates.go) also feed each rollout's evaluation record
// (evaluations.go), the digest a compliance report charts: per cluster and
// gate at most one point per second and 3,600 points (older points merge
// pairwise past that), kept in memory while the rollout runs and written
// in one transaction for all rollouts every few seconds, at once when a
// rollout ends, and when the controller stops. A write never replaces
// points a previous process stored: they are read and merged first.
package controller
