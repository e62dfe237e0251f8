// Package proxy is the local runtime's traffic-splitting HTTP reverse proxy.
// It fronts one app on the app's listen address and sends each request to a
// revision chosen by weight, then to one of that revision's ready instances
// in turn. The routing table is swapped atomically: a weight change applies
// to the next request and never disturbs requests already in flight. The
// proxy counts in-flight requests per backend so callers can drain an
// instance before stopping it.
package proxy
