package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// ErrorDomain is the ErrorInfo domain of every Zerotouch error.
const ErrorDomain = apierr.Domain

// toStatus renders an error as a gRPC status (and, through the gateway,
// HTTP), by the one classifier (apierr.Classify). A status error (a
// transport's own refusal) passes as it is. When device is true the
// message is reduced to the reason.
func toStatus(ctx context.Context, log *slog.Logger, err error, device bool) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	who := apierr.Operator
	if device {
		who = apierr.Device
	}
	return apierr.Classify(ctx, log, requestID(ctx), err, who).Status().Err()
}

// reasonStatus is the status of a request refused before any service ran
// (the transport's own refusals, in input.go).
func reasonStatus(code codes.Code, reason fault.Reason, msg string) error {
	return apierr.Reason(code, reason, msg).Err()
}

// reasonOf is the ErrorInfo reason of st, if any.
func reasonOf(st *status.Status) string { return apierr.ReasonOf(st) }

// httpErrorHandler is the gateway's error handler, with a reason for the
// gateway's own refusals (gatewayError) and a Retry-After header on
// retryable errors.
func httpErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = gatewayError(r, err)
	inner := err
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		inner = hs.Err
	}
	if st, ok := status.FromError(inner); ok {
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				secs := int((ri.GetRetryDelay().AsDuration() + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
			}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// itemError is toStatus for one item of a batch.
func itemError(ctx context.Context, log *slog.Logger, err error) *pb.ItemError {
	st := status.Convert(toStatus(ctx, log, err, false))
	return &pb.ItemError{Code: int32(st.Code()), Message: st.Message(), Reason: reasonOf(st)}
}
