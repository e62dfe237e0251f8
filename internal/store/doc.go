// Package store keeps the control plane's durable state in one bbolt file.
//
// Schema (version 4); every value is a binary protobuf message unless said
// otherwise:
//
//	meta      "schema"            -> decimal schema version, e.g. "4"
//	          "audit_head"        -> seq (8 BE) || SHA-256 of the last audit
//	                                 record appended (added in version 3,
//	                                 written with the first record)
//	rollouts  <name>              -> cutover.v1.Rollout: the app's current
//	                                 rollout (spec and engine state)
//	history   <name>/<number:8 BE> -> cutover.v1.Rollout: an earlier rollout
//	                                 of the app as it ended, keyed by its
//	                                 rollout number (added in version 2)
//	clusters  <name>              -> cutover.v1.Cluster (as its agent last
//	                                 described it)
//	audit     <seq:8 BE>          -> cutover.v1.AuditRecord, deterministic
//	                                 encoding (added in version 3)
//	evaluations <name>/<number:8 BE> -> cutover.v1.RolloutEvaluations: the
//	                                 gate evaluation record of one rollout
//	                                 (current or in history), bounded and
//	                                 downsampled by the control plane;
//	                                 dropped with its history entry (added
//	                                 in version 4)
//
// Hot data (metric samples, heartbeats between connects) is never written
// here; the evaluation record is its bounded digest, written in batches. Open creates the buckets of a new file and upgrades an older schema
// in one transaction; a file from a newer version is refused rather than
// misread.
//
// The audit trail is append-only and hash-chained. Invariants:
//   - Records are numbered 1, 2, 3, ... without gaps, and nothing ever
//     deletes or rewrites one (history retention trims the history bucket
//     only).
//   - hash = SHA-256(prev_hash || deterministic encoding of the record with
//     hash empty); prev_hash is the previous record's hash, empty for the
//     first.
//   - The head names the last record, so removing the newest records is
//     detected as well as editing, removing or reordering any other.
//   - A record is appended in the same transaction as the change it
//     records (PutRollout, ReplaceRollout and PutCluster take records to
//     append); AppendAudit appends records that accompany no change.
//   - Records leave the store (the OnAudit hook, e.g. for notifications)
//     only after their transaction has committed, never from inside it.
package store
