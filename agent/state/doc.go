// Package state is the agent's own bbolt file: what it was asked to run and
// which processes it started, so a restarted agent neither loses its apps
// nor duplicates their processes.
//
// Schema (version 1):
//
//	meta       "schema"              -> decimal schema version, e.g. "1"
//	apps       <app>                 -> cutover.v1.DesiredApp (binary protobuf),
//	                                    the last desired state accepted
//	instances  <app>/<revkey>/<index> -> Instance (JSON): pid, port and the
//	                                    process start time that proves the pid
//	                                    was not reused
package state
