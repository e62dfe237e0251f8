package kubernetes

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Colours of a blue-green app.
var colours = [2]string{"blue", "green"}

func other(c string) string {
	if c == colours[0] {
		return colours[1]
	}
	return colours[0]
}

// colourPlan says which desired revision each colour runs.
type colourPlan map[string]*cutoverv1.DesiredRevision

// planColours assigns the desired revisions to the two colours. A revision
// stays on a colour that already runs it; the STABLE revision (the one
// that takes the traffic) goes first, then PREVIEW, then PREVIOUS (kept
// warm only while a colour is free for it). A new revision never lands on
// the colour the Service selects, unless nothing runs at all yet.
func planColours(active string, exists func(colour string) bool, runs func(colour string, rev *cutoverv1.Revision) bool, revs []*cutoverv1.DesiredRevision) colourPlan {
	plan := colourPlan{}
	byTrack := map[cutoverv1.Track]*cutoverv1.DesiredRevision{}
	for _, dr := range revs {
		byTrack[dr.GetTrack()] = dr
	}
	// place puts dr on a colour that runs it already (the active one
	// first), else on idle; never on forbid.
	place := func(dr *cutoverv1.DesiredRevision, idle, forbid string) {
		if dr == nil {
			return
		}
		order := colours[:]
		if active == colours[1] {
			order = []string{colours[1], colours[0]}
		}
		for _, c := range order {
			if c != forbid && plan[c] == nil && runs(c, dr.GetRevision()) {
				plan[c] = dr
				return
			}
		}
		if idle != "" && idle != forbid && plan[idle] == nil {
			plan[idle] = dr
		}
	}
	// Where a new revision goes: the colour without traffic; on a cluster
	// with nothing yet, the active colour (or blue).
	idle := other(active)
	if active == "" {
		idle = colours[0]
		if exists(colours[0]) && !exists(colours[1]) {
			idle = colours[1]
		}
	}
	nothingYet := !exists(colours[0]) && !exists(colours[1])
	first := idle
	if nothingYet && active != "" {
		first = active
	}
	place(byTrack[cutoverv1.Track_TRACK_STABLE], first, "")
	// The preview never lands on the colour the Service selects: it has
	// not been promoted nor smoke-tested.
	free := ""
	for _, c := range colours {
		if plan[c] == nil && c != active {
			free = c
			break
		}
	}
	place(byTrack[cutoverv1.Track_TRACK_PREVIEW], free, active)
	place(byTrack[cutoverv1.Track_TRACK_PREVIOUS], "", "") // only where it still runs
	return plan
}

// blueGreen is the seed's flow: two Deployments "<d>-blue" and "<d>-green"
// and a Service whose selector names the active colour. The new revision
// goes on the other colour, a preview Service selects it, and the Service
// switches once the STABLE revision's colour is rolled out and ready; a
// colour nothing desired runs on scales to 0 once no Service selects it.
func (a *app) blueGreen(ctx context.Context) (runtime.Placement, error) {
	deps := map[string]*appsv1.Deployment{}
	for _, c := range colours {
		d, err := a.deployment(a.k.Deployment + "-" + c)
		if err != nil {
			return runtime.Placement{}, err
		}
		deps[c] = d
	}
	svc, err := a.service(a.k.Service)
	if err != nil {
		return runtime.Placement{}, err
	}
	preview, err := a.service(a.k.PreviewService)
	if err != nil {
		return runtime.Placement{}, err
	}
	active := ""
	if svc != nil {
		active = svc.Spec.Selector[a.k.ColorLabel]
		if active != colours[0] && active != colours[1] {
			return runtime.Placement{}, fmt.Errorf("service %s/%s: selector %s=%q is not blue or green", a.k.Namespace, a.k.Service, a.k.ColorLabel, active)
		}
	}
	plan := planColours(active,
		func(c string) bool { return deps[c] != nil },
		func(c string, rev *cutoverv1.Revision) bool { return a.runs(deps[c], rev) },
		a.d.GetRevisions())

	var errs []error
	pl := runtime.Placement{Listen: a.serviceAddr(a.k.Service)}
	now := time.Now()
	ready := map[string]bool{} // colour: its revision is rolled out and ready
	desired := map[string]bool{}
	colourOf := map[cutoverv1.Track]string{}
	for _, c := range colours {
		dr := plan[c]
		if dr == nil {
			continue
		}
		colourOf[dr.GetTrack()] = c
		rev, n := dr.GetRevision(), wanted(dr)
		desired[rev.GetName()] = true
		name := a.k.Deployment + "-" + c
		if err := a.applyDeploymentLabels(ctx, deps[c], name, with(a.k.Selector, a.k.ColorLabel, c), rev, n, nil); err != nil {
			errs = append(errs, err)
		}
		st, err := a.pods(deps[c], rev, now)
		if err != nil {
			errs = append(errs, err)
		}
		ready[c] = deps[c] != nil && a.runs(deps[c], rev) && rolledOut(deps[c]) && *deps[c].Spec.Replicas == n && st.ready >= n
		o := observed(rev, n, st.ready, 0, a.failures(rev.GetName(), st.failed))
		if c == active {
			o.Weight = 100
		}
		pl.Revisions = append(pl.Revisions, o)
	}
	a.keepFailures(desired)

	// Switch the Service to the STABLE revision's colour once it can serve.
	live := colourOf[cutoverv1.Track_TRACK_STABLE]
	switched := live != "" && live == active
	if live != "" && live != active && ready[live] {
		if err := a.applyService(ctx, svc, a.k.Service, with(a.k.Selector, a.k.ColorLabel, live)); err != nil {
			errs = append(errs, err)
		} else {
			a.info("traffic switched", "app", a.d.GetApp(), "from", active, "to", live)
			for _, o := range pl.Revisions {
				o.Weight = 0
				if o.GetRevision() == plan[live].GetRevision().GetName() {
					o.Weight = 100
				}
			}
			active, switched = live, true
		}
	}
	// The preview Service selects the PREVIEW revision's colour.
	previewOK := true
	if c := colourOf[cutoverv1.Track_TRACK_PREVIEW]; c != "" {
		previewOK = false
		if err := a.applyService(ctx, preview, a.k.PreviewService, with(a.k.Selector, a.k.ColorLabel, c)); err != nil {
			errs = append(errs, err)
		} else if ready[c] {
			previewOK = true
			pl.Preview = a.serviceAddr(a.k.PreviewService)
		}
		pl.PreviewListen = a.serviceAddr(a.k.PreviewService)
	}
	// Colours nothing desired runs on scale to 0, once out of traffic.
	idle := true
	for _, c := range colours {
		if plan[c] != nil || deps[c] == nil {
			continue
		}
		if c == active {
			idle = false
			continue
		}
		if err := a.scale(ctx, deps[c], 0); err != nil {
			errs = append(errs, err)
		}
		if deps[c].Status.Replicas > 0 {
			idle = false
		}
	}
	allReady := true
	for _, c := range colours {
		if plan[c] != nil && !ready[c] {
			allReady = false
		}
	}
	pl.Converged = len(errs) == 0 && switched && previewOK && idle && allReady
	pl.Targets, err = a.targets([]string{a.k.Service, a.k.PreviewService})
	if err != nil {
		errs = append(errs, err)
	}
	return pl, joinErrs(errs)
}
