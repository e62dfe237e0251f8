// Package audit owns the vocabulary of the audit trail: the actions and
// actors a record names, and how a rollout's new timeline events, an
// agent's connection and a refused request become records. It is pure: the
// store seals records into the hash chain (see internal/store) in the same
// transaction as the change they record.
//
// Invariants:
//   - Every timeline event the engine records becomes exactly one record,
//     with the engine's own decisions by ActorEngine.
//   - Actions are dotted verbs from the constants below; a new kind of
//     event gets a new constant, never a free-form string.
package audit
