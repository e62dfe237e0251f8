package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cutover-dev/cutover/internal/auth"
	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/pki"
	"github.com/cutover-dev/cutover/internal/spec"
)

// rule is what one method needs: a permission, and how to find the app and
// clusters a request acts on.
type rule struct {
	perm   auth.Permission
	target func(req any) auth.Target // nil: acts on no particular app
	agent  bool                      // the agent stream: a client certificate instead of a token
}

// named is every request that names a rollout.
type named interface{ GetName() string }

func byName(req any) auth.Target {
	if r, ok := req.(named); ok {
		return auth.Target{App: r.GetName()}
	}
	return auth.Target{}
}

// byManifest is the app an apply names and every cluster it targets.
func byManifest(req any) auth.Target {
	r, ok := req.(*cutoverv1.ApplyRolloutRequest)
	if !ok {
		return auth.Target{}
	}
	m, err := spec.Parse([]byte(r.GetManifest()))
	if err != nil || m == nil {
		return auth.Target{} // the handler reports the manifest's problems
	}
	var clusters []string
	for _, w := range m.Spec.GetTargets().GetWaves() {
		clusters = append(clusters, w.GetClusters()...)
	}
	return auth.Target{App: m.Name, Clusters: clusters}
}

// methods is the whole policy: every method the server serves has a rule;
// one without is refused.
var methods = map[string]rule{
	cutoverv1.RolloutService_ApplyRollout_FullMethodName:       {perm: auth.PermDeploy, target: byManifest},
	cutoverv1.RolloutService_GetRollout_FullMethodName:         {perm: auth.PermRead, target: byName},
	cutoverv1.RolloutService_ListRollouts_FullMethodName:       {perm: auth.PermRead},
	cutoverv1.RolloutService_WatchRollout_FullMethodName:       {perm: auth.PermRead, target: byName},
	cutoverv1.RolloutService_PromoteRollout_FullMethodName:     {perm: auth.PermDeploy, target: byName},
	cutoverv1.RolloutService_AbortRollout_FullMethodName:       {perm: auth.PermDeploy, target: byName},
	cutoverv1.RolloutService_PauseRollout_FullMethodName:       {perm: auth.PermDeploy, target: byName},
	cutoverv1.RolloutService_ResumeRollout_FullMethodName:      {perm: auth.PermDeploy, target: byName},
	cutoverv1.RolloutService_RetryRollout_FullMethodName:       {perm: auth.PermDeploy, target: byName},
	cutoverv1.RolloutService_UndoRollout_FullMethodName:        {perm: auth.PermDeploy, target: byName},
	cutoverv1.RolloutService_ApproveRollout_FullMethodName:     {perm: auth.PermApprove, target: byName},
	cutoverv1.RolloutService_RejectRollout_FullMethodName:      {perm: auth.PermApprove, target: byName},
	cutoverv1.RolloutService_ListRolloutHistory_FullMethodName: {perm: auth.PermRead, target: byName},
	cutoverv1.ClusterService_ListClusters_FullMethodName:       {perm: auth.PermRead},
	cutoverv1.ReportService_GetRolloutReport_FullMethodName:    {perm: auth.PermAudit, target: byName}, // carries audit records
	cutoverv1.AgentService_Connect_FullMethodName:              {agent: true},
}

// guard authenticates and authorises every call in one place: unary and
// stream interceptors share it, and REST goes through the same path
// because the gateway calls the gRPC server.
type guard struct {
	authn auth.Authenticator // nil: open (loopback-only insecure mode)
	// agentCerts: the agent stream needs a verified client certificate,
	// whose cluster the agent's hello must name.
	agentCerts bool
	// clustersOf returns the clusters a stored rollout targets, so a
	// cluster-scoped grant is checked on operations by name too.
	clustersOf func(app string) []string
	// denied records a refused mutation in the audit trail.
	denied func(ctx context.Context, subject, method string, t auth.Target, reason string)
	// extra rules for services registered later (e.g. the audit trail).
	extra map[string]rule
}

func (g *guard) rule(method string) (rule, bool) {
	if r, ok := methods[method]; ok {
		return r, true
	}
	r, ok := g.extra[method]
	return r, ok
}

// check authenticates and authorises a call: the context the handler
// runs with, or the status error that refuses it.
func (g *guard) check(ctx context.Context, method string, req any) (context.Context, error) {
	p, err := g.authenticate(ctx, method)
	if err != nil {
		return nil, err
	}
	return g.authorize(ctx, p, method, req)
}

// authenticate finds the caller of a call that needs a token (nil in the
// open mode, and for the agent stream, which checkAgent covers).
func (g *guard) authenticate(ctx context.Context, method string) (*auth.Principal, error) {
	r, ok := g.rule(method)
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s: no permission rule for this method", method)
	}
	if r.agent || g.authn == nil {
		return nil, nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	p, err := g.authn.Authenticate(ctx, token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return p, nil
}

// authorize checks an authenticated caller's permission on what req
// targets. The clusters a stored rollout of that app already targets
// count too, so a cluster-scoped grant cannot move an app off clusters it
// may not touch.
func (g *guard) authorize(ctx context.Context, p *auth.Principal, method string, req any) (context.Context, error) {
	r, _ := g.rule(method)
	if p == nil {
		return ctx, nil
	}
	var t auth.Target
	if r.target != nil && req != nil {
		t = r.target(req)
		if t.App != "" && g.clustersOf != nil {
			for _, c := range g.clustersOf(t.App) {
				if !slices.Contains(t.Clusters, c) {
					t.Clusters = append(t.Clusters, c)
				}
			}
		}
	}
	if err := auth.Authorize(p, r.perm, t); err != nil {
		if r.perm != auth.PermRead && g.denied != nil {
			g.denied(ctx, p.Subject, method, t, err.Error())
		}
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	return auth.WithPrincipal(ctx, p), nil
}

// checkAgent takes an agent's cluster from its verified certificate, and
// returns when the certificate expires: the stream ends then, and the
// agent reconnects with its renewed one.
func (g *guard) checkAgent(ctx context.Context) (context.Context, time.Time, error) {
	if !g.agentCerts {
		return ctx, time.Time{}, nil
	}
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return nil, time.Time{}, status.Error(codes.Unauthenticated, "agent: no peer information")
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, time.Time{}, status.Error(codes.Unauthenticated, "agent: a client certificate from the agent CA is required (cutover certs issue-agent)")
	}
	cert := info.State.VerifiedChains[0][0]
	cluster, err := pki.ClusterOf(cert)
	if err != nil {
		return nil, time.Time{}, status.Errorf(codes.PermissionDenied, "agent certificate: %v", err)
	}
	return auth.WithAgent(ctx, cluster), cert.NotAfter, nil
}

// bearer is the call's bearer token.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 || vals[0] == "" {
		return "", auth.ErrNoCredentials
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", errors.New("authorization header: want 'Bearer <token>'")
	}
	return strings.TrimSpace(token), nil
}

func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := g.check(ctx, info.FullMethod, req)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// stream checks a streaming call. The caller is authenticated first;
// a server-streaming call's request, its first message, is then read,
// authorised, and handed to the handler as if unread.
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	r, ok := g.rule(info.FullMethod)
	if ok && r.agent {
		ctx, expires, err := g.checkAgent(ss.Context())
		if err != nil {
			return err
		}
		if !expires.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, expires)
			defer cancel()
		}
		return handler(srv, &checkedStream{ServerStream: ss, ctx: ctx})
	}
	p, err := g.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	var first any
	if !info.IsClientStream && r.target != nil {
		if first, err = newRequest(info.FullMethod); err != nil {
			return err
		}
		if err := ss.RecvMsg(first); err != nil {
			return err
		}
	}
	ctx, err := g.authorize(ss.Context(), p, info.FullMethod, first)
	if err != nil {
		return err
	}
	return handler(srv, &checkedStream{ServerStream: ss, ctx: ctx, first: first})
}

// newRequest is an empty request of a server-streaming method.
func newRequest(method string) (any, error) {
	switch method {
	case cutoverv1.RolloutService_WatchRollout_FullMethodName:
		return &cutoverv1.WatchRolloutRequest{}, nil
	}
	return nil, status.Errorf(codes.Internal, "%s: no request type for its permission check", method)
}

// checkedStream is a stream with the authenticated context and, for a
// server-streaming call, its request already read.
type checkedStream struct {
	grpc.ServerStream
	ctx   context.Context
	first any
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if s.first == nil {
		return s.ServerStream.RecvMsg(m)
	}
	first := s.first
	s.first = nil
	return copyMsg(m, first)
}

// copyMsg copies a request read ahead into the handler's message.
func copyMsg(dst, src any) error {
	d, ok1 := dst.(proto.Message)
	s, ok2 := src.(proto.Message)
	if !ok1 || !ok2 {
		return status.Error(codes.Internal, "stream message is not a protocol buffer")
	}
	proto.Reset(d)
	proto.Merge(d, s)
	return nil
}
