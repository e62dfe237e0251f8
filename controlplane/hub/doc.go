// Package hub holds the agents' streams. It implements AgentService.Connect:
// each connected cluster has one session with a receiving goroutine (hello,
// heartbeats, observed state) and one sending goroutine that pushes the
// latest desired state of every app whose generation the agent has not yet
// seen. Desired states are recorded by SetDesired without ever waiting on an
// agent, so a slow agent cannot stall the fan-out to the others; an agent
// that reconnects gets only what changed since the generations in its hello.
package hub
