// Package store keeps the control plane's durable state in one bbolt file.
//
// Schema (version 2); every value is a binary protobuf message:
//
//	meta      "schema"            -> decimal schema version, e.g. "2"
//	rollouts  <name>              -> cutover.v1.Rollout: the app's current
//	                                 rollout (spec and engine state)
//	history   <name>/<number:8 BE> -> cutover.v1.Rollout: an earlier rollout
//	                                 of the app as it ended, keyed by its
//	                                 rollout number (added in version 2)
//	clusters  <name>              -> cutover.v1.Cluster (as its agent last
//	                                 described it)
//
// Hot data (metric samples, heartbeats between connects) is never written
// here. Open creates the buckets of a new file and upgrades an older schema
// in one transaction; a file from a newer version is refused rather than
// misread.
package store
