// Package local runs app instances as child processes of the agent's host.
//
// Each instance gets its own port (passed as PORT and substituted for
// "$(PORT)" in the arguments) and its own process group, and is ready once
// its readiness path answers 2xx. Every started process is recorded in the
// agent's state file with its pid and kernel start time.
//
// Restart policy: when the agent dies abruptly (SIGKILL, crash) its app
// processes keep running and serving; a restarted agent ADOPTS every
// recorded process whose pid still has the recorded start time (so a reused
// pid is never mistaken for ours), re-checks its readiness and supervises it
// again, without starting a duplicate. Records whose process is gone are
// dropped and the instance is started afresh. When the agent is stopped
// gracefully (SIGTERM) it stops its app processes and removes their records.
package local
