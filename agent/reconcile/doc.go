// Package reconcile drives each app on the agent towards its desired state,
// level-triggered: the same desired state applied twice changes nothing.
//
// One worker goroutine per app owns that app's instances and proxy. On
// every pass it starts missing instances, installs the desired traffic
// weights once every desired instance is ready (until then the weights in
// force stay as they were, so traffic never moves to a revision that cannot
// carry it and capacity never drops), drains and stops what is no longer
// wanted only after that, and publishes what it observes. An app
// is converged when the desired weights are in force, every desired
// instance is ready and nothing else runs.
//
// Desired states are stored before they are acted on, so a restarted agent
// resumes serving its apps before it reaches the control plane.
package reconcile
