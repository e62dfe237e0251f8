package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutover-dev/cutover/controlplane/notify"
	"github.com/cutover-dev/cutover/internal/store"
)

// notifyDrain bounds how long, at shutdown, queued notifications may still
// be delivered: a dead receiver must not hold up a restart.
const notifyDrain = 2 * time.Second

// startNotifier sends every audit record the store commits to the sinks of
// cfg, and returns the function that stops it. The store hands records
// over only after their transaction committed, and Publish only queues,
// so no write (and no rollout) ever waits for a receiver.
func startNotifier(cfg notify.Config, db *store.Bolt, reg prometheus.Registerer, log *slog.Logger) (func(), error) {
	if len(cfg.Sinks) == 0 {
		return func() {}, nil
	}
	n, err := notify.New(cfg, notify.Options{Logger: log.With("component", "notify"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	db.OnAudit(n.Publish)
	names := make([]string, 0, len(cfg.Sinks))
	for _, s := range cfg.Sinks {
		names = append(names, s.Name)
	}
	log.Info("notifications on", "sinks", names)
	return func() {
		// The hook stays: a record committed from now on is counted as
		// dropped rather than lost without a trace.
		ctx, cancel := context.WithTimeout(context.Background(), notifyDrain)
		defer cancel()
		n.Close(ctx)
	}, nil
}
