// Package apierr is the one error boundary of Zerotouch's transports
// (ADR 3): Classify turns any error into an Answer, which says everything
// each wire format needs (gRPC code, HTTP status, DPS errorCode, public
// message, stable reason, retry hint); small renderers here and in the DPS
// packages write it. An error that carries no classification is a bug: it
// is logged here, once, with the request ID, and answered INTERNAL.
package apierr

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
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Domain is the ErrorInfo domain of every Zerotouch error.
const Domain = "zerotouch.dev"

// DefaultRetry is the hint given with a retryable error that names none.
const DefaultRetry = time.Second

// Audience is who reads the answer's message.
type Audience int

const (
	// Operator answers keep the error's caller-safe message: operators
	// need to know what was wrong with what they sent.
	Operator Audience = iota
	// Device answers say only "registration refused: REASON": a device
	// learns why it was refused, not what the service knows of its
	// enrollment (the log and the failed-attempt record keep the detail).
	Device
)

// Answer is an error as the transports answer it.
type Answer struct {
	Kind   fault.Kind
	Reason fault.Reason
	// Code is the gRPC code; HTTP the native REST status (as the gateway
	// maps Code).
	Code codes.Code
	HTTP int
	// DPSStatus and DPSErrorCode are the DPS APIs' HTTP status and
	// errorCode (status × 1000 + sub-code).
	DPSStatus    int
	DPSErrorCode int
	// Message is what the caller may read.
	Message string
	// RetryAfter is how long to wait before retrying; 0 when retrying
	// will not help.
	RetryAfter time.Duration
	Metadata   map[string]string
	// Canceled marks a request its caller gave up on (nothing to log).
	Canceled bool
}

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

// dpsSubCodes are the sub-codes of DPS's errorCode that Zerotouch uses;
// docs/dps.md lists them. Others get 2 (401) or 4 (400) or 0.
var dpsSubCodes = map[fault.Reason]int{
	fault.RegistrationIDInvalid: 1,
	fault.FieldInvalid:          4,
	fault.CertificateMissing:    2,
	fault.ResourceNotFound:      201,
	fault.RateLimited:           1,
	fault.StoreUnavailable:      0,
}

// dpsStatus is DPS's HTTP status for a kind; device authentication
// failures of every kind are 401 (401002), as DPS answers them.
func dpsStatus(k fault.Kind) int {
	switch k {
	case fault.InvalidArgument, fault.FailedPrecondition:
		return http.StatusBadRequest
	case fault.NotFound:
		return http.StatusNotFound
	case fault.AlreadyExists:
		return http.StatusConflict
	case fault.Conflict:
		return http.StatusPreconditionFailed
	case fault.ResourceExhausted:
		return http.StatusTooManyRequests
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.Unauthenticated, fault.PermissionDenied:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// Classify is the one place where an error becomes an answer. A
// *fault.Error keeps its kind, reason and message; a canceled or timed-out
// request is answered as such; anything else (an unclassified error, or
// one of kind Internal) is logged at error with the request ID and
// answered INTERNAL with no detail.
func Classify(ctx context.Context, log *slog.Logger, requestID string, err error, who Audience) Answer {
	fe, ok := fault.As(err)
	switch {
	case !ok && errors.Is(err, context.Canceled):
		return Answer{Kind: fault.Unavailable, Reason: fault.Canceled, Code: codes.Canceled, HTTP: 499,
			DPSStatus: http.StatusServiceUnavailable, DPSErrorCode: 503000, Message: "request canceled", Canceled: true}
	case !ok && errors.Is(err, context.DeadlineExceeded):
		return Answer{Kind: fault.Unavailable, Reason: fault.DeadlineExceeded, Code: codes.DeadlineExceeded, HTTP: http.StatusGatewayTimeout,
			DPSStatus: http.StatusServiceUnavailable, DPSErrorCode: 503000, Message: "deadline exceeded", RetryAfter: DefaultRetry}
	case !ok || fe.Kind == fault.Internal:
		if log != nil {
			log.ErrorContext(ctx, "internal error", "request_id", requestID, "err", err)
		}
		fe = &fault.Error{Kind: fault.Internal, Reason: fault.InternalError, Msg: "internal error"}
	}
	a := Answer{Kind: fe.Kind, Reason: fe.Reason, Code: kindCodes[fe.Kind], Message: fe.Msg, Metadata: fe.Metadata}
	a.HTTP = runtime.HTTPStatusFromCode(a.Code)
	a.DPSStatus = dpsStatus(fe.Kind)
	sub, ok := dpsSubCodes[fe.Reason]
	if !ok {
		switch a.DPSStatus {
		case http.StatusUnauthorized:
			sub = 2
		case http.StatusBadRequest:
			sub = 4
		}
	}
	a.DPSErrorCode = a.DPSStatus*1000 + sub
	switch {
	case who == Device:
		a.Message = "registration refused: " + string(fe.Reason)
	case a.Message == "":
		a.Message = string(fe.Reason)
	}
	if fe.Kind == fault.Unavailable || fe.Kind == fault.ResourceExhausted {
		a.RetryAfter = DefaultRetry
		if fe.RetryAfter > 0 {
			a.RetryAfter = fe.RetryAfter
		}
	}
	return a
}

// Status renders the answer as a gRPC status: the code and message, an
// ErrorInfo with the reason, and a RetryInfo when retrying helps.
func (a Answer) Status() *status.Status {
	st := status.New(a.Code, a.Message)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(a.Reason), Domain: Domain, Metadata: a.Metadata}}
	if a.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(a.RetryAfter)})
	}
	if withDetails, err := st.WithDetails(details...); err == nil {
		st = withDetails
	}
	return st
}

// RetryAfterSeconds is the Retry-After header's value: whole seconds,
// rounded up, at least 1; "" when retrying will not help.
func (a Answer) RetryAfterSeconds() string {
	if a.RetryAfter <= 0 {
		return ""
	}
	return strconv.Itoa(max(1, int((a.RetryAfter+time.Second-1)/time.Second)))
}

// Reason is a status for a request a transport refused before any service
// ran (a body that does not decode, an unknown path): a code and a reason
// with no domain error behind them.
func Reason(code codes.Code, reason fault.Reason, msg string) *status.Status {
	st := status.New(code, msg)
	if withDetails, err := st.WithDetails(&errdetails.ErrorInfo{Reason: string(reason), Domain: Domain}); err == nil {
		st = withDetails
	}
	return st
}

// ReasonOf is the ErrorInfo reason of a status, "" if none.
func ReasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}
