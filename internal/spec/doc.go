// Package spec turns a rollout manifest (YAML or JSON in the Kubernetes
// style: apiVersion cutover.dev/v1, kind Rollout, metadata, spec) into a
// validated, defaulted cutoverv1.RolloutSpec.
//
// Every problem is reported as a FieldError naming the field path, e.g.
// "spec.strategy.canary.steps[2].setWeight: must be between 0 and 100", so
// the CLI and the REST API show the same message. Parsing never partially
// succeeds: either a complete spec is returned or an error.
package spec
