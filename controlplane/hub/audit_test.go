package hub_test

import (
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/controlplane/hub"
	"github.com/cutover-dev/cutover/internal/store"
)

// auditTrail is the hub's records as "action actor target: before ->
// after" lines, after a check of the chain.
func (e *env) auditTrail() []string {
	e.t.Helper()
	if _, err := e.db.VerifyAudit(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	recs, _, err := e.db.ListAudit(e.t.Context(), store.AuditQuery{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		if r.GetCluster() != strings.TrimPrefix(r.GetTarget(), "cluster/") || r.GetTime() == nil {
			e.t.Errorf("record %d: cluster %q, target %q, time %v", r.GetSeq(), r.GetCluster(), r.GetTarget(), r.GetTime())
		}
		out = append(out, r.GetAction()+" "+r.GetActor()+" "+r.GetTarget()+": "+r.GetBefore()+" -> "+r.GetAfter())
	}
	return out
}

// An agent's stream opening and closing are audited as the agent's; the
// end of a stream another agent of the cluster replaced is no disconnect.
func TestAgentConnectionsAreAudited(t *testing.T) {
	e := start(t, hub.Options{})
	first := e.dial(hello("eu-1"))
	eventually(t, "eu-1 stored as connected", func() bool { return e.storedCluster("eu-1").GetStatus() == connected })
	second := e.dial(hello("eu-1"))
	first.ended()
	second.cancel()
	eventually(t, "eu-1 stored as disconnected", func() bool { return e.storedCluster("eu-1").GetStatus() == disconnected })

	want := []string{
		"agent.connect agent:eu-1 cluster/eu-1: disconnected -> connected",
		"agent.connect agent:eu-1 cluster/eu-1: disconnected -> connected",
		"agent.disconnect agent:eu-1 cluster/eu-1: connected -> disconnected",
	}
	if got := e.auditTrail(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit trail:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
