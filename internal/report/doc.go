// Package report renders the compliance report of one rollout (what
// ReportService.GetRolloutReport returns) as one HTML document an auditor
// can keep: the rollout's facts, its timeline, approvals, checks and
// deployment windows, every gate evaluation with a chart of canary against
// stable per cluster, and the audit records with the chain's verification.
//
// Invariants:
//   - The document is self-contained: styles are inline, charts are inline
//     SVG, it has no script, and its Content-Security-Policy forbids
//     loading anything, so it reads and prints the same anywhere, offline.
//   - Every value from the API is escaped (html/template for the page, and
//     html.EscapeString for the text of the SVG charts, built by hand).
//   - It shows only what the control plane recorded: a section with
//     nothing recorded says so instead of being left out.
//   - Section and chart elements carry stable ids, classes and data-
//     attributes (id="timeline", svg.chart[data-gate]) for tools and tests.
package report
