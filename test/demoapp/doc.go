// Command cutover-demoapp is the stand-in workload that Cutover's embedded
// demo and end-to-end tests roll out. Each instance is started with a
// version and answers every request with it, so a test can tell from the
// responses how traffic is split between the stable and the canary version.
//
// Its faults are chosen on the command line, which is how a demo produces a
// canary that a metric gate must reject:
//
//	--version      version served in the X-Version header and body (required)
//	--listen       address to listen on; default 127.0.0.1:$PORT when PORT is
//	               set, else 127.0.0.1:8080
//	--error-rate   fraction (0..1) of application requests answered 500
//	--latency      delay added to every application request
//	--ready-delay  time during which /healthz answers 503 (a slow start)
//
// Endpoints:
//
//	/          and every path not listed here: 200 "<version>\n", or 500
//	           with probability --error-rate; always sets X-Version
//	/healthz   503 until --ready-delay has elapsed since start, then 200 "ok"
//	/metrics   Prometheus exposition of cutover_demoapp_requests_total{code},
//	           cutover_demoapp_request_duration_seconds and
//	           cutover_demoapp_info{version}
//
// Only application requests are counted in the request metrics: health
// probes and scrapes would otherwise dilute the error ratio a gate judges.
//
// The listener is bound before the "listening" line is logged, so a
// supervisor that waits for that line or polls /healthz always reaches a
// real server. SIGTERM or SIGINT shuts the server down gracefully, waiting
// at most five seconds for in-flight requests, and the process exits 0.
//
// Tests use [App] in-process through [App.Handler]; only one test builds
// and runs the binary.
package main
