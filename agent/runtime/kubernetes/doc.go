// Package kubernetes is the agent's kubernetes runtime: it places an app's
// desired state on the cluster the agent runs in, through client-go.
//
// Each strategy maps onto Deployments and Services the way a platform team
// would do it by hand. Blue-green follows the seed's pipeline: two
// Deployments "<d>-blue" and "<d>-green" and a Service whose selector names
// the active colour, switched once the other colour is rolled out, Ready
// and smoke-tested. Canary and rolling run the stable revision on "<d>" and
// the new one on "<d>-canary", with the weight approximated by the replica
// ratio (ReplicaSplit) or set exactly on a Gateway API HTTPRoute.
//
// Reads come from shared informers, one set per namespace in use, so a
// pass over settled objects costs no API call; informer events wake the
// app's worker. Writes are server-side apply with field manager "cutover"
// (Force, as controllers do), the scale subresource for scaling alone, and
// an update with conflict retries for HTTPRoute weights. Objects Cutover
// creates are labelled app.kubernetes.io/managed-by=cutover and
// cutover.dev/app=<app>; objects it adopts get only the fields it drives.
// A pre-flight dry run (DryRun) runs the same pass with every write sent as
// dryRun=All, so the API server validates and admits the objects without
// persisting them, and reads the namespace's ResourceQuotas. A revision
// with spec.revision.sha256 runs its image by that digest (Image).
// The RBAC in deploy/kubernetes/agent-rbac.yaml is exactly what it needs.
package kubernetes
