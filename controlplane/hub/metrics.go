package hub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected   prometheus.Gauge
	messages    *prometheus.CounterVec
	desiredSent prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutover_agents_connected",
			Help: "Agent streams currently open.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_agent_messages_total",
			Help: "Messages received from agents, by type.",
		}, []string{"type"}),
		desiredSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutover_desired_states_sent_total",
			Help: "Desired states sent to agents.",
		}),
	}
	reg.MustRegister(m.connected, m.messages, m.desiredSent)
	return m
}
