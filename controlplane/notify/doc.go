// Package notify tells people and systems about rollouts: it turns audit
// records (the control plane's event stream) into messages for
// Slack-compatible incoming webhooks and generic JSON webhooks.
//
// It owns the sinks' queues and delivery. Invariants:
//   - Publish never blocks and never fails: a rollout is never delayed or
//     stopped by a notification. It only filters, copies and queues.
//   - Records come in only once they are committed (store.Bolt.OnAudit);
//     a notification is never sent for a change that was rolled back.
//   - Each sink has its own bounded queue and goroutine, so a slow or dead
//     receiver delays only its own notifications. A full queue drops its
//     oldest notification, counted in cutover_notifications_dropped_total.
//   - A sink delivers in queue order, one notification at a time, retrying
//     with exponential backoff; 2xx is success, a 4xx other than 429 is
//     final. Delivery is at least once: a receiver that times out after
//     accepting may see a notification twice (record.seq tells them apart).
//   - A sink's URL and headers (which hold secrets) never appear in logs,
//     errors or metrics; its name does.
//   - Close drains the queues for a bounded time, then gives up.
package notify
