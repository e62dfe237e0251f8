package kubernetes

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/cutover-dev/cutover/agent/runtime"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// Tracks as pod labels.
const (
	trackStable = "stable"
	trackCanary = "canary"
)

// ReplicaSplit is how a canary weight is approximated without a traffic
// router, out of n pods of the stable revision: the canary runs
// ceil(n·w/100) pods and the stable revision n − floor(n·w/100), so the
// canary never gets less than it asked for, capacity never drops below n,
// and the share in force is canary/(canary+stable). Examples for n = 3:
// 10% → 1+3 (25%), 50% → 2+2 (50%), 80% → 3+1 (75%), 100% → 3+0.
func ReplicaSplit(n, weight int32) (stable, canary int32) {
	if weight <= 0 {
		return n, 0
	}
	if weight >= 100 {
		return 0, n
	}
	return n - n*weight/100, (n*weight + 99) / 100
}

// canary runs the STABLE revision on the Deployment "<d>" and the CANARY
// revision on "<d>-canary" (also for rolling batches, whose counts the
// desired state gives). Traffic follows the pods through the Service,
// which selects both, or, with an HTTPRoute, follows the route's weights
// exactly. Replacement is surge-first: a Deployment shrinks only as far as
// the other one's ready pods make up for it.
func (a *app) canary(ctx context.Context) (runtime.Placement, error) {
	primaryName, canaryName := a.k.Deployment, a.k.Deployment+"-canary"
	primary, err := a.deployment(primaryName)
	if err != nil {
		return runtime.Placement{}, err
	}
	canary, err := a.deployment(canaryName)
	if err != nil {
		return runtime.Placement{}, err
	}
	var stable, next *cutoverv1.DesiredRevision
	for _, dr := range a.d.GetRevisions() {
		switch dr.GetTrack() {
		case cutoverv1.Track_TRACK_STABLE:
			stable = dr
		case cutoverv1.Track_TRACK_CANARY:
			next = dr
		}
	}
	routed := a.k.HTTPRoute != ""
	// How many pods each revision wants.
	var stableN, canaryN int32
	weight := next.GetWeight()
	switch {
	case a.toStable && stable != nil: // the local guard: all to stable
		stableN, canaryN, weight = max(stable.GetRevision().GetInstances(), 1), 0, 0
	case a.d.GetStrategy() == "rolling" || routed:
		if stable != nil {
			stableN = wanted(stable)
		}
		if next != nil {
			canaryN = wanted(next)
		}
	default: // canary by replica ratio
		n := max(stable.GetRevision().GetInstances(), 1)
		stableN, canaryN = ReplicaSplit(n, weight)
		if stable == nil {
			stableN = 0
		}
		if next != nil && next.GetInstances() > 0 { // setCanaryScale
			canaryN = next.GetInstances()
		}
		if next == nil {
			canaryN = 0
		}
	}
	now := time.Now()
	var errs []error
	stableRev, nextRev := stable.GetRevision(), next.GetRevision()
	if a.toStable {
		nextRev = nil
	}
	pst, err := a.pods(primary, stableRev, now)
	if err != nil {
		errs = append(errs, err)
	}
	cst, err := a.pods(canary, next.GetRevision(), now)
	if err != nil {
		errs = append(errs, err)
	}
	primaryOK := stable == nil || (a.runs(primary, stableRev) && rolledOut(primary) && pst.ready >= stableN)
	canaryOK := nextRev == nil || (a.runs(canary, nextRev) && rolledOut(canary) && cst.ready >= canaryN)

	// Surge first: each side keeps the pods the other side's missing ready
	// pods would have replaced.
	primaryWant := stableN
	if nextRev != nil {
		primaryWant += max(0, canaryN-cst.ready)
	}
	if stable != nil {
		if err := a.applyTrackDeployment(ctx, primary, primaryName, trackStable, stableRev, primaryWant, routed); err != nil {
			errs = append(errs, err)
		}
	} else if err := a.scale(ctx, primary, primaryWant); err != nil {
		errs = append(errs, err)
	}
	switch {
	case nextRev != nil:
		if err := a.applyTrackDeployment(ctx, canary, canaryName, trackCanary, nextRev, canaryN, true); err != nil {
			errs = append(errs, err)
		}
	case primaryOK && canary != nil: // leaving: only once stable carries the load
		if err := a.scale(ctx, canary, 0); err != nil {
			errs = append(errs, err)
		}
	}

	// Services: the app's own (both tracks); with a route, one per track.
	svc, err := a.service(a.k.Service)
	if err != nil {
		errs = append(errs, err)
	} else if svc == nil || ours(svc) {
		if err := a.applyService(ctx, svc, a.k.Service, a.k.Selector); err != nil {
			errs = append(errs, err)
		}
	}
	pl := runtime.Placement{Listen: a.serviceAddr(a.k.Service)}
	stableW, canaryW := replicaWeights(pst.ready, cst.ready)
	routeOK := true
	if routed {
		for _, t := range []string{trackStable, trackCanary} {
			name := a.k.Deployment + "-" + t
			cur, err := a.service(name)
			if err == nil {
				err = a.applyService(ctx, cur, name, with(a.k.Selector, LabelTrack, t))
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		// Weights move only to pods that can serve them: the canary gets
		// its weight once it is rolled out and Ready, and none while it
		// runs another revision (a superseded canary being replaced);
		// after an abort stable gets everything back as soon as it has
		// Ready pods; after a promotion, once the stable Deployment runs
		// the new revision throughout.
		want := int32(-1)
		switch {
		case nextRev != nil && canaryOK:
			want = weight
		case nextRev != nil && !a.runs(canary, nextRev):
			want = 0
		case nextRev == nil && (primaryOK || (pst.ready > 0 && !a.runs(canary, stableRev))):
			want = 0
		}
		var err error
		stableW, canaryW, err = a.routeWeights(ctx, want)
		if err != nil {
			errs = append(errs, err)
		}
		routeOK = want >= 0 && canaryW == want && stableW == 100-want
	}

	desired := map[string]bool{}
	if stable != nil {
		desired[stableRev.GetName()] = true
		pl.Revisions = append(pl.Revisions, observed(stableRev, stableN, pst.ready, stableW, a.failures(stableRev.GetName(), pst.failed)))
	}
	if next != nil {
		desired[next.GetRevision().GetName()] = true
		pl.Revisions = append(pl.Revisions, observed(next.GetRevision(), canaryN, cst.ready, canaryW, a.failures(next.GetRevision().GetName(), cst.failed)))
	}
	a.keepFailures(desired)
	gone := func(d *appsv1.Deployment) bool {
		return d == nil || (d.Spec.Replicas != nil && *d.Spec.Replicas == 0 && d.Status.Replicas == 0)
	}
	pl.Converged = len(errs) == 0 && routeOK && primaryOK && canaryOK &&
		(stable != nil || gone(primary)) && (nextRev != nil || gone(canary)) &&
		(stable == nil || *primary.Spec.Replicas == stableN)
	pl.Targets, err = a.targets(a.serviceNames())
	if err != nil {
		errs = append(errs, err)
	}
	return pl, joinErrs(errs)
}

// applyTrackDeployment applies one of a canary's two Deployments. The
// track label goes on pods Cutover creates, and on an adopted stable
// Deployment's pods when a route needs the track Services to tell them
// apart.
func (a *app) applyTrackDeployment(ctx context.Context, cur *appsv1.Deployment, name, track string, rev *cutoverv1.Revision, replicas int32, labelTrack bool) error {
	selector := with(a.k.Selector, LabelTrack, track)
	var extra map[string]string
	if labelTrack {
		extra = map[string]string{LabelTrack: track}
	}
	return a.applyDeploymentLabels(ctx, cur, name, selector, rev, replicas, extra)
}

// replicaWeights is the share of traffic each side gets by pod count.
func replicaWeights(stableReady, canaryReady int32) (stable, canary int32) {
	total := stableReady + canaryReady
	if total == 0 {
		return 0, 0
	}
	canary = percent(canaryReady, total)
	return 100 - canary, canary
}

func (a *app) serviceNames() []string {
	names := []string{a.k.Service}
	if a.k.HTTPRoute != "" {
		names = append(names, a.k.Deployment+"-"+trackStable, a.k.Deployment+"-"+trackCanary)
	}
	return names
}

// delegated lets the Deployment "<d>" replace its pods with its own
// rolling update (its maxSurge and maxUnavailable): the newest desired
// revision goes on its template at the full count.
func (a *app) delegated(ctx context.Context) (runtime.Placement, error) {
	dep, err := a.deployment(a.k.Deployment)
	if err != nil {
		return runtime.Placement{}, err
	}
	target := a.d.GetRevisions()[0]
	for _, dr := range a.d.GetRevisions() {
		if dr.GetTrack() == cutoverv1.Track_TRACK_CANARY && !a.toStable {
			target = dr
		}
	}
	if a.toStable {
		for _, dr := range a.d.GetRevisions() {
			if dr.GetTrack() == cutoverv1.Track_TRACK_STABLE {
				target = dr
			}
		}
	}
	rev := target.GetRevision()
	n := max(rev.GetInstances(), 1)
	var errs []error
	if err := a.applyDeploymentLabels(ctx, dep, a.k.Deployment, a.k.Selector, rev, n, nil); err != nil {
		errs = append(errs, err)
	}
	if svc, err := a.service(a.k.Service); err != nil {
		errs = append(errs, err)
	} else if svc == nil || ours(svc) {
		if err := a.applyService(ctx, svc, a.k.Service, a.k.Selector); err != nil {
			errs = append(errs, err)
		}
	}
	st, err := a.pods(dep, rev, time.Now())
	if err != nil {
		errs = append(errs, err)
	}
	pl := runtime.Placement{Listen: a.serviceAddr(a.k.Service)}
	done := a.runs(dep, rev) && rolledOut(dep) && st.ready >= n
	for _, dr := range a.d.GetRevisions() {
		o := observed(dr.GetRevision(), wanted(dr), 0, 0, 0)
		if dr == target {
			o.InstancesReady, o.InstancesFailed = st.ready, a.failures(rev.GetName(), st.failed)
			o.InstancesWanted = n
			if done {
				o.Weight = 100
			}
		}
		pl.Revisions = append(pl.Revisions, o)
	}
	a.keepFailures(map[string]bool{rev.GetName(): true})
	pl.Converged = len(errs) == 0 && done
	pl.Targets, err = a.targets([]string{a.k.Service})
	if err != nil {
		errs = append(errs, err)
	}
	return pl, joinErrs(errs)
}
