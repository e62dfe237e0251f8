// Package task runs the one-off tasks the control plane sends an agent
// (RunTask): pre-flight dry runs, which ask the runtime whether a desired
// state could run without changing anything, and command hooks, which run
// a program on the agent's host.
//
// Invariants:
//   - Submitting never blocks: each task runs on its own goroutine, so
//     neither the link's receive loop nor the reconciler ever waits for one.
//   - A task id runs at most once per agent process. A repeat of an id that
//     finished is answered with the stored result (the last Keep ids are
//     remembered); a repeat of one still running is not started again, its
//     result goes out when it finishes. The control plane resends a task
//     after a reconnect, so a result lost with a broken stream is answered
//     again then.
//   - A command runs in its own process group, which is killed whole when
//     the task's timeout passes or the agent stops, and once the command
//     exits (what it left running in the background goes with it).
package task
