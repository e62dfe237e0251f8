package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cutover-dev/cutover/controlplane/controller"
	"github.com/cutover-dev/cutover/internal/policy"
	"github.com/cutover-dev/cutover/internal/rollout"
	"github.com/cutover-dev/cutover/internal/spec"
	"github.com/cutover-dev/cutover/internal/store"
)

// codeTable maps domain sentinel errors to gRPC codes; it is the only place
// that does.
var codeTable = []struct {
	err  error
	code codes.Code
}{
	{spec.ErrInvalid, codes.InvalidArgument},
	{policy.ErrRefused, codes.InvalidArgument},
	{controller.ErrNotFound, codes.NotFound},
	{store.ErrNotFound, codes.NotFound},
	{store.ErrAuditBroken, codes.DataLoss},
	{rollout.ErrNoRollout, codes.NotFound},
	{rollout.ErrTerminal, codes.FailedPrecondition},
	{rollout.ErrNotAborted, codes.FailedPrecondition},
	{rollout.ErrNotAwaitingApproval, codes.FailedPrecondition},
	{rollout.ErrApprovalRefused, codes.PermissionDenied},
	{controller.ErrNoEarlierRevision, codes.FailedPrecondition},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus converts a domain error to a gRPC status error. Invalid input
// keeps its message verbatim, since it names the field path.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe spec.Errors
	if errors.As(err, &fe) {
		return status.Error(codes.InvalidArgument, fe.Error())
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			return status.Error(e.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}
