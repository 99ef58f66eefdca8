package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zerotouch/zerotouch/internal/fault"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// ErrorDomain is the ErrorInfo domain of every Zerotouch error.
const ErrorDomain = "zerotouch.dev"

var kindCodes = map[fault.Kind]codes.Code{
	fault.Internal:           codes.Internal,
	fault.NotFound:           codes.NotFound,
	fault.AlreadyExists:      codes.AlreadyExists,
	fault.Conflict:           codes.Aborted,
	fault.InvalidArgument:    codes.InvalidArgument,
	fault.FailedPrecondition: codes.FailedPrecondition,
	fault.PermissionDenied:   codes.PermissionDenied,
	fault.Unauthenticated:    codes.Unauthenticated,
	fault.ResourceExhausted:  codes.ResourceExhausted,
	fault.Unavailable:        codes.Unavailable,
}

// retryAfter is the hint given with retryable errors (RetryInfo over gRPC,
// Retry-After over REST).
const retryAfter = time.Second

// toStatus is the one place where errors become gRPC status (and, through
// the gateway, HTTP). Classified errors keep their caller-safe message and
// carry their reason in an ErrorInfo; anything else is logged once and
// answered with a bare "internal error". When device is true the message is
// reduced to the reason: a device learns why it was refused, not what the
// service knows about its enrollment.
func toStatus(ctx context.Context, log *slog.Logger, err error, device bool) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	fe, ok := fault.As(err)
	if !ok || fe.Kind == fault.Internal {
		log.ErrorContext(ctx, "internal error", "request_id", requestID(ctx), "err", err)
		fe = &fault.Error{Kind: fault.Internal, Reason: fault.InternalError, Msg: "internal error"}
	}
	msg := fe.Msg
	switch {
	case device:
		msg = "registration refused: " + string(fe.Reason)
	case msg == "":
		msg = string(fe.Reason)
	}
	st := status.New(kindCodes[fe.Kind], msg)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(fe.Reason), Domain: ErrorDomain, Metadata: fe.Metadata}}
	if fe.Kind == fault.Unavailable || fe.Kind == fault.ResourceExhausted {
		wait := retryAfter
		if fe.RetryAfter > 0 {
			wait = fe.RetryAfter
		}
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	}
	if withDetails, err := st.WithDetails(details...); err == nil {
		st = withDetails
	}
	return st.Err()
}

// reasonStatus is the status of a request refused before any service ran
// (the transport's own refusals, in input.go): a code and a reason, with
// no domain error behind them.
func reasonStatus(code codes.Code, reason fault.Reason, msg string) error {
	st := status.New(code, msg)
	if withDetails, err := st.WithDetails(&errdetails.ErrorInfo{Reason: string(reason), Domain: ErrorDomain}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// reasonOf is the ErrorInfo reason of st, if any.
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

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
