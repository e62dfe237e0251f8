// Package policy owns release policies: rules a platform team declares once
// (kind Policy manifests, cutoverv1.Policy) for every app whose name matches
// the policy's glob patterns, such as "trading apps move only outside NYSE
// market hours, unless they are shadow-first canaries with microsecond
// latency gates" or "banking apps need two approvers and a compliance
// check".
//
// Load reads and validates policy files; Set.Resolve turns the spec an
// operator applied into the effective spec the control plane stores and
// runs: the policy's deployment windows, freezes and holidays become
// spec.window, its approval is a floor under spec.approval, its pre-flight
// checks and hooks run before the spec's own, and spec.policy names it.
//
// Invariants:
//   - A loaded Set is immutable, so Resolve is safe for concurrent use.
//   - Resolve never modifies its input and is deterministic: the same spec
//     resolves to the same effective spec, so applying one manifest twice
//     changes nothing.
//   - A rollout either meets its policy or is refused with an error naming
//     the spec field that fails it; a policy is never silently skipped.
package policy
